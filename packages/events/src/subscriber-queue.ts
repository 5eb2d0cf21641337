/**
 * One subscriber's bounded queue, read as an async iterable: what a publisher fans out to every
 * subscriber of an in-process event stream (the event exchange, the CRI's container events).
 * Publishing never waits for a reader: a queue that is full refuses the item, and the publisher
 * then disconnects that subscriber with {@link SubscriberQueue.fail}, which discards what is
 * queued at once, so a reader that stopped costs at most `limit` items.
 */
export class SubscriberQueue<T> implements AsyncIterable<T> {
  private readonly queue: T[] = [];
  private wake?: () => void;
  private failure?: Error;
  closed = false;

  /** `onClose` runs once, when the subscription ends for whatever reason (the publisher forgets it there). */
  constructor(
    private readonly limit: number,
    private readonly onClose: (q: SubscriberQueue<T>) => void,
  ) {}

  /** Queues an item; false when the queue is full. `force` queues past the limit (a backlog handed over at subscription). */
  deliver(item: T, force = false): boolean {
    if (this.closed) return true;
    if (!force && this.queue.length >= this.limit) return false;
    this.queue.push(item);
    this.wake?.();
    return true;
  }

  /** Ends the subscription with `err` (the reader's next read throws it) after discarding what is queued; returns how many. */
  fail(err: Error): number {
    this.failure = err;
    const discarded = this.queue.length;
    this.queue.length = 0;
    this.close();
    return discarded;
  }

  /** Ends the subscription: the reader gets what is queued, then the end. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for (;;) {
        if (this.queue.length > 0) {
          yield this.queue.shift()!;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.closed) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.close();
    }
  }
}
