import { type Server, type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { version } from '@berth/api';
import {
  BerthError,
  CanceledError,
  DataLossError,
  DeadlineExceededError,
  NotFoundError,
  NotImplementedError,
  ResourceExhaustedError,
  UnavailableError,
  UnknownError,
} from '@berth/errdefs';
import { tempDir } from '@berth/testing';
import { ErrorCode, Flag, type Frame, FrameReader, FrameType, type Outcome, UnaryExchange, type UnaryRequest, encodeFrame, grpcTimeout, unaryCall } from './h2c';
import { HpackDecoder, type RequestField, encodeHeaderBlock } from './hpack';
import { huffmanCode } from './huffman';
import { daemonVersion } from './version';

/*
 * The h2c client: its frames and its answers to a scripted server fed one byte at a time, the
 * errors every broken or hostile server gets, random input, and real servers (grpc-js here;
 * berthd and containerd 1.6 and 2.4.2 in version-daemons.test.ts).
 */

const VERSION_PATH = '/containerd.services.version.v1.Version/Version';
const { DATA, HEADERS, CONTINUATION, SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, PRIORITY, PUSH_PROMISE } = FrameType;
const { END_STREAM, END_HEADERS, PADDED, ACK } = Flag;

const u32 = (...values: number[]): Buffer => {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v, i * 4));
  return b;
};
const settings = (...pairs: Array<[number, number]>): Buffer => {
  const b = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(v, i * 6 + 2);
  });
  return encodeFrame(SETTINGS, 0, 0, b);
};
const grpcMessage = (message: Uint8Array, compressed = 0): Buffer => {
  const b = Buffer.alloc(5 + message.length);
  b[0] = compressed;
  b.writeUInt32BE(message.length, 1);
  b.set(message, 5);
  return b;
};
const block = (...fields: RequestField[]): Buffer => encodeHeaderBlock(fields);
const okHeaders = block({ index: 8 }, { name: 31, value: 'application/grpc' });
const okTrailers = block({ name: 'grpc-status', value: '0' }, { name: 'grpc-message', value: '' });
const statusTrailers = (code: number, message: string) => block({ index: 8 }, { name: 'grpc-status', value: String(code) }, { name: 'grpc-message', value: message });
const versionMessage = Buffer.from(version.VersionResponse.encode({ version: 'v9.9.9', revision: 'r1' }).finish());

/** A header block written the way Go's and nghttp2's encoders write it: Huffman strings, incremental indexing. */
function huffmanBlock(fields: Array<[string, string]>): Buffer {
  const huff = (s: string): number[] => {
    const bits: number[] = [];
    for (const o of Buffer.from(s, 'latin1')) {
      const { code, length } = huffmanCode(o);
      for (let i = length - 1; i >= 0; i--) bits.push(Math.floor(code / 2 ** i) & 1);
    }
    while (bits.length % 8) bits.push(1);
    const octets: number[] = [];
    for (let i = 0; i < bits.length; i += 8) octets.push(parseInt(bits.slice(i, i + 8).join(''), 2));
    if (octets.length > 126) throw new Error('test helper: strings up to 126 octets');
    return [0x80 | octets.length, ...octets];
  };
  return Buffer.from(fields.flatMap(([name, value]) => [0x40, ...huff(name), ...huff(value)]));
}

