import { type Socket, connect as netConnect } from 'node:net';
import { CONTAINERD2_PATH, REFERENCE_CONTAINERD2_VERSION, ReferenceContainerd, ReferenceContainerd2, TestDaemon } from '@berth/testing';
import { FrameReader, FrameType, unaryCall } from './h2c';
import { HpackDecoder } from './hpack';
import { connect } from './index';
import { daemonVersion, decodeVersionResponse } from './version';

/*
 * daemonVersion (the h2c client) against the real daemons: berthd (grpc-js, whose HTTP/2 is
 * nghttp2), Debian's containerd 1.6.20 and containerd 2.4.2 (Go's grpc): the same answer as the
 * grpc-js client, with what each server actually sent checked to use HPACK's Huffman strings
 * and dynamic table (so the tests above run the decoder's real paths).
 */
const VERSION_PATH = '/containerd.services.version.v1.Version/Version';

interface Daemon {
  address: string;
  cleanup(): Promise<void>;
}

const DAEMONS: Array<[string, () => Promise<Daemon>]> = [
  ['berthd', () => TestDaemon.start()],
  ['containerd 1.6', () => ReferenceContainerd.start()],
];
if (CONTAINERD2_PATH) DAEMONS.push([`containerd ${REFERENCE_CONTAINERD2_VERSION}`, () => ReferenceContainerd2.start()]);
else it.skip(`containerd ${REFERENCE_CONTAINERD2_VERSION} (not installed: run tools/reference-tools.sh)`, () => undefined);

describe.each(DAEMONS)('daemonVersion against %s', (_name, start) => {
  let daemon: Daemon;

  beforeAll(async () => {
    daemon = await start();
  }, 60_000);

  afterAll(async () => {
    await daemon?.cleanup();
  }, 30_000);

  it('answers what the grpc-js client answers', async () => {
    const client = await connect({ address: daemon.address, namespace: 'default' });
    try {
      const expected = await client.version();
      expect(expected.version).not.toBe('');
      await expect(daemonVersion(daemon.address)).resolves.toEqual(expected);
      await expect(daemonVersion(`unix://${daemon.address}`, { connectTimeout: 1000, timeout: 1000 })).resolves.toEqual(expected);
    } finally {
      client.close();
    }
  });

  it('decodes header blocks that use Huffman strings and the dynamic table', async () => {
    const socket: Socket = netConnect(daemon.address);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const received: Buffer[] = [];
    socket.on('data', (b: Buffer) => received.push(b));
    const message = await unaryCall(socket, { path: VERSION_PATH, message: new Uint8Array(0), timeoutMs: 5000, peer: daemon.address });
    expect(decodeVersionResponse(message).version).not.toBe('');

    // Replay what the server sent through a decoder of our own.
    const frames = new FrameReader(1 << 24).push(Buffer.concat(received));
    const blocks: Buffer[] = [];
    let open: Buffer[] = [];
    for (const f of frames) {
      if (f.type !== FrameType.HEADERS && f.type !== FrameType.CONTINUATION) continue;
      expect(f.flags & 0x28).toBe(0); // no padding or priority in these servers' frames
      open.push(f.payload);
      if (f.flags & 0x4) {
        blocks.push(Buffer.concat(open));
        open = [];
      }
    }
    expect(blocks).toHaveLength(2); // response headers, trailers
    const decoder = new HpackDecoder();
    const [headers, trailers] = blocks.map((b) => decoder.decode(b));
    expect(headers).toContainEqual([':status', '200']);
    expect(headers!.find(([name]) => name === 'content-type')?.[1]).toMatch(/^application\/grpc/); // grpc-js: application/grpc+proto
    expect(trailers).toContainEqual(['grpc-status', '0']);
    // Huffman: the name arrived as a string literal, yet its letters are not in the bytes.
    expect(blocks[1]!.includes('grpc-status')).toBe(false);
    // Incremental indexing: the server's entries are in our table.
    expect(decoder.tableSize).toBeGreaterThan(0);
  });
});
