/**
 * Hands byte chunks from a producer to one consumer, one at a time: {@link push} resolves once
 * the consumer has taken the chunk, so a producer never runs ahead of a slow consumer. Either
 * side can end it with an error ({@link fail}); the other side then sees that error.
 */
export class ByteChannel implements AsyncIterable<Buffer> {
  private pending: { chunk: Buffer; taken: () => void; dropped: (err: unknown) => void } | undefined;
  private ended = false;
  private failure: { err: unknown } | undefined;
  private wake: (() => void) | undefined;

  /** Offers a chunk; resolves when the consumer takes it, rejects if the channel fails first. */
  push(chunk: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.err);
    if (this.ended) return Promise.reject(new Error('byte channel already ended'));
    return new Promise<void>((taken, dropped) => {
      this.pending = { chunk, taken, dropped };
      this.signal();
    });
  }

  /** No more chunks: the consumer's iteration ends after the last one. */
  end(): void {
    this.ended = true;
    this.signal();
  }

  /** Ends both sides with `err`: a waiting push rejects, the consumer's iteration throws. */
  fail(err: unknown): void {
    if (this.failure) return;
    this.failure = { err };
    this.pending?.dropped(err);
    this.pending = undefined;
    this.signal();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      if (this.failure) throw this.failure.err;
      const p = this.pending;
      if (p) {
        this.pending = undefined;
        p.taken();
        yield p.chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