/** An exchange with a scripted server: what the client wrote, and how the call ended. */
function harness(request: Partial<UnaryRequest> = {}) {
  const written: Buffer[] = [];
  let outcome: Outcome | undefined;
  const x = new UnaryExchange(
    { path: VERSION_PATH, message: new Uint8Array(0), timeoutMs: 5000, peer: 'test.sock', ...request },
    (b) => written.push(b),
    (o) => {
      if (outcome) throw new Error('settled twice');
      outcome = o;
    },
  );
  x.start();
  return {
    x,
    /** Feeds bytes whole, or one byte at a time. */
    feed(bytes: Buffer, bytewise = false) {
      if (!bytewise) return x.receive(bytes);
      for (let i = 0; i < bytes.length; i++) x.receive(bytes.subarray(i, i + 1));
    },
    /** The frames the client wrote (after the preface). */
    frames(): Frame[] {
      const all = Buffer.concat(written);
      expect(all.subarray(0, 24).toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      return new FrameReader(1 << 20).push(all.subarray(24));
    },
    get outcome() {
      return outcome;
    },
    error(): Error {
      if (!outcome || outcome.ok) throw new Error(`expected an error, got ${JSON.stringify(outcome)}`);
      return outcome.error;
    },
  };
}

describe('FrameReader', () => {
  it('cuts frames out of a stream split at every byte', () => {
    const frames = [encodeFrame(SETTINGS, 0, 0), encodeFrame(DATA, END_STREAM, 1, Buffer.from('hello')), encodeFrame(99, 0xff, 0x7fffffff, Buffer.alloc(16384, 7))];
    const stream = Buffer.concat(frames);
    const reader = new FrameReader();
    const got: Frame[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...reader.push(stream.subarray(i, i + 1)));
    expect(got.map((f) => [f.type, f.flags, f.streamId, f.payload.length])).toEqual([
      [SETTINGS, 0, 0, 0],
      [DATA, END_STREAM, 1, 5],
      [99, 0xff, 0x7fffffff, 16384],
    ]);
    expect(got[1]!.payload.toString()).toBe('hello');
    // The reserved bit of the stream id is ignored.
    expect(new FrameReader().push(Buffer.from('000000000080000003', 'hex'))[0]!.streamId).toBe(3);
  });

  it('refuses a frame over the maximum frame size before buffering it', () => {
    expect(() => new FrameReader().push(Buffer.from('004001000000000000', 'hex'))).toThrow(/16385-byte frame, over the 16384 allowed \(FRAME_SIZE_ERROR \(0x6\)\)/);
  });
});

describe('UnaryExchange: what the client sends', () => {
  it('writes the preface, SETTINGS without push, and one stream of HEADERS and DATA with END_STREAM', () => {
    const h = harness({ message: Buffer.from('req'), timeoutMs: 2500 });
    const [s, headers, data] = h.frames();
    expect(s).toEqual({ type: SETTINGS, flags: 0, streamId: 0, payload: Buffer.from('000200000000' + '000600010000', 'hex') });
    expect([headers!.type, headers!.flags, headers!.streamId]).toEqual([HEADERS, END_HEADERS, 1]);
    expect(new HpackDecoder().decode(headers!.payload)).toEqual([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', VERSION_PATH],
      [':authority', 'localhost'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['grpc-timeout', '2500m'],
    ]);
    expect(data).toEqual({ type: DATA, flags: END_STREAM, streamId: 1, payload: grpcMessage(Buffer.from('req')) });
  });

  it('splits a request into frames of at most 16384 bytes, and refuses one past the initial window', () => {
    const h = harness({ message: Buffer.alloc(40_000, 1) });
    const data = h.frames().filter((f) => f.type === DATA);
    expect(data.map((f) => [f.payload.length, f.flags])).toEqual([
      [16384, 0],
      [16384, 0],
      [40_005 - 32768, END_STREAM],
    ]);
    expect(() => harness({ message: Buffer.alloc(65_531) })).toThrow(ResourceExhaustedError);
  });

  it.each([
    [0, '0m'],
    [10_000, '10000m'],
    [99_999_999, '99999999m'],
    [100_000_000, '100000S'],
    [1e13, '2777778H'],
  ])('sends a timeout of %i ms as grpc-timeout %s', (ms, header) => {
    expect(grpcTimeout(ms)).toBe(header);
  });
});

describe('UnaryExchange: a server fed one byte at a time', () => {
  it('reads an answer in padded, prioritized, continued and Huffman-coded frames, answering SETTINGS and PINGs', () => {
    const h = harness();
    const headerBlock = Buffer.concat([
      Buffer.from([0x88]), // :status 200
      huffmanBlock([['content-type', 'application/grpc'], ['x-server', 'scripted']]),
    ]);
    const trailersBlock = Buffer.concat([
      huffmanBlock([['grpc-status', '0']]),
      Buffer.from([0xbf]), // x-server from the dynamic table, now at 63: a repeat is allowed
      Buffer.from([0x00, 0x0c]),
      Buffer.from('grpc-message'),
      Buffer.from([0x00]),
    ]);
    const body = grpcMessage(versionMessage);
    const server = Buffer.concat([
      settings([0x5, 1 << 20], [0x4, 1 << 20], [0x3, 100], [0x1, 0], [0x99, 1]),
      encodeFrame(PING, 0, 0, Buffer.from('12345678')),
      encodeFrame(WINDOW_UPDATE, 0, 0, u32(1000)),
      encodeFrame(PRIORITY, 0, 1, Buffer.alloc(5)),
      encodeFrame(0x42, 0x1, 0, Buffer.from('an extension frame to ignore')),
      // HEADERS with PADDED (3 octets of padding) and PRIORITY, then two CONTINUATIONs.
      encodeFrame(HEADERS, PADDED | Flag.PRIORITY, 1, Buffer.concat([Buffer.from([3]), Buffer.alloc(5), headerBlock.subarray(0, 4), Buffer.alloc(3)])),
      encodeFrame(CONTINUATION, 0, 1, headerBlock.subarray(4, 10)),
      encodeFrame(CONTINUATION, END_HEADERS, 1, headerBlock.subarray(10)),
      encodeFrame(SETTINGS, ACK, 0),
      // The message in a padded frame and a plain one.
      encodeFrame(DATA, PADDED, 1, Buffer.concat([Buffer.from([10]), body.subarray(0, 7), Buffer.alloc(10)])),
      encodeFrame(DATA, 0, 1, body.subarray(7)),
      encodeFrame(DATA, PADDED, 1, Buffer.from([0])),
      encodeFrame(HEADERS, END_STREAM, 1, trailersBlock.subarray(0, 5)),
      encodeFrame(CONTINUATION, END_HEADERS, 1, trailersBlock.subarray(5)),
    ]);
    h.feed(server, true);
    expect(h.outcome).toEqual({ ok: true, message: versionMessage });
    const answers = h.frames().slice(3);
    expect(answers).toEqual([
      { type: SETTINGS, flags: ACK, streamId: 0, payload: Buffer.alloc(0) },
      { type: PING, flags: ACK, streamId: 0, payload: Buffer.from('12345678') },
    ]);
  });

  it("reads a trailers-only answer with a percent-encoded message as the status's errdefs error", () => {
    const h = harness();
    h.feed(Buffer.concat([settings(), encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, statusTrailers(5, 'image %22x%22: caf%C3%A9: not found'))]), true);
    const err = h.error();
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe('image "x": café: not found');
  });

  it('gives back the window as a large answer arrives (WINDOW_UPDATE on the connection and the stream)', () => {
    const h = harness();
    const message = Buffer.alloc(200_000, 'x');
    const body = grpcMessage(message);
    h.feed(Buffer.concat([settings(), encodeFrame(HEADERS, END_HEADERS, 1, okHeaders)]));
    for (let at = 0; at < body.length; at += 16384) h.feed(encodeFrame(DATA, 0, 1, body.subarray(at, at + 16384)));
    h.feed(encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, okTrailers));
    expect(h.outcome?.ok && h.outcome.message.equals(message)).toBe(true);
    const updates = h.frames().filter((f) => f.type === WINDOW_UPDATE);
    const given = (stream: number) => updates.filter((f) => f.streamId === stream).reduce((n, f) => n + f.payload.readUInt32BE(0), 0);
    expect(given(0)).toBeGreaterThan(body.length - 65_535);
    expect(given(0)).toBe(given(1));
  });

  it('waits past interim (1xx) headers and a GOAWAY that lets stream 1 finish', () => {
    const h = harness();
    h.feed(
      Buffer.concat([
        settings(),
        encodeFrame(HEADERS, END_HEADERS, 1, block({ name: 8, value: '103' })),
        encodeFrame(GOAWAY, 0, 0, Buffer.concat([u32(1, ErrorCode.NO_ERROR), Buffer.from('draining')])),
        encodeFrame(HEADERS, END_HEADERS, 1, okHeaders),
        encodeFrame(DATA, 0, 1, grpcMessage(versionMessage)),
        encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, okTrailers),
      ]),
      true,
    );
    expect(h.outcome).toEqual({ ok: true, message: versionMessage });
  });
});

