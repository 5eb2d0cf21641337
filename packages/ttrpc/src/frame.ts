/**
 * ttrpc framing: every message is a 10-byte big-endian header (uint32 payload length, uint32
 * stream id, uint8 type, uint8 flags) followed by the payload, a protobuf `ttrpc.Request` or
 * `ttrpc.Response`. Clients use odd stream ids; a response carries its request's id.
 */

/** Bytes in a frame header. */
export const FRAME_HEADER_LENGTH = 10;
/** Largest payload either side accepts or sends (ttrpc's limit): 4 MiB. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

/** Frame types of ttrpc as containerd 1.6 speaks it. */
export enum FrameType {
  Request = 1,
  Response = 2,
}

export interface FrameHeader {
  readonly length: number;
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
}

/** Encodes one frame: header and payload in one buffer. */
export function encodeFrame(streamId: number, type: FrameType, payload: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeUInt32BE(streamId >>> 0, 4);
  frame.writeUInt8(type, 8);
  frame.writeUInt8(flags, 9);
  frame.set(payload, FRAME_HEADER_LENGTH);
  return frame;
}

/** Decodes a frame header from the first 10 bytes of `buf`. */
export function decodeHeader(buf: Buffer): FrameHeader {
  return { length: buf.readUInt32BE(0), streamId: buf.readUInt32BE(4), type: buf.readUInt8(8), flags: buf.readUInt8(9) };
}

/** Raised for bytes that cannot be ttrpc; the connection that sent them is closed. */
export class TtrpcProtocolError extends Error {
  constructor(message: string) {
    super(`ttrpc: ${message}`);
    Object.defineProperty(this, 'name', { value: 'TtrpcProtocolError', enumerable: false });
  }
}

/** What the decoder produced from the bytes so far. */
export type DecodedFrame =
  | { readonly kind: 'frame'; readonly header: FrameHeader; readonly payload: Buffer }
  /** A frame over the size limit: its payload was skipped without being buffered. */
  | { readonly kind: 'oversized'; readonly header: FrameHeader };

/**
 * Splits a byte stream into frames. Payloads over `maxLength` are skipped as they arrive (never
 * buffered) and reported as `oversized`, so the peer gets an error for that call and the
 * connection carries on, as ttrpc does. A header of a type this side does not accept throws
 * TtrpcProtocolError: the stream is not ttrpc (or is out of sync) and cannot be trusted further.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header?: FrameHeader;
  private skipping = 0;

  constructor(
    private readonly accept: FrameType,
    private readonly maxLength = MAX_MESSAGE_LENGTH,
  ) {}

  /** Feeds bytes; returns the frames they complete, in order. */
  push(chunk: Buffer): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, chunk.length);
      this.skipping -= n;
      chunk = chunk.subarray(n);
      if (this.skipping === 0) out.push({ kind: 'oversized', header: this.header! }), (this.header = undefined);
    }
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (!this.header) {
        if (this.buffered < FRAME_HEADER_LENGTH) return out;
        const header = decodeHeader(this.take(FRAME_HEADER_LENGTH));
        if (header.type !== this.accept) {
          throw new TtrpcProtocolError(`unexpected frame type ${header.type} (stream ${header.streamId}, length ${header.length})`);
        }
        this.header = header;
        if (header.length > this.maxLength) {
          const n = Math.min(header.length, this.buffered);
          this.take(n);
          this.skipping = header.length - n;
          if (this.skipping > 0) return out;
          out.push({ kind: 'oversized', header });
          this.header = undefined;
          continue;
        }
      }
      if (this.buffered < this.header.length) return out;
      out.push({ kind: 'frame', header: this.header, payload: this.take(this.header.length) });
      this.header = undefined;
    }
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buffered;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const head = all.subarray(0, n);
    all = all.subarray(n);
    this.chunks = all.length > 0 ? [all] : [];
    this.buffered = all.length;
    return head;
  }
}

/** The status message ttrpc uses for a frame over the limit. */
export function oversizedMessage(length: number, max = MAX_MESSAGE_LENGTH): string {
  return `message length ${length} exceed maximum message size of ${max}`;
}
