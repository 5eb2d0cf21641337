/**
 * SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 with the 3.1 additions), limited to what
 * Kubernetes' streaming peers (Go's spdystream) send and expect. All integers are big-endian.
 *
 *   control frame: 1 bit 1 | version u15 (3) | type u16 | flags u8 | length u24 | payload
 *   data frame:    1 bit 0 | stream id u31   | flags u8 (0x01 FIN) | length u24 | payload
 *
 * Header blocks travel compressed (see spdy-zlib.ts); this module encodes and decodes the
 * uncompressed block and the frames around it, and never throws anything but SpdyProtocolError
 * on bad input.
 */

/** Control frame types. */
export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** The FIN flag (data frames, SYN_STREAM, SYN_REPLY, HEADERS). */
export const FLAG_FIN = 0x01;
/** SYN_STREAM's UNIDIRECTIONAL flag. */
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes used here. */
export const RstStatus = { PROTOCOL_ERROR: 1, INVALID_STREAM: 2, REFUSED_STREAM: 3, INTERNAL_ERROR: 6, CANCEL: 5, STREAM_IN_USE: 8, STREAM_ALREADY_CLOSED: 9 } as const;

/** GOAWAY status codes. */
export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

const MAX_LENGTH = 0xffffff;
const MAX_STREAM_ID = 0x7fffffff;

/** One decoded frame. Header blocks are still compressed. */
export type SpdyFrame =
  | { type: 'data'; streamId: number; fin: boolean; data: Buffer }
  | { type: 'syn_stream'; streamId: number; associatedId: number; priority: number; fin: boolean; unidirectional: boolean; headerBlock: Buffer }
  | { type: 'syn_reply'; streamId: number; fin: boolean; headerBlock: Buffer }
  | { type: 'headers'; streamId: number; fin: boolean; headerBlock: Buffer }
  | { type: 'rst_stream'; streamId: number; status: number }
  | { type: 'settings' }
  | { type: 'ping'; id: number }
  | { type: 'goaway'; lastGoodStreamId: number; status: number }
  | { type: 'window_update'; streamId: number; delta: number }
  | { type: 'unknown'; frameType: number };

/** Thrown for input that is not SPDY/3 as the peer must send it; the connection is then closed. */
export class SpdyProtocolError extends Error {
  constructor(message: string) {
    super(`spdy: ${message}`);
    this.name = 'SpdyProtocolError';
  }
}

/** Limits that protect the decoder from hostile lengths. */
export interface FrameDecoderOptions {
  /** Largest control frame payload accepted, in bytes. Default 64 KiB (header blocks are small, and this bounds a zlib bomb). */
  maxControlLength?: number;
  /** Largest data frame payload accepted, in bytes. Default 16 MiB - 1, SPDY's limit. */
  maxDataLength?: number;
}