describe('UnaryExchange: broken and hostile servers', () => {
  const ok = [settings(), encodeFrame(HEADERS, END_HEADERS, 1, okHeaders)];
  type Expected = { kind: new (...args: any[]) => Error; message: RegExp; goaway?: number };
  it.each<[string, Buffer[], Expected]>([
    ['an HTTP/1.1 server', [Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')], { kind: DataLossError, message: /frame, over the 16384 allowed/, goaway: ErrorCode.FRAME_SIZE_ERROR }],
    ['a first frame that is not SETTINGS', [encodeFrame(PING, 0, 0, Buffer.alloc(8))], { kind: DataLossError, message: /did not start with SETTINGS/, goaway: ErrorCode.PROTOCOL_ERROR }],
    ['DATA before the response headers', [settings(), encodeFrame(DATA, 0, 1, Buffer.alloc(5))], { kind: DataLossError, message: /DATA before the response headers/ }],
    ['HEADERS on a stream never opened', [settings(), encodeFrame(HEADERS, END_HEADERS, 3, okHeaders)], { kind: DataLossError, message: /HEADERS on stream 3/ }],
    ['DATA on stream 0', [...ok, encodeFrame(DATA, 0, 0, Buffer.alloc(5))], { kind: DataLossError, message: /DATA on stream 0/ }],
    ['PUSH_PROMISE', [settings(), encodeFrame(PUSH_PROMISE, END_HEADERS, 1, Buffer.alloc(4))], { kind: DataLossError, message: /PUSH_PROMISE/ }],
    ['a frame inside a header block', [settings(), encodeFrame(HEADERS, 0, 1, okHeaders), encodeFrame(PING, 0, 0, Buffer.alloc(8))], { kind: DataLossError, message: /inside a header block/ }],
    ['CONTINUATION of no header block', [settings(), encodeFrame(CONTINUATION, END_HEADERS, 1, okHeaders)], { kind: DataLossError, message: /CONTINUATION without a header block/ }],
    ['CONTINUATION on another stream', [settings(), encodeFrame(HEADERS, 0, 1, okHeaders), encodeFrame(CONTINUATION, END_HEADERS, 3, okHeaders)], { kind: DataLossError, message: /CONTINUATION on stream 3/ }],
    ['padding longer than the frame', [...ok, encodeFrame(DATA, PADDED, 1, Buffer.from([9, 1, 2]))], { kind: DataLossError, message: /padding is longer than its payload/ }],
    ['a padded frame without its pad length', [...ok, encodeFrame(DATA, PADDED, 1)], { kind: DataLossError, message: /without its pad length/ }],
    ['a malformed header block', [settings(), encodeFrame(HEADERS, END_HEADERS, 1, Buffer.from([0x80]))], { kind: DataLossError, message: /header index 0/, goaway: ErrorCode.COMPRESSION_ERROR }],
    ['response headers without :status', [settings(), encodeFrame(HEADERS, END_HEADERS, 1, block({ name: 31, value: 'application/grpc' }))], { kind: DataLossError, message: /without :status/ }],
    ['a second header block without END_STREAM', [...ok, encodeFrame(HEADERS, END_HEADERS, 1, okTrailers)], { kind: DataLossError, message: /second header block without END_STREAM/ }],
    ['SETTINGS of a length not a multiple of 6', [encodeFrame(SETTINGS, 0, 0, Buffer.alloc(5))], { kind: DataLossError, message: /5-byte SETTINGS/, goaway: ErrorCode.FRAME_SIZE_ERROR }],
    ['SETTINGS on a stream', [encodeFrame(SETTINGS, 0, 1)], { kind: DataLossError, message: /SETTINGS on stream 1/ }],
    ['a SETTINGS ACK with a payload', [settings(), encodeFrame(SETTINGS, ACK, 0, Buffer.alloc(6))], { kind: DataLossError, message: /SETTINGS ACK with a payload/ }],
    ['SETTINGS_ENABLE_PUSH 1', [settings([0x2, 1])], { kind: DataLossError, message: /SETTINGS_ENABLE_PUSH 1/ }],
    ['SETTINGS_MAX_FRAME_SIZE under 16384', [settings([0x5, 100])], { kind: DataLossError, message: /SETTINGS_MAX_FRAME_SIZE 100/ }],
    ['SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1', [settings([0x4, 2 ** 31])], { kind: DataLossError, message: /SETTINGS_INITIAL_WINDOW_SIZE/, goaway: ErrorCode.FLOW_CONTROL_ERROR }],
    ['a PING of 7 bytes', [settings(), encodeFrame(PING, 0, 0, Buffer.alloc(7))], { kind: DataLossError, message: /7-byte PING/ }],
    ['a PING on a stream', [settings(), encodeFrame(PING, 0, 1, Buffer.alloc(8))], { kind: DataLossError, message: /PING on stream 1/ }],
    ['a WINDOW_UPDATE of 0', [settings(), encodeFrame(WINDOW_UPDATE, 0, 1, u32(0))], { kind: DataLossError, message: /WINDOW_UPDATE of 0/ }],
    ['a WINDOW_UPDATE past 2^31-1', [settings(), encodeFrame(WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1))], { kind: DataLossError, message: /past 2\^31-1/, goaway: ErrorCode.FLOW_CONTROL_ERROR }],
    ['a short GOAWAY', [settings(), encodeFrame(GOAWAY, 0, 0, Buffer.alloc(4))], { kind: DataLossError, message: /4-byte GOAWAY/ }],
    ['a PRIORITY on stream 0', [settings(), encodeFrame(PRIORITY, 0, 0, Buffer.alloc(5))], { kind: DataLossError, message: /PRIORITY on stream 0/ }],
    ['RST_STREAM on stream 0', [settings(), encodeFrame(RST_STREAM, 0, 0, u32(0))], { kind: DataLossError, message: /RST_STREAM on stream 0/ }],
    ['a GOAWAY before our stream', [settings(), encodeFrame(GOAWAY, 0, 0, Buffer.concat([u32(0, ErrorCode.ENHANCE_YOUR_CALM), Buffer.from('too_many_pings')]))], { kind: UnavailableError, message: /refused the call \(GOAWAY ENHANCE_YOUR_CALM \(0xb\): too_many_pings\)/ }],
    ['RST_STREAM REFUSED_STREAM', [settings(), encodeFrame(RST_STREAM, 0, 1, u32(ErrorCode.REFUSED_STREAM))], { kind: UnavailableError, message: /reset the stream with REFUSED_STREAM/ }],
    ['RST_STREAM CANCEL', [...ok, encodeFrame(RST_STREAM, 0, 1, u32(ErrorCode.CANCEL))], { kind: CanceledError, message: /reset the stream with CANCEL/ }],
    ['RST_STREAM INTERNAL_ERROR', [...ok, encodeFrame(RST_STREAM, 0, 1, u32(ErrorCode.INTERNAL_ERROR))], { kind: UnknownError, message: /reset the stream with INTERNAL_ERROR/ }],
    ['a stream ended without a status', [...ok, encodeFrame(DATA, END_STREAM, 1, grpcMessage(versionMessage))], { kind: UnavailableError, message: /ended without a gRPC status/ }],
    ['HTTP 404 without a gRPC status', [settings(), encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, block({ index: 13 }))], { kind: NotImplementedError, message: /HTTP status 404/ }],
    ['HTTP 503 without a gRPC status', [settings(), encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, block({ name: 8, value: '503' }))], { kind: UnavailableError, message: /HTTP status 503/ }],
    ['grpc-status that is not a number', [settings(), encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, block({ index: 8 }, { name: 'grpc-status', value: 'ok' }))], { kind: DataLossError, message: /grpc-status "ok"/ }],
    ['OK without a message', [...ok, encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, okTrailers)], { kind: DataLossError, message: /not one gRPC message \(0 bytes\)/ }],
    ['OK with two messages', [...ok, encodeFrame(DATA, 0, 1, Buffer.concat([grpcMessage(versionMessage), grpcMessage(versionMessage)])), encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, okTrailers)], { kind: DataLossError, message: /not one gRPC message/ }],
    ['a compressed message', [...ok, encodeFrame(DATA, 0, 1, grpcMessage(versionMessage, 1)), encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, okTrailers)], { kind: DataLossError, message: /compressed/ }],
  ])('ends the call on %s', (_title, frames, { kind, message, goaway }) => {
    const h = harness();
    h.feed(Buffer.concat(frames), true);
    const err = h.error();
    expect(err).toBeInstanceOf(kind);
    expect(err.message).toMatch(message);
    // The GOAWAY's error code, after the frame header (9) and the last stream id (4).
    if (goaway !== undefined) expect(h.x.goodbye().readUInt32BE(9 + 4)).toBe(goaway);
  });

  it('refuses an answer over its size limit, resetting the stream', () => {
    const h = harness({ maxResponseBytes: 1000 });
    h.feed(Buffer.concat([settings(), encodeFrame(HEADERS, END_HEADERS, 1, okHeaders), encodeFrame(DATA, 0, 1, grpcMessage(Buffer.alloc(1001)))]));
    expect(h.error()).toBeInstanceOf(ResourceExhaustedError);
    expect(h.error().message).toMatch(/larger than 1000 bytes/);
    expect(h.frames().at(-1)).toEqual({ type: RST_STREAM, flags: 0, streamId: 1, payload: u32(ErrorCode.CANCEL) });
  });

  it('refuses a header block over 64 KiB, however it is cut into CONTINUATIONs', () => {
    const h = harness();
    h.feed(Buffer.concat([settings(), encodeFrame(HEADERS, 0, 1, Buffer.alloc(16384))]));
    for (let i = 0; i < 3; i++) h.feed(encodeFrame(CONTINUATION, 0, 1, Buffer.alloc(16384)));
    expect(h.outcome).toBeUndefined();
    h.feed(encodeFrame(CONTINUATION, 0, 1, Buffer.alloc(1)));
    expect(h.error()).toBeInstanceOf(ResourceExhaustedError);
    expect(h.x.goodbye().readUInt32BE(13)).toBe(ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('stops answering a PING flood', () => {
    const h = harness();
    h.feed(settings());
    const ping = encodeFrame(PING, 0, 0, Buffer.alloc(8));
    for (let i = 0; i < 999; i++) h.feed(ping); // with the SETTINGS ACK: 1000 answers
    expect(h.outcome).toBeUndefined();
    h.feed(ping);
    expect(h.error()).toBeInstanceOf(DataLossError);
    expect(h.error().message).toMatch(/ENHANCE_YOUR_CALM/);
  });

  it('reports a connection that ends before the status as unavailable, with the GOAWAY it saw', () => {
    const h = harness();
    h.feed(Buffer.concat([...ok, encodeFrame(GOAWAY, 0, 0, Buffer.concat([u32(1, ErrorCode.INTERNAL_ERROR), Buffer.from('bye')]))]));
    h.x.closed();
    expect(h.error()).toBeInstanceOf(UnavailableError);
    expect(h.error().message).toMatch(/the server closed the connection before the call's status, after GOAWAY INTERNAL_ERROR \(0x2\): bye/);
  });

  it('throws nothing from receive, and ends only with errdefs errors, on random bytes and random frames', () => {
    const random = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256)));
    let ended = 0;
    for (let i = 0; i < 3000; i++) {
      const h = harness();
      const frames: Buffer[] = [settings()];
      if (i % 2) frames.push(random(1 + Math.floor(Math.random() * 64)));
      else {
        for (let j = 0; j < 6; j++) {
          const type = Math.floor(Math.random() * 11);
          const flags = Math.floor(Math.random() * 256);
          const stream = [0, 1, 1, 1, 3][Math.floor(Math.random() * 5)]!;
          frames.push(encodeFrame(type, flags, stream, random(Math.floor(Math.random() * 24))));
        }
      }
      const bytes = Buffer.concat(frames);
      // Cut into random reads; receive must not throw.
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + Math.floor(Math.random() * 16);
        h.feed(bytes.subarray(at, at + n));
        at += n;
      }
      h.x.closed();
      const outcome = h.outcome!;
      expect(outcome).toBeDefined();
      if (!outcome.ok) {
        expect(outcome.error).toBeInstanceOf(BerthError);
        ended++;
      }
    }
    expect(ended).toBe(3000);
  });
});

