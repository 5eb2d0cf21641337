import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { InvalidArgumentError } from '@berth/errdefs';
import { IO_CHUNK } from './fs-util';
import type { ReaderAt } from './types';

/**
 * A {@link ReaderAt} over an open, immutable blob file. Every read is positional, so reads and
 * streams may run concurrently on one instance.
 */
export class FileReaderAt implements ReaderAt {
  private closed = false;

  /** `release` replaces closing the handle when the handle is shared (see BlobHandles). */
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly release?: () => void,
  ) {}

  get fd(): number {
    return this.fh.fd;
  }

  async readAt(buffer: Uint8Array, offset: number): Promise<number> {
    checkOffset(offset, 'offset');
    let done = 0;
    while (done < buffer.byteLength && offset + done < this.size) {
      const { bytesRead } = await this.fh.read(buffer, done, buffer.byteLength - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  createReadStream(offset = 0, length?: number): Readable {
    checkOffset(offset, 'offset');
    if (length !== undefined) checkOffset(length, 'length');
    const start = Math.min(offset, this.size);
    const end = length === undefined ? this.size : Math.min(this.size, start + length);
    if (end <= start) return Readable.from([], { objectMode: false });
    // autoClose off: the handle belongs to this ReaderAt, which may serve several streams.
    return this.fh.createReadStream({ start, end: end - 1, autoClose: false, highWaterMark: IO_CHUNK });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.release) this.release();
    else await this.fh.close();
  }
}

function checkOffset(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${value}`);
  }
}
