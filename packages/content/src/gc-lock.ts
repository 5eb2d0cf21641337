/**
 * A fair shared/exclusive lock. Content commits hold it shared from the backend commit to the
 * metadata record that references the new blob; the garbage collector's file removal holds it
 * exclusive, so it never sees a committed blob whose record is about to be written.
 */
export class SharedExclusiveLock {
  private active = 0; // > 0: that many shared holders; -1: one exclusive holder
  private readonly queue: Array<{ exclusive: boolean; grant: () => void }> = [];

  /** Runs `fn` while holding the lock shared. */
  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(false, fn);
  }

  /** Runs `fn` while holding the lock alone. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(true, fn);
  }

  private async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await new Promise<void>((grant) => {
      this.queue.push({ exclusive, grant });
      this.pump();
    });
    try {
      return await fn();
    } finally {
      this.active = exclusive ? 0 : this.active - 1;
      this.pump();
    }
  }

  /** Grants waiters in arrival order: a run of shared ones together, an exclusive one alone. */
  private pump(): void {
    while (this.queue.length > 0) {
      const next = this.queue[0];
      if (next.exclusive ? this.active !== 0 : this.active < 0) return;
      this.queue.shift();
      this.active = next.exclusive ? -1 : this.active + 1;
      next.grant();
    }
  }
}

const locks = new WeakMap<object, SharedExclusiveLock>();

/** Returns the lock of a backend store, shared by every metadata layer over that backend. */
export function gcLockOf(backend: object): SharedExclusiveLock {
  let lock = locks.get(backend);
  if (!lock) locks.set(backend, (lock = new SharedExclusiveLock()));
  return lock;
}
