import { createHash, randomBytes } from 'node:crypto';
import * as fc from 'fast-check';
import { SPDY3_DICTIONARY } from './spdy-dictionary';
import {
  FrameDecoder,
  type SpdyFrame,
  SpdyProtocolError,
  decodeFrame,
  decodeHeaderBlock,
  encodeData,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  encodeSynStream,
} from './spdy-frames';
import { HeaderDeflater, HeaderInflater } from './spdy-zlib';

const control = (type: number, flags: number, payload: Buffer, version = 3) => {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | version, 0);
  head.writeUInt16BE(type, 2);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
};

describe('the SPDY/3 header dictionary', () => {
  it('is the 1423 bytes both ends prime zlib with', () => {
    expect(SPDY3_DICTIONARY.length).toBe(1423);
    expect(createHash('sha256').update(SPDY3_DICTIONARY).digest('hex')).toBe('51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02');
  });
});

describe('frame codec', () => {
  const block = Buffer.from('compressed');
  it.each<[string, Buffer, SpdyFrame]>([
    ['DATA', encodeData(5, Buffer.from('abc')), { type: 'data', streamId: 5, fin: false, data: Buffer.from('abc') }],
    ['DATA with FIN, empty', encodeData(0x7fffffff, Buffer.alloc(0), true), { type: 'data', streamId: 0x7fffffff, fin: true, data: Buffer.alloc(0) }],
    ['SYN_STREAM', encodeSynStream(3, block, { priority: 7, fin: true }), { type: 'syn_stream', streamId: 3, associatedId: 0, priority: 7, fin: true, unidirectional: false, headerBlock: block }],
    ['SYN_REPLY', encodeSynReply(3, block), { type: 'syn_reply', streamId: 3, fin: false, headerBlock: block }],
    ['RST_STREAM', encodeRstStream(9, 5), { type: 'rst_stream', streamId: 9, status: 5 }],
    ['PING', encodePing(0xffffffff), { type: 'ping', id: 0xffffffff }],
    ['GOAWAY', encodeGoAway(7, 1), { type: 'goaway', lastGoodStreamId: 7, status: 1 }],
    ['SETTINGS (ignored)', control(4, 0, Buffer.alloc(12)), { type: 'settings' }],
    ['WINDOW_UPDATE (ignored)', control(9, 0, Buffer.from([0, 0, 0, 1, 0, 0, 1, 0])), { type: 'window_update', streamId: 1, delta: 256 }],
    ['an unknown control type', control(42, 0, Buffer.from('x')), { type: 'unknown', frameType: 42 }],
  ])('round-trips %s', (_name, bytes, frame) => {
    expect(new FrameDecoder().push(bytes)).toEqual([frame]);
  });

  it('finds frames split at every byte and joined in one chunk', () => {
    const frames = Buffer.concat([encodeData(1, Buffer.from('hello')), encodePing(1), encodeData(3, randomBytes(70_000), true)]);
    const d = new FrameDecoder();
    const got: SpdyFrame[] = [];
    for (let i = 0; i < frames.length; i += 7) got.push(...d.push(frames.subarray(i, i + 7)));
    expect(got.map((f) => f.type)).toEqual(['data', 'ping', 'data']);
    expect(new FrameDecoder().push(frames)).toEqual(got);
    expect(d.pending).toBe(0);
  });

  it.each<[string, Buffer, string]>([
    ['a version other than 3', control(6, 0, Buffer.alloc(4), 2), 'unsupported version 2'],
    ['a control frame over the limit', control(1, 0, Buffer.alloc(0)).fill(0xff, 5, 8), 'over the limit'],
    ['a SYN_STREAM too short', control(1, 0, Buffer.alloc(6)), 'SYN_STREAM frame too short'],
    ['a SYN_STREAM on stream 0', control(1, 0, Buffer.alloc(10)), 'stream id 0'],
    ['a RST_STREAM too short', control(3, 0, Buffer.alloc(4)), 'RST_STREAM frame too short'],
    ['a PING too short', control(6, 0, Buffer.alloc(2)), 'PING frame too short'],
    ['DATA on stream 0', encodeData(1, Buffer.from('x')).fill(0, 0, 4), 'data frame on stream 0'],
  ])('refuses %s', (_name, bytes, message) => {
    expect(() => new FrameDecoder().push(bytes)).toThrow(SpdyProtocolError);
    expect(() => new FrameDecoder().push(bytes)).toThrow(message);
  });

  it('refuses a data frame over its limit before buffering it', () => {
    const d = new FrameDecoder({ maxDataLength: 1024 });
    expect(() => d.push(encodeData(1, Buffer.alloc(2048)).subarray(0, 8))).toThrow('data frame of 2048 bytes is over the limit of 1024');
  });

  it('throws nothing but SpdyProtocolError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          new FrameDecoder().push(Buffer.from(bytes));
        } catch (err) {
          if (!(err instanceof SpdyProtocolError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
    expect(() => decodeFrame(control(2, 0, Buffer.alloc(2)))).toThrow(SpdyProtocolError);
  });
});

describe('header blocks', () => {
  it('encode lowercase names with NUL-joined values, and decode back', () => {
    const raw = encodeHeaderBlock({ StreamType: 'error', multi: ['a', 'b'], empty: '' });
    expect(raw.readUInt32BE(0)).toBe(3);
    expect(raw.subarray(4, 18).toString('latin1')).toBe('\0\0\0\nstreamtype');
    expect(decodeHeaderBlock(raw)).toEqual({ streamtype: ['error'], multi: ['a', 'b'], empty: [''] });
    expect(decodeHeaderBlock(encodeHeaderBlock({}))).toEqual({});
  });

  it.each<[string, Buffer, string]>([
    ['shorter than its count', Buffer.from([0, 0]), 'too short'],
    ['with too many pairs', Buffer.from([0, 0, 0x10, 0]), 'pairs'],
    ['ending inside a length', Buffer.from([0, 0, 0, 1, 0, 0]), 'ends inside a name length'],
    ['with a name longer than the block', Buffer.from([0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0x61]), 'overruns the block'],
    ['with an empty name', Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), 'empty header name'],
    ['with bytes after the last pair', Buffer.concat([encodeHeaderBlock({ a: 'b' }), Buffer.from('x')]), 'after the last header'],
  ])('refuses a block %s', (_name, block, message) => {
    expect(() => decodeHeaderBlock(block)).toThrow(SpdyProtocolError);
    expect(() => decodeHeaderBlock(block)).toThrow(message);
  });

  it('go through one deflate and one inflate stream per connection, block after block', async () => {
    const deflater = new HeaderDeflater();
    const inflater = new HeaderInflater();
    const blocks = [{ streamtype: 'error' }, { streamtype: 'stdout' }, { streamtype: 'data', port: '8080', requestid: '0' }, {}, { streamtype: 'stdout' }];
    const compressed = await Promise.all(blocks.map((h) => deflater.deflate(encodeHeaderBlock(h))));
    // The stream header (with the dictionary id) comes once; later blocks reuse the history.
    expect(compressed[0][0]).toBe(0x78);
    expect(compressed[0][1] & 0x20).toBe(0x20);
    expect(compressed[4].length).toBeLessThan(compressed[1].length);
    const back = await Promise.all(compressed.map(async (c) => decodeHeaderBlock(await inflater.inflate(c))));
    expect(back).toEqual(blocks.map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, [v]]))));
    deflater.close();
    inflater.close();
  });

  it('refuse a block that does not inflate, and one that inflates past the limit (a zlib bomb)', async () => {
    const bad = new HeaderInflater();
    await expect(bad.inflate(Buffer.from('not zlib at all'))).rejects.toThrow(SpdyProtocolError);
    await expect(bad.inflate(Buffer.from('again'))).rejects.toThrow(SpdyProtocolError);
    bad.close();
    const deflater = new HeaderDeflater();
    const bomb = await deflater.deflate(Buffer.alloc(8 << 20));
    expect(bomb.length).toBeLessThan(64 << 10);
    const small = new HeaderInflater(256 << 10);
    await expect(small.inflate(bomb)).rejects.toThrow('over the limit of 262144');
    small.close();
    deflater.close();
  });
});