/**
 * Cuts a byte stream into frames. Feed it chunks with `push`; it returns the frames completed so
 * far and keeps the rest. Throws SpdyProtocolError on a bad frame (after which it must not be used).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly maxControl: number;
  private readonly maxData: number;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxControl = options.maxControlLength ?? 64 << 10;
    this.maxData = options.maxDataLength ?? MAX_LENGTH;
  }

  /** Bytes held that do not make a whole frame yet. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): SpdyFrame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: SpdyFrame[] = [];
    for (;;) {
      if (this.buffered < 8) break;
      const head = this.peek(8);
      const length = head.readUIntBE(5, 3);
      const control = (head[0] & 0x80) !== 0;
      if (control) {
        const version = head.readUInt16BE(0) & 0x7fff;
        if (version !== 3) throw new SpdyProtocolError(`unsupported version ${version}`);
        if (length > this.maxControl) throw new SpdyProtocolError(`control frame of ${length} bytes is over the limit of ${this.maxControl}`);
      } else if (length > this.maxData) {
        throw new SpdyProtocolError(`data frame of ${length} bytes is over the limit of ${this.maxData}`);
      }
      if (this.buffered < 8 + length) break;
      const whole = this.take(8 + length);
      frames.push(decodeFrame(whole));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, n);
  }

  private take(n: number): Buffer {
    let first = this.chunks[0];
    if (first.length < n) {
      // Join only as many chunks as the frame needs, so a big frame in many chunks costs one copy.
      let have = 0;
      let count = 0;
      while (have < n) have += this.chunks[count++].length;
      first = Buffer.concat(this.chunks.splice(0, count), have);
      this.chunks.unshift(first);
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

function need(payload: Buffer, n: number, what: string): void {
  if (payload.length < n) throw new SpdyProtocolError(`${what} frame too short (${payload.length} bytes)`);
}

/** Decodes one whole frame (8-byte head and payload). */
export function decodeFrame(frame: Buffer): SpdyFrame {
  const flags = frame[4];
  const payload = frame.subarray(8);
  if ((frame[0] & 0x80) === 0) {
    const streamId = frame.readUInt32BE(0) & MAX_STREAM_ID;
    if (streamId === 0) throw new SpdyProtocolError('data frame on stream 0');
    return { type: 'data', streamId, fin: (flags & FLAG_FIN) !== 0, data: payload };
  }
  const type = frame.readUInt16BE(2);
  const fin = (flags & FLAG_FIN) !== 0;
  switch (type) {
    case FrameType.SYN_STREAM: {
      need(payload, 10, 'SYN_STREAM');
      const streamId = payload.readUInt32BE(0) & MAX_STREAM_ID;
      if (streamId === 0) throw new SpdyProtocolError('SYN_STREAM with stream id 0');
      return {
        type: 'syn_stream',
        streamId,
        associatedId: payload.readUInt32BE(4) & MAX_STREAM_ID,
        priority: payload[8] >> 5,
        fin,
        unidirectional: (flags & FLAG_UNIDIRECTIONAL) !== 0,
        headerBlock: payload.subarray(10),
      };
    }
    case FrameType.SYN_REPLY:
    case FrameType.HEADERS: {
      need(payload, 4, type === FrameType.SYN_REPLY ? 'SYN_REPLY' : 'HEADERS');
      const streamId = payload.readUInt32BE(0) & MAX_STREAM_ID;
      if (streamId === 0) throw new SpdyProtocolError('header frame with stream id 0');
      return { type: type === FrameType.SYN_REPLY ? 'syn_reply' : 'headers', streamId, fin, headerBlock: payload.subarray(4) };
    }
    case FrameType.RST_STREAM:
      need(payload, 8, 'RST_STREAM');
      return { type: 'rst_stream', streamId: payload.readUInt32BE(0) & MAX_STREAM_ID, status: payload.readUInt32BE(4) };
    case FrameType.SETTINGS:
      return { type: 'settings' };
    case FrameType.PING:
      need(payload, 4, 'PING');
      return { type: 'ping', id: payload.readUInt32BE(0) };
    case FrameType.GOAWAY:
      need(payload, 4, 'GOAWAY');
      return { type: 'goaway', lastGoodStreamId: payload.readUInt32BE(0) & MAX_STREAM_ID, status: payload.length >= 8 ? payload.readUInt32BE(4) : 0 };
    case FrameType.WINDOW_UPDATE:
      need(payload, 8, 'WINDOW_UPDATE');
      return { type: 'window_update', streamId: payload.readUInt32BE(0) & MAX_STREAM_ID, delta: payload.readUInt32BE(4) & MAX_STREAM_ID };
    default:
      // SPDY says to ignore control frames of unknown types.
      return { type: 'unknown', frameType: type };
  }
}

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_LENGTH) throw new RangeError(`control frame payload of ${payload.length} bytes`);
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8003, 0);
  head.writeUInt16BE(type, 2);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
}

function streamIdOk(id: number): number {
  if (!Number.isInteger(id) || id <= 0 || id > MAX_STREAM_ID) throw new RangeError(`stream id ${id}`);
  return id;
}

