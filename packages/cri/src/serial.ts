/**
 * Runs operations on one key one after the other (kubelet may repeat a Stop or Remove that timed
 * out while the first still runs); operations on different keys run at once. A failed operation
 * does not stop the next one.
 */
export class KeyedSerial {
  private readonly queues = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queues.get(key) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return run;
  }
}
