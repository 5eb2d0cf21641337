import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '@berth/errdefs';

/** How long {@link RefLocks.acquire} keeps trying before giving up. */
export interface LockRetry {
  /** Retries after the first attempt. Default 10. */
  retries: number;
  /** Pause between attempts, in milliseconds. Default 50. */
  delayMs: number;
}

export const DEFAULT_LOCK_RETRY: LockRetry = { retries: 10, delayMs: 50 };

/**
 * One lock per ingest ref, held by a writer from open to commit or close. In-process only: the
 * daemon has a single store instance per root, and two processes writing the same root are not
 * supported (as with containerd, whose locks are in-process too).
 */
export class RefLocks {
  private readonly held = new Map<string, Date>();

  /**
   * Takes the lock for `ref`, retrying while another writer holds it. Throws Unavailable
   * `ref <name> locked for <N>ms (since <time>)` when it is still held after the last retry
   * (`name` defaults to `ref`); the duration tells a lock that is contended (short) from one that
   * was never released (long).
   */
  async acquire(ref: string, retry: LockRetry = DEFAULT_LOCK_RETRY, name: () => string = () => ref): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const since = this.held.get(ref);
      if (since === undefined) {
        this.held.set(ref, new Date());
        return;
      }
      if (attempt >= retry.retries) {
        const ms = Date.now() - since.getTime();
        throw new UnavailableError(`ref ${name()} locked for ${ms}ms (since ${since.toISOString()})`);
      }
      await sleep(retry.delayMs);
    }
  }

  /** Releases the lock for `ref`; no-op when not held. */
  release(ref: string): void {
    this.held.delete(ref);
  }

  /** Reports whether `ref` is locked. */
  isLocked(ref: string): boolean {
    return this.held.has(ref);
  }
}