/** Encodes a DATA frame (payload up to 16 MiB - 1). */
export function encodeData(streamId: number, data: Buffer, fin = false): Buffer {
  if (data.length > MAX_LENGTH) throw new RangeError(`data frame payload of ${data.length} bytes`);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamIdOk(streamId), 0);
  head[4] = fin ? FLAG_FIN : 0;
  head.writeUIntBE(data.length, 5, 3);
  return data.length === 0 ? head : Buffer.concat([head, data]);
}

/** Encodes a SYN_STREAM around an already compressed header block. */
export function encodeSynStream(streamId: number, compressedBlock: Buffer, options: { associatedId?: number; priority?: number; fin?: boolean; unidirectional?: boolean } = {}): Buffer {
  const p = Buffer.alloc(10);
  p.writeUInt32BE(streamIdOk(streamId), 0);
  p.writeUInt32BE((options.associatedId ?? 0) & MAX_STREAM_ID, 4);
  p[8] = ((options.priority ?? 0) & 7) << 5;
  const flags = (options.fin ? FLAG_FIN : 0) | (options.unidirectional ? FLAG_UNIDIRECTIONAL : 0);
  return controlFrame(FrameType.SYN_STREAM, flags, Buffer.concat([p, compressedBlock]));
}

/** Encodes a SYN_REPLY around an already compressed header block. */
export function encodeSynReply(streamId: number, compressedBlock: Buffer, fin = false): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(streamIdOk(streamId), 0);
  return controlFrame(FrameType.SYN_REPLY, fin ? FLAG_FIN : 0, Buffer.concat([p, compressedBlock]));
}

/** Encodes a RST_STREAM. */
export function encodeRstStream(streamId: number, status: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(streamIdOk(streamId), 0);
  p.writeUInt32BE(status >>> 0, 4);
  return controlFrame(FrameType.RST_STREAM, 0, p);
}

/** Encodes a PING. */
export function encodePing(id: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(id >>> 0, 0);
  return controlFrame(FrameType.PING, 0, p);
}

/** Encodes a GOAWAY. */
export function encodeGoAway(lastGoodStreamId: number, status: number = GoAwayStatus.OK): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastGoodStreamId & MAX_STREAM_ID, 0);
  p.writeUInt32BE(status >>> 0, 4);
  return controlFrame(FrameType.GOAWAY, 0, p);
}

/** Header names (lowercase) to values; a name may carry several values. */
export type SpdyHeaders = Record<string, string[]>;

/** Limits for decoding an uncompressed header block. */
const MAX_HEADER_PAIRS = 1024;

/**
 * Encodes headers as an uncompressed SPDY/3 block: u32 count, then for each pair u32 length +
 * lowercase name and u32 length + value, several values joined by NUL.
 */
export function encodeHeaderBlock(headers: Record<string, string | readonly string[]>): Buffer {
  const parts: Buffer[] = [];
  const names = Object.keys(headers);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(names.length);
  parts.push(count);
  for (const name of names) {
    const v = headers[name];
    const value = typeof v === 'string' ? v : v.join('\0');
    for (const s of [name.toLowerCase(), value]) {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

/** Decodes an uncompressed header block; throws SpdyProtocolError when lengths do not fit. */
export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  if (block.length < 4) throw new SpdyProtocolError('header block too short');
  const count = block.readUInt32BE(0);
  if (count > MAX_HEADER_PAIRS) throw new SpdyProtocolError(`header block with ${count} pairs`);
  const out: SpdyHeaders = Object.create(null) as SpdyHeaders;
  let off = 4;
  const str = (what: string): string => {
    if (off + 4 > block.length) throw new SpdyProtocolError(`header block ends inside a ${what} length`);
    const len = block.readUInt32BE(off);
    off += 4;
    if (len > block.length - off) throw new SpdyProtocolError(`header ${what} of ${len} bytes overruns the block`);
    const s = block.toString('utf8', off, off + len);
    off += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const name = str('name').toLowerCase();
    if (name === '') throw new SpdyProtocolError('empty header name');
    const value = str('value');
    (out[name] ??= []).push(...value.split('\0'));
  }
  if (off !== block.length) throw new SpdyProtocolError(`${block.length - off} bytes after the last header`);
  return out;
}