describe('unaryCall and daemonVersion on sockets', () => {
  const tmp = tempDir('berth-h2c-');
  const servers: Array<Server | grpc.Server> = [];
  const sockets: Socket[] = [];

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(
      servers.map((s) => new Promise<void>((r) => (s instanceof grpc.Server ? s.tryShutdown(() => r()) : (s as Server).close(() => r())))),
    );
    tmp.remove();
  });

  /** A raw server that runs `script` on each connection; it records what the client sent. */
  const raw = async (name: string, script: (socket: Socket, received: () => Buffer) => void) => {
    const path = join(tmp.path, `${name}.sock`);
    const got: Buffer[] = [];
    let closed!: () => void;
    const clientGone = new Promise<void>((r) => (closed = r));
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (b) => got.push(b));
      socket.on('error', () => undefined);
      socket.on('close', () => closed());
      script(socket, () => Buffer.concat(got));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(path, r));
    return { path, received: () => Buffer.concat(got), clientGone };
  };

  /** A grpc-js server with `impl` as Version; no services at all when impl is undefined. */
  const grpcServer = async (name: string, impl?: grpc.handleUnaryCall<unknown, version.VersionResponse>) => {
    const path = join(tmp.path, `${name}.sock`);
    const server = new grpc.Server();
    servers.push(server);
    if (impl) server.addService(version.VersionService, { version: impl });
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    return path;
  };

  it('says goodbye with GOAWAY and closes the connection after the answer', async () => {
    const server = await raw('scripted', (socket) => {
      socket.write(Buffer.concat([settings(), encodeFrame(HEADERS, END_HEADERS, 1, okHeaders), encodeFrame(DATA, 0, 1, grpcMessage(versionMessage))]));
      socket.write(encodeFrame(HEADERS, END_STREAM | END_HEADERS, 1, okTrailers));
    });
    await expect(daemonVersion(server.path)).resolves.toEqual({ version: 'v9.9.9', revision: 'r1' });
    await server.clientGone;
    const frames = new FrameReader().push(server.received().subarray(24));
    expect(frames.map((f) => f.type)).toEqual([SETTINGS, HEADERS, DATA, SETTINGS, GOAWAY]);
    expect(frames.at(-1)!.payload).toEqual(u32(0, ErrorCode.NO_ERROR));
  });

  it('reports a server that closes in the middle of the answer as unavailable', async () => {
    const server = await raw('midway', (socket) => {
      socket.end(Buffer.concat([settings(), encodeFrame(HEADERS, END_HEADERS, 1, okHeaders), encodeFrame(DATA, 0, 1, grpcMessage(versionMessage).subarray(0, 4))]));
    });
    const err = await daemonVersion(server.path).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/closed the connection before the call's status/);
  });

  it('ends a call the server never answers at the timeout, with the client gone', async () => {
    const server = await raw('mute', () => undefined);
    const started = Date.now();
    const err = await daemonVersion(server.path, { timeout: 300 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as Error).message).toMatch(/Version: no answer from .*mute\.sock in 300 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    await server.clientGone;
    const frames = new FrameReader().push(server.received().subarray(24));
    expect(frames.slice(-2).map((f) => f.type)).toEqual([RST_STREAM, GOAWAY]);
  });

  it('reports a server that speaks something else as data loss', async () => {
    const server = await raw('http1', (socket) => socket.end('HTTP/1.1 505 HTTP Version Not Supported\r\n\r\n'));
    await expect(daemonVersion(server.path)).rejects.toThrow(DataLossError);
  });

  it('reports a socket nobody serves as unavailable after the connect timeout', async () => {
    await expect(daemonVersion(join(tmp.path, 'nobody.sock'), { connectTimeout: 100 })).rejects.toThrow(/not ready after 100 ms \(connect ENOENT/);
  });

  it('gets UNIMPLEMENTED from a gRPC server without the Version service', async () => {
    const path = await grpcServer('empty');
    const err = await daemonVersion(path).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NotImplementedError);
    expect((err as Error).message).toMatch(/does not implement the method \/containerd.services.version.v1.Version\/Version/);
  });

  it("reads grpc-js's percent-encoding of a status message back", async () => {
    const details = 'bad "thing" 100% ¬ ünïcödé\ttab: not found';
    const path = await grpcServer('percent', (_call, cb) => cb({ code: grpc.status.NOT_FOUND, details }));
    const err = await daemonVersion(path).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe(details);
  });

  it("reads an answer larger than HTTP/2's initial window from grpc-js, and refuses one over the caller's limit", async () => {
    const big = 'v'.repeat(300_000);
    const path = await grpcServer('big', (_call, cb) => cb(null, { version: big, revision: 'r' }));
    await expect(daemonVersion(path)).resolves.toEqual({ version: big, revision: 'r' });
    const socket = connect(path);
    await new Promise((r) => socket.once('connect', r));
    const call = unaryCall(socket, { path: VERSION_PATH, message: new Uint8Array(0), timeoutMs: 5000, peer: path, maxResponseBytes: 100_000 });
    await expect(call).rejects.toThrow(/the answer is larger than 100000 bytes$/);
  });

  it('makes many calls in a row without leaking (each on its own connection)', async () => {
    const path = await grpcServer('many', (_call, cb) => cb(null, { version: 'many', revision: '' }));
    for (let i = 0; i < 50; i++) await expect(daemonVersion(path)).resolves.toEqual({ version: 'many', revision: '' });
  });
});
