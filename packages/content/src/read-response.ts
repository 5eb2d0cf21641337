import type { content as api } from '@berth/api';

/** Appends `v` (a non-negative safe integer) as a protobuf varint. */
function varint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** Room for the field headers in front of a chunk: tag + 10-byte varint, twice. */
export const READ_HEADROOM = 22;

const withRoom = new WeakSet<Uint8Array>();

/**
 * Allocates a chunk buffer of `size` bytes with room in front for the message header, so the
 * encoder can write the header in place instead of copying the chunk.
 */
export function allocReadChunk(size: number): Buffer {
  const chunk = Buffer.allocUnsafeSlow(READ_HEADROOM + size).subarray(READ_HEADROOM);
  withRoom.add(chunk);
  return chunk;
}

/**
 * Encodes a ReadContentResponse{offset=1 int64, data=2 bytes} with a single copy of the data.
 * The generated encoder grows a buffer step by step and copies the payload several times, which
 * for a blob read in 32 KiB calls was most of the daemon's garbage. Same bytes on the wire as
 * the generated code (checked in read-response.test.ts).
 */
export function encodeReadContentResponse(msg: api.ReadContentResponse): Buffer {
  const head: number[] = [];
  if (msg.offset !== 0) {
    if (msg.offset < 0 || !Number.isSafeInteger(msg.offset)) throw new RangeError(`offset ${msg.offset} out of range`);
    head.push(0x08);
    varint(head, msg.offset);
  }
  const data = msg.data;
  if (data.byteLength > 0) {
    head.push(0x12);
    varint(head, data.byteLength);
  }
  if (data.byteLength > 0 && withRoom.has(data) && data.byteOffset >= head.length) {
    // The chunk came from allocReadChunk: its own allocation has room for the header.
    const out = Buffer.from(data.buffer, data.byteOffset - head.length, head.length + data.byteLength);
    for (let i = 0; i < head.length; i++) out[i] = head[i];
    return out;
  }
  const out = Buffer.allocUnsafe(head.length + data.byteLength);
  for (let i = 0; i < head.length; i++) out[i] = head[i];
  if (data.byteLength > 0) out.set(data, head.length);
  return out;
}
