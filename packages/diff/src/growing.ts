import { read } from 'node:fs';
import { promisify } from 'node:util';
import { FailedPreconditionError } from '@berth/errdefs';
import { untilAborted } from './abort';

const readAt = promisify(read);

/** The largest read from a growing blob. */
const CHUNK = 1 << 20;

/**
 * What a reader of a blob being written sees of its writer (the main thread's `GrowingBlob` of
 * @berth/content, or the messages a worker thread gets): the bytes on the file so far, how the
 * writer ended, and a wait for the next change.
 */
export interface GrowthState {
  written(): number;
  /** Undefined while the writer writes; `verified` once its bytes were checked; else why it ended. */
  ended(): undefined | 'verified' | Error;
  /** Resolves at the next change of either (or at once when one happened since the last look). */
  changed(): Promise<void>;
}

/**
 * Yields the bytes of a blob being written, from offset 0, by positional reads on `fd` (whose
 * owner keeps it open), waiting whenever the reader has caught up with the writer. Returns once
 * every byte was read and the writer verified them; throws the writer's error when it ended any
 * other way (the bytes read so far may not be the blob's), and the signal's reason when it fires.
 */
export async function* readGrowing(fd: number, state: GrowthState, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let position = 0;
  for (;;) {
    signal?.throwIfAborted();
    const ended = state.ended();
    if (ended instanceof Error) throw ended;
    const written = state.written();
    if (position < written) {
      const want = Math.min(CHUNK, written - position);
      const buffer = Buffer.allocUnsafe(want);
      const { bytesRead } = await readAt(fd, buffer, 0, want, position);
      if (bytesRead === 0) throw new FailedPreconditionError(`blob being written is shorter than reported: ${position} of ${written} bytes`);
      position += bytesRead;
      yield bytesRead === want ? buffer : buffer.subarray(0, bytesRead);
    } else if (ended === 'verified') {
      return;
    } else {
      await untilAborted(state.changed(), signal);
    }
  }
}

/**
 * A {@link GrowthState} fed by calls: `update` with each new length, `end` once. The worker side of
 * a streamed apply, and the adapter for a `GrowingBlob`'s change listener.
 */
export class GrowthTracker implements GrowthState {
  private length: number;
  private end: undefined | 'verified' | Error;
  private wake: (() => void) | undefined;
  private dirty = false;

  constructor(written: number, ended?: 'verified' | Error) {
    this.length = written;
    this.end = ended;
  }

  written(): number {
    return this.length;
  }

  ended(): undefined | 'verified' | Error {
    return this.end;
  }

  changed(): Promise<void> {
    if (this.dirty) {
      this.dirty = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.wake = resolve));
  }

  update(written: number, ended?: 'verified' | Error): void {
    this.length = written;
    if (ended !== undefined && this.end === undefined) this.end = ended;
    const wake = this.wake;
    this.wake = undefined;
    if (wake) wake();
    else this.dirty = true;
  }
}
