/**
 * One unary gRPC call over HTTP/2 with prior knowledge (h2c, RFC 9113) on a connected socket,
 * written on node:net alone: Node's own http2 module is not in its startup snapshot and costs a
 * command-line program about 30 ms to load, more than the rest of `berth version`.
 *
 * The client side is the least HTTP/2 allows: the connection preface, SETTINGS (no push, and the
 * header list size it accepts), one stream (1) with the request's HEADERS and DATA, ACKs for the
 * server's SETTINGS and PINGs, WINDOW_UPDATEs for the response's DATA. It never needs the
 * server's settings to send: its frames stay within HTTP/2's minimum frame size (16384), and the
 * request within the initial flow-control window (65535), which every peer must allow before its
 * SETTINGS arrive. Everything the server may send is parsed in full (frames split anywhere,
 * padding, priority, CONTINUATION, HPACK with Huffman and the dynamic table), and a server that
 * breaks the protocol, or sends more than the caps, ends the call with an errdefs error.
 */
import { BerthError, DataLossError, DeadlineExceededError, ResourceExhaustedError, UnavailableError, UnknownError, fromGrpcStatus } from '@berth/errdefs';
import type { Socket } from 'node:net';
import { type HeaderField, HpackDecoder, type RequestField, STATIC, encodeHeaderBlock } from './hpack';

/** Frame types (RFC 9113 6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (RFC 9113 6): END_STREAM and ACK share a bit, on different frame types. */
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

/** Error codes (RFC 9113 7), for GOAWAY and RST_STREAM. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const ERROR_NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));
const errorName = (code: number): string => `${ERROR_NAMES.get(code) ?? 'unknown error'} (0x${code.toString(16)})`;

/** Settings identifiers (RFC 9113 6.5.2). */
const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value and minimum: what we accept, and the most we send. */
const MIN_MAX_FRAME_SIZE = 16_384;
const MAX_MAX_FRAME_SIZE = 2 ** 24 - 1;
const INITIAL_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
const STREAM = 1;
/** A header block (all fragments) and a decoded header list may hold this much. */
const MAX_HEADER_BYTES = 64 * 1024;
/** PINGs and SETTINGS the server may make us answer in one call: a flood must not fill our write buffer. */
const MAX_CONTROL_ANSWERS = 1000;
/** gRPC's status codes for an HTTP status without grpc-status (gRPC's "HTTP to gRPC status code mapping"). */
const HTTP_TO_GRPC: Readonly<Record<number, number>> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
/** gRPC's status codes for RST_STREAM error codes (gRPC's HTTP/2 protocol document); others are INTERNAL. */
const RST_TO_GRPC: Readonly<Record<number, number>> = { [ErrorCode.REFUSED_STREAM]: 14, [ErrorCode.CANCEL]: 1, [ErrorCode.ENHANCE_YOUR_CALM]: 8, [ErrorCode.INADEQUATE_SECURITY]: 7 };
const GRPC_INTERNAL = 13;

/**
 * The peer broke HTTP/2 (a connection error, RFC 9113 5.4.1): the call ends with DataLossError
 * (the bytes on the wire are not what the protocol allows), and the connection with a GOAWAY
 * carrying `h2code`.
 */
export class ProtocolError extends DataLossError {
  constructor(
    readonly h2code: number,
    context: string,
  ) {
    super(`h2c: ${context} (${errorName(h2code)})`);
  }
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Encodes one frame. */
export function encodeFrame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, 5);
  out.set(payload, FRAME_HEADER);
  return out;
}

/**
 * Cuts a byte stream into frames, whatever the reads' boundaries, copying each byte once however
 * small the reads. Refuses a frame longer than `maxFrameSize` (the SETTINGS_MAX_FRAME_SIZE this
 * end announced) from its header, before buffering it.
 */
