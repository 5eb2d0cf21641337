import * as zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './spdy-dictionary';
import { SpdyProtocolError } from './spdy-frames';

/**
 * One direction of a connection's header compression. SPDY/3 keeps a single zlib stream per
 * direction for the whole connection (primed with the SPDY/3 dictionary), each header block being
 * the bytes produced up to a Z_SYNC_FLUSH, so blocks must go through in frame order: calls are
 * queued and run one at a time.
 */
abstract class HeaderZlib {
  private queue: Promise<unknown> = Promise.resolve();
  private failed: Error | undefined;
  private readonly out: Buffer[] = [];
  private outLength = 0;
  private pending: ((err: Error) => void) | undefined;

  protected constructor(
    private readonly z: zlib.Inflate | zlib.Deflate,
    private readonly maxOutput: number,
  ) {
    z.on('data', (b: Buffer) => {
      // Past the limit, output is counted and dropped: a small hostile block cannot fill memory.
      this.outLength += b.length;
      if (this.outLength <= maxOutput) this.out.push(b);
    });
    z.on('error', (err: Error) => {
      this.failed ??= new SpdyProtocolError(`header block: ${err.message}`);
      // A broken zlib stream never calls the flush callback: fail the waiting block here.
      this.pending?.(this.failed);
    });
  }

  protected run(input: Buffer): Promise<Buffer> {
    const next = this.queue.then(() => this.once(input));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private once(input: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.pending = reject;
      this.z.write(input);
      this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.pending = undefined;
        const length = this.outLength;
        const out = length <= this.maxOutput ? Buffer.concat(this.out, length) : undefined;
        this.out.length = 0;
        this.outLength = 0;
        if (this.failed) return reject(this.failed);
        if (!out) {
          this.failed = new SpdyProtocolError(`header block of ${length} bytes or more is over the limit of ${this.maxOutput}`);
          return reject(this.failed);
        }
        resolve(out);
      });
    });
  }

  /** Frees the zlib stream. */
  close(): void {
    this.failed ??= new SpdyProtocolError('connection closed');
    this.pending?.(this.failed);
    this.pending = undefined;
    this.z.close();
  }
}

/** Decompresses a connection's incoming header blocks, in order. */
export class HeaderInflater extends HeaderZlib {
  /** @param maxBlock largest decompressed block accepted, in bytes (default 256 KiB). */
  constructor(maxBlock = 256 << 10) {
    // zlib asks for the dictionary when the stream's header says so; Node supplies it.
    super(zlib.createInflate({ dictionary: SPDY3_DICTIONARY }), maxBlock);
  }

  /** Returns the uncompressed block; rejects with SpdyProtocolError on corrupt input. */
  inflate(block: Buffer): Promise<Buffer> {
    return this.run(block);
  }
}

/** Compresses a connection's outgoing header blocks, in order. */
export class HeaderDeflater extends HeaderZlib {
  constructor() {
    super(zlib.createDeflate({ dictionary: SPDY3_DICTIONARY }), Number.MAX_SAFE_INTEGER);
  }

  /** Returns the compressed block. */
  deflate(block: Buffer): Promise<Buffer> {
    return this.run(block);
  }
}
