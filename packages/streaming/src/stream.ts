import type { protobuf } from '@berth/api';
import { CanceledError, FailedPreconditionError, OutOfRangeError } from '@berth/errdefs';

type Any = protobuf.Any;

/**
 * One client-opened stream as the daemon sees it: frames are protobuf Anys in both directions.
 * The client creates it (Streaming.Stream with a StreamInit) and names it in a Transfer request;
 * the transfer then sends and receives on it. Only the daemon closes it.
 */
export interface Stream {
  /** Sends a frame to the client. Rejects once the stream is closed or the client went away. */
  send(frame: Any): Promise<void>;
  /**
   * The next frame from the client. Rejects with {@link EndOfStreamError} once the client has
   * half-closed, and with Canceled when the client went away.
   */
  recv(signal?: AbortSignal): Promise<Any>;
  /** Ends the stream with OK after the frames already sent; the client reads EOF. */
  close(): void;
  /** Resolves when the stream has ended, whoever ended it. */
  readonly done: Promise<void>;
}

/** The client half-closed its side: it will send nothing more. */
export class EndOfStreamError extends OutOfRangeError {
  constructor() {
    super('end of stream', { bare: true });
  }
}

/**
 * A {@link Stream} over the two halves of a bidirectional call: the client's frames (an async
 * iterator, read only through `recv`) and a queue of frames to send, drained by the call.
 */
export class CallStream implements Stream {
  private readonly queue: Any[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private reading: Promise<IteratorResult<Any>> | undefined;
  private ended!: () => void;
  readonly done = new Promise<void>((resolve) => (this.ended = resolve));

  constructor(
    private readonly incoming: AsyncIterator<Any>,
    /** Aborted when the client goes away (cancel, deadline, connection lost). */
    private readonly callSignal: AbortSignal,
  ) {
    callSignal.addEventListener('abort', () => this.close(), { once: true });
  }

  async send(frame: Any): Promise<void> {
    if (this.callSignal.aborted) throw new CanceledError('stream closed: the client went away');
    if (this.closed) throw new FailedPreconditionError('stream closed');
    this.queue.push(frame);
    this.wake?.();
  }

  async recv(signal?: AbortSignal): Promise<Any> {
    if (this.callSignal.aborted) throw new CanceledError('stream closed: the client went away');
    // One read at a time: a read abandoned through `signal` is picked up by the next call.
    this.reading ??= this.incoming.next();
    const read = this.reading;
    const aborted = [this.callSignal, signal].filter((s): s is AbortSignal => !!s);
    let onAbort: (() => void) | undefined;
    const cancel = new Promise<never>((_, reject) => {
      onAbort = () => reject(new CanceledError('stream read cancelled'));
      for (const s of aborted) s.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const next = await Promise.race([read, cancel]);
      this.reading = undefined;
      if (next.done) {
        // grpc-js ends the request side of a cancelled call too, and may do so just before it
        // reports the cancellation: give that report one turn of the event loop.
        await new Promise((resolve) => setImmediate(resolve));
        if (this.callSignal.aborted) throw new CanceledError('stream closed: the client went away');
        throw new EndOfStreamError();
      }
      return next.value;
    } finally {
      for (const s of aborted) s.removeEventListener('abort', onAbort!);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
  }

  /** The frames to send, in order, until the stream is closed (what the call writes). */
  async *outgoing(): AsyncGenerator<Any> {
    try {
      for (;;) {
        while (this.queue.length > 0) yield this.queue.shift()!;
        if (this.closed || this.callSignal.aborted) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.closed = true;
      this.ended();
    }
  }
}