export class FrameReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The whole length (header and payload) of the frame being gathered, once its header is in. */
  private need = 0;

  constructor(private readonly maxFrameSize = MIN_MAX_FRAME_SIZE) {}

  /** Adds bytes; returns the frames they complete, in order. */
  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    for (;;) {
      if (this.need === 0) {
        if (this.buffered < FRAME_HEADER) break;
        const length = this.peekLength();
        if (length > this.maxFrameSize) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${length}-byte frame, over the ${this.maxFrameSize} allowed`);
        this.need = FRAME_HEADER + length;
      }
      if (this.buffered < this.need) break;
      const frame = this.take(this.need);
      this.need = 0;
      frames.push({ type: frame[3]!, flags: frame[4]!, streamId: frame.readUInt32BE(5) & 0x7fffffff, payload: frame.subarray(FRAME_HEADER) });
    }
    return frames;
  }

  /** The 24-bit length at the start of the buffered bytes (at least 9 are buffered). */
  private peekLength(): number {
    let length = 0;
    for (let i = 0, c = 0, at = 0; i < 3; i++, at++) {
      while (at >= this.chunks[c]!.length) {
        c++;
        at = 0;
      }
      length = length * 256 + this.chunks[c]![at]!;
    }
    return length;
  }

  /** Removes the first `n` buffered bytes into a buffer of their own (a frame outlives the reads it came in). */
  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let filled = 0; filled < n; ) {
      const first = this.chunks[0]!;
      const count = Math.min(first.length, n - filled);
      first.copy(out, filled, 0, count);
      filled += count;
      if (count === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(count);
    }
    this.buffered -= n;
    return out;
  }
}

/** A unary call's request. */
export interface UnaryRequest {
  /** The method's path, `/package.Service/Method`. */
  path: string;
  /** The serialized request message (at most 64 kB: it is sent within the initial window). */
  message: Uint8Array;
  /** Sent as grpc-timeout so that the server gives up when the client does; ms. */
  timeoutMs: number;
  /** Where the call goes, for error messages (a socket path). */
  peer: string;
  /** The :authority; "localhost" by default, which grpc-js and Go's grpc both send for a unix socket. */
  authority?: string;
  /** The largest response message accepted, in bytes (default 4 MiB, gRPC's default receive limit). */
  maxResponseBytes?: number;
}

/** How an exchange ended: the response message, or the error. */
export type Outcome = { ok: true; message: Buffer } | { ok: false; error: Error };

/**
 * The protocol side of one unary call, without the socket: `start()` writes the preface and the
 * request through `write`, `receive()` takes what the server sent, and `onSettled` runs once
 * with the outcome. After that, writes stop; the owner closes the connection (`goodbye()` gives
 * the GOAWAY to end it with). `receive` never throws.
 */
export class UnaryExchange {
  private readonly reader = new FrameReader(MIN_MAX_FRAME_SIZE);
  private readonly hpack = new HpackDecoder({ maxHeaderListSize: MAX_HEADER_BYTES });
  private outcome?: Outcome;
  private closingCode: number = ErrorCode.NO_ERROR;
  private sawServerSettings = false;
  /** The header block being gathered from HEADERS and CONTINUATION frames. */
  private block?: { fragments: Buffer[]; bytes: number; endStream: boolean };
  private responseHeaders?: Map<string, string>;
  private readonly data: Buffer[] = [];
  private dataBytes = 0;
  private readonly maxData: number;
  /**
   * What the server may still send us before our next WINDOW_UPDATE. With one stream, the
   * connection's window and the stream's move together.
   */
  private recvWindow = INITIAL_WINDOW;
  /** What we may send: kept only to check the server's WINDOW_UPDATEs and SETTINGS. */
  private sendWindow = INITIAL_WINDOW;
  private streamSendWindow = INITIAL_WINDOW;
  private peerInitialWindow = INITIAL_WINDOW;
  private controlAnswers = 0;
  private goaway?: { lastStreamId: number; code: number; debug: string };

  constructor(
    private readonly request: UnaryRequest,
    private readonly write: (bytes: Buffer) => void,
    private readonly onSettled: (outcome: Outcome) => void,
  ) {
    this.maxData = (request.maxResponseBytes ?? 4 * 1024 * 1024) + 5;
  }

  /** Writes the connection preface, our SETTINGS, and the whole request on stream 1. */
  start(): void {
    const { path, message, timeoutMs } = this.request;
    if (message.length + 5 > INITIAL_WINDOW) {
      throw new ResourceExhaustedError(`h2c: a ${message.length}-byte request; this client sends at most ${INITIAL_WINDOW - 5}`);
    }
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(Setting.ENABLE_PUSH, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(Setting.MAX_HEADER_LIST_SIZE, 6);
    settings.writeUInt32BE(MAX_HEADER_BYTES, 8);
    // SETTINGS_HEADER_TABLE_SIZE stays at its initial 4096: the decoder is complete, and a
    // smaller table would only save the server's encoder a few hundred bytes of state.
    const fields: RequestField[] = [
      { index: STATIC.methodPost },
      { index: STATIC.schemeHttp },
      { name: STATIC.path, value: path },
      { name: STATIC.authority, value: this.request.authority ?? 'localhost' },
      { name: STATIC.contentType, value: 'application/grpc' },
      { name: 'te', value: 'trailers' },
      { name: 'grpc-timeout', value: grpcTimeout(timeoutMs) },
    ];
    const block = encodeHeaderBlock(fields);
    const out: Buffer[] = [PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0, settings)];
    for (let at = 0; at < block.length || at === 0; at += MIN_MAX_FRAME_SIZE) {
      const last = at + MIN_MAX_FRAME_SIZE >= block.length;
      const type = at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      out.push(encodeFrame(type, last ? Flag.END_HEADERS : 0, STREAM, block.subarray(at, at + MIN_MAX_FRAME_SIZE)));
    }
    const body = Buffer.alloc(5 + message.length);
    body.writeUInt32BE(message.length, 1);
    body.set(message, 5);
    for (let at = 0; at < body.length; at += MIN_MAX_FRAME_SIZE) {
      const last = at + MIN_MAX_FRAME_SIZE >= body.length;
      out.push(encodeFrame(FrameType.DATA, last ? Flag.END_STREAM : 0, STREAM, body.subarray(at, at + MIN_MAX_FRAME_SIZE)));
    }
    this.sendWindow -= body.length;
    this.streamSendWindow -= body.length;
    this.write(Buffer.concat(out));
  }

  /** Takes bytes the server sent. */
  receive(chunk: Buffer): void {
    if (this.outcome) return;
    try {
      for (const frame of this.reader.push(chunk)) {
        this.frame(frame);
        if (this.outcome) return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.closingCode = err.h2code;
        this.settle({ ok: false, error: err });
      } else if (err instanceof BerthError) {
        this.closingCode = err instanceof ResourceExhaustedError ? ErrorCode.ENHANCE_YOUR_CALM : ErrorCode.PROTOCOL_ERROR;
        this.settle({ ok: false, error: err });
      } else {
        // A bug of ours, not the server's doing: still an error of the call, never a crash.
        this.closingCode = ErrorCode.INTERNAL_ERROR;
        this.settle({ ok: false, error: new UnknownError(`h2c: ${(err as Error)?.message ?? String(err)}`, { cause: err }) });
      }
    }
  }

  /** The connection ended (the server closed it, or it failed) before the call settled. */
  closed(cause?: Error): void {
    if (this.outcome) return;
    const why = cause ? `the connection failed (${cause.message})` : 'the server closed the connection';
    const goaway = this.goaway ? `, after GOAWAY ${errorName(this.goaway.code)}${this.goaway.debug ? `: ${this.goaway.debug}` : ''}` : '';
    this.settle({ ok: false, error: new UnavailableError(`${this.request.path} on ${this.request.peer}: ${why} before the call's status${goaway}`, { cause }) });
  }

  /** Ends the call with `error` (the caller's deadline): the stream is reset with CANCEL. */
  cancel(error: Error): void {
    if (this.outcome) return;
    this.write(rstStream(ErrorCode.CANCEL));
    this.settle({ ok: false, error });
  }

  /** The GOAWAY that ends this connection once settled: NO_ERROR, or the protocol error we saw. */
  goodbye(): Buffer {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(0, 0); // we accept no streams from the server
    payload.writeUInt32BE(this.closingCode, 4);
    return encodeFrame(FrameType.GOAWAY, 0, 0, payload);
  }

  private settle(outcome: Outcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    this.onSettled(outcome);
  }

  private frame(f: Frame): void {
    if (!this.sawServerSettings) {
      // The server's preface is a SETTINGS frame (RFC 9113 3.4).
      if (f.type !== FrameType.SETTINGS || f.flags & Flag.ACK) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'the server did not start with SETTINGS (is it an HTTP/2 server?)');
      this.sawServerSettings = true;
    }
    if (this.block && f.type !== FrameType.CONTINUATION) {
      throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `a frame of type ${f.type} inside a header block`);
    }
    switch (f.type) {
      case FrameType.DATA:
        return this.onData(f);
      case FrameType.HEADERS:
        return this.onHeaders(f);
      case FrameType.CONTINUATION:
        return this.onContinuation(f);
      case FrameType.PRIORITY:
        if (f.streamId === 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (f.payload.length !== 5) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${f.payload.length}-byte PRIORITY`);
        return;
      case FrameType.RST_STREAM:
        return this.onRstStream(f);
      case FrameType.SETTINGS:
        return this.onSettings(f);
      case FrameType.PUSH_PROMISE:
        throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE, with push disabled');
      case FrameType.PING:
        if (f.streamId !== 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `PING on stream ${f.streamId}`);
        if (f.payload.length !== 8) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${f.payload.length}-byte PING`);
        if (!(f.flags & Flag.ACK)) this.answer(encodeFrame(FrameType.PING, Flag.ACK, 0, f.payload));
        return;
      case FrameType.GOAWAY:
        return this.onGoaway(f);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(f);
      default:
        return; // unknown frame types are ignored (RFC 9113 4.1)
    }
  }

  /** Checks that a stream frame is for our stream. Frames of any other stream are for an idle one. */
  private ours(f: Frame, what: string): void {
    if (f.streamId !== STREAM) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `${what} on stream ${f.streamId}, where only stream ${STREAM} is open`);
  }

  /** A frame's payload without its padding (and without `skip` more bytes after the pad length: PRIORITY's). */
  private unpad(f: Frame, what: string, skip = 0): Buffer {
    let start = 0;
    let end = f.payload.length;
    if (f.flags & Flag.PADDED) {
      if (end < 1) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a padded ${what} without its pad length`);
      start = 1;
      end -= f.payload[0]!;
    }
    start += skip;
    if (end < start) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `a ${what} whose padding is longer than its payload`);
    return f.payload.subarray(start, end);
  }

  private onHeaders(f: Frame): void {
    this.ours(f, 'HEADERS');
    const fragment = this.unpad(f, 'HEADERS', f.flags & Flag.PRIORITY ? 5 : 0);
    this.block = { fragments: [], bytes: 0, endStream: (f.flags & Flag.END_STREAM) !== 0 };
    this.addFragment(fragment, (f.flags & Flag.END_HEADERS) !== 0);
  }

  private onContinuation(f: Frame): void {
    if (!this.block) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block');
    this.ours(f, 'CONTINUATION');
    this.addFragment(f.payload, (f.flags & Flag.END_HEADERS) !== 0);
  }

  private addFragment(fragment: Buffer, last: boolean): void {
    const block = this.block!;
    block.bytes += fragment.length;
    if (block.bytes > MAX_HEADER_BYTES) {
      throw new ResourceExhaustedError(`${this.request.path} on ${this.request.peer}: a header block over ${MAX_HEADER_BYTES} bytes`);
    }
    block.fragments.push(fragment);
    if (!last) return;
    this.block = undefined;
    let fields: HeaderField[];
    try {
      fields = this.hpack.decode(Buffer.concat(block.fragments));
    } catch (err) {
      // The decoder's table is now unknown: a connection error whatever the cause (RFC 9113 4.3).
      if (err instanceof DataLossError) throw new ProtocolError(ErrorCode.COMPRESSION_ERROR, (err as Error).message);
      throw err;
    }
    this.onHeaderList(fields, block.endStream);
  }

  private onHeaderList(fields: HeaderField[], endStream: boolean): void {
    const headers = new Map<string, string>();
    for (const [name, value] of fields) headers.set(name, headers.has(name) ? `${headers.get(name)},${value}` : value);
    if (!this.responseHeaders) {
      const status = headers.get(':status');
      if (status === undefined) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'response headers without :status');
      // An interim response (1xx) comes before the real one; gRPC servers send none, but HTTP allows it.
      if (/^1\d\d$/.test(status) && !endStream) return;
      this.responseHeaders = headers;
      if (endStream) this.finish(headers); // trailers-only
      return;
    }
    if (!endStream) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'a second header block without END_STREAM');
    this.finish(headers);
  }

  private onData(f: Frame): void {
    this.ours(f, 'DATA');
    if (!this.responseHeaders) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'DATA before the response headers');
    // Flow control counts the whole payload, padding included (RFC 9113 6.9.1).
    const size = f.payload.length;
    if (size > this.recvWindow) throw new ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, `${size} bytes of DATA past the flow-control window`);
    this.recvWindow -= size;
    const data = this.unpad(f, 'DATA');
    this.dataBytes += data.length;
    if (this.dataBytes > this.maxData) {
      const limit = this.maxData - 5;
      this.write(rstStream(ErrorCode.CANCEL));
      this.settle({ ok: false, error: new ResourceExhaustedError(`${this.request.path} on ${this.request.peer}: the answer is larger than ${limit} bytes`) });
      return;
    }
    this.data.push(data);
    if (f.flags & Flag.END_STREAM) return this.finish(undefined);
    // Give back what was read once half the window is used, so that a response larger than the
    // initial window can arrive (a small one needs no WINDOW_UPDATE at all).
    const used = INITIAL_WINDOW - this.recvWindow;
    if (used >= INITIAL_WINDOW / 2) {
      const inc = Buffer.alloc(4);
      inc.writeUInt32BE(used, 0);
      this.write(Buffer.concat([encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, inc), encodeFrame(FrameType.WINDOW_UPDATE, 0, STREAM, inc)]));
      this.recvWindow = INITIAL_WINDOW;
    }
  }

  private onRstStream(f: Frame): void {
    if (f.streamId === 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (f.payload.length !== 4) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${f.payload.length}-byte RST_STREAM`);
    this.ours(f, 'RST_STREAM');
    const code = f.payload.readUInt32BE(0);
    const grpcCode = RST_TO_GRPC[code] ?? GRPC_INTERNAL;
    this.settle({
      ok: false,
      error: fromGrpcStatus({ code: grpcCode, details: `${this.request.path} on ${this.request.peer}: the server reset the stream with ${errorName(code)}` }),
    });
  }

  private onSettings(f: Frame): void {
    if (f.streamId !== 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `SETTINGS on stream ${f.streamId}`);
    if (f.flags & Flag.ACK) {
      if (f.payload.length !== 0) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, 'a SETTINGS ACK with a payload');
      return;
    }
    if (f.payload.length % 6 !== 0) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${f.payload.length}-byte SETTINGS`);
    for (let at = 0; at < f.payload.length; at += 6) {
      const id = f.payload.readUInt16BE(at);
      const value = f.payload.readUInt32BE(at + 2);
      if (id === Setting.ENABLE_PUSH && value !== 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value} from a server`);
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
        this.streamSendWindow += value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        if (this.streamSendWindow > MAX_WINDOW) throw new ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE takes the window past 2^31-1');
      }
      if (id === Setting.MAX_FRAME_SIZE && (value < MIN_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE)) {
        throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
      }
      // HEADER_TABLE_SIZE binds our encoder, which never indexes; MAX_CONCURRENT_STREAMS and
      // MAX_HEADER_LIST_SIZE cannot refuse one small stream already sent; unknown ids are ignored.
    }
    this.answer(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
  }

  private onGoaway(f: Frame): void {
    if (f.streamId !== 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, `GOAWAY on stream ${f.streamId}`);
    if (f.payload.length < 8) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${f.payload.length}-byte GOAWAY`);
    const lastStreamId = f.payload.readUInt32BE(0) & 0x7fffffff;
    const code = f.payload.readUInt32BE(4);
    const debug = f.payload.subarray(8, 8 + 256).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
    this.goaway = { lastStreamId, code, debug };
    // A stream above the last one the server will process was not processed: safe to retry (6.8).
    if (lastStreamId < STREAM) {
      this.settle({
        ok: false,
        error: new UnavailableError(`${this.request.path} on ${this.request.peer}: the server refused the call (GOAWAY ${errorName(code)}${debug ? `: ${debug}` : ''})`),
      });
    }
    // Otherwise our stream may still complete: wait for it, or for the connection to close.
  }

  private onWindowUpdate(f: Frame): void {
    if (f.payload.length !== 4) throw new ProtocolError(ErrorCode.FRAME_SIZE_ERROR, `a ${f.payload.length}-byte WINDOW_UPDATE`);
    if (f.streamId !== 0) this.ours(f, 'WINDOW_UPDATE');
    const inc = f.payload.readUInt32BE(0) & 0x7fffffff;
    if (inc === 0) throw new ProtocolError(ErrorCode.PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
    if (f.streamId === 0) this.sendWindow += inc;
    else this.streamSendWindow += inc;
    if (this.sendWindow > MAX_WINDOW || this.streamSendWindow > MAX_WINDOW) {
      throw new ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, 'a WINDOW_UPDATE past 2^31-1');
    }
  }

  /** Writes the answer to a PING or SETTINGS, while the server has not asked for too many. */
  private answer(frame: Buffer): void {
    if (++this.controlAnswers > MAX_CONTROL_ANSWERS) {
      throw new ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, `over ${MAX_CONTROL_ANSWERS} PING and SETTINGS frames in one call`);
    }
    this.write(frame);
  }

  /** The stream ended (END_STREAM): the status from `trailers`, the message from the DATA. */
  private finish(trailers: Map<string, string> | undefined): void {
    const { path, peer } = this.request;
    const status = trailers?.get('grpc-status');
    if (status === undefined) {
      const http = Number(this.responseHeaders?.get(':status'));
      if (http !== 200) {
        const code = HTTP_TO_GRPC[http] ?? 2;
        return this.settle({ ok: false, error: fromGrpcStatus({ code, details: `${path} on ${peer}: HTTP status ${http} without a gRPC status` }) });
      }
      return this.settle({ ok: false, error: new UnavailableError(`${path} on ${peer}: the stream ended without a gRPC status`) });
    }
    if (!/^\d{1,2}$/.test(status)) {
      return this.settle({ ok: false, error: new DataLossError(`${path} on ${peer}: grpc-status ${JSON.stringify(status)} is not a status code`) });
    }
    const code = Number(status);
    if (code !== 0) {
      return this.settle({ ok: false, error: fromGrpcStatus({ code, details: decodeGrpcMessage(trailers!.get('grpc-message') ?? '') }) });
    }
    const body = Buffer.concat(this.data);
    if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
      return this.settle({ ok: false, error: new DataLossError(`${path} on ${peer}: the answer is not one gRPC message (${body.length} bytes)`) });
    }
    if (body[0] !== 0) {
      return this.settle({ ok: false, error: new DataLossError(`${path} on ${peer}: the answer is compressed, which this client did not ask for`) });
    }
    this.settle({ ok: true, message: body.subarray(5) });
  }
}

function rstStream(code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code, 0);
  return encodeFrame(FrameType.RST_STREAM, 0, STREAM, payload);
}

/** grpc-timeout: at most 8 digits and a unit (gRPC's HTTP/2 protocol document). */
export function grpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  for (const [unit, per] of [['m', 1], ['S', 1000], ['M', 60_000], ['H', 3_600_000]] as const) {
    const n = Math.ceil(whole / per);
    if (n <= 99_999_999) return `${n}${unit}`;
  }
  return '99999999H';
}

/**
 * grpc-message is percent-encoded UTF-8 (gRPC's HTTP/2 protocol document). The header was read
 * as latin1 octets; they are taken back as UTF-8 so that a server that sends raw UTF-8 is read as
 * Go's client reads it.
 */
export function decodeGrpcMessage(raw: string): string {
  const octets = Buffer.from(raw, 'latin1').toString('utf8');
  try {
    return decodeURIComponent(octets);
  } catch {
    return octets;
  }
}

/**
 * Makes one unary call on a connected socket and closes it after: resolves to the response
 * message, or rejects with the errdefs error of the server's status (or of what went wrong:
 * Unavailable when the connection ends first, DeadlineExceeded after `request.timeoutMs`,
 * DataLoss when the server breaks HTTP/2 or gRPC's framing, ResourceExhausted past the caps).
 */
export function unaryCall(socket: Socket, request: UnaryRequest): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onData = (chunk: Buffer) => exchange.receive(chunk);
    const onError = (err: Error) => exchange.closed(err);
    const onClose = () => exchange.closed();
    const exchange = new UnaryExchange(
      request,
      (bytes) => {
        if (socket.writable) socket.write(bytes);
      },
      (outcome) => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
        // The call is over, answered or not: tell the server, then close without waiting on it.
        if (socket.writable) {
          socket.end(exchange.goodbye(), () => socket.destroy());
          // A server that stops reading must not keep the program alive.
          setTimeout(() => socket.destroy(), 1000).unref();
        } else socket.destroy();
        if (outcome.ok) resolve(outcome.message);
        else reject(outcome.error);
      },
    );
    // Errors after the end (a reset while closing) are nobody's business any more.
    socket.on('error', onError);
    socket.on('data', onData);
    socket.on('close', onClose);
    timer = setTimeout(() => exchange.cancel(new DeadlineExceededError(`${request.path}: no answer from ${request.peer} in ${request.timeoutMs} ms`)), request.timeoutMs);
    try {
      exchange.start();
    } catch (err) {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }
  });
}
