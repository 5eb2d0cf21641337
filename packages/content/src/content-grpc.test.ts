import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { content as api } from '@berth/api';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import type { Client } from '@berth/grpc';
import { CTR_PATH, ReferenceContainerd, TestDaemon } from '@berth/testing';
import { digestOf } from './digest';

/*
 * The Content service end to end: the stock ctr against berthd and a real containerd 1.6 side by
 * side, then raw gRPC clients for what ctr cannot reach (resume, locks, shared content, bad input,
 * crash recovery, memory).
 */

type ContentClient = Client<typeof api.ContentService>;

const { STAT, WRITE, COMMIT } = api.WriteAction;

/** containerd with its GC scheduler idle, so that unreferenced test blobs stay (berthd has no GC yet). */
const NO_GC = `[plugins."io.containerd.gc.v1.scheduler"]\n  deletion_threshold = 0\n  mutation_threshold = 1000000\n  schedule_delay = "0s"\n  startup_delay = "100h"\n`;

function req(m: Partial<api.WriteContentRequest>): api.WriteContentRequest {
  return { action: STAT, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...m };
}

/** A Write session sending one message and reading its reply at a time, as ctr does. */
function session(c: ContentClient, lease?: string) {
  const call = c.write(lease ? { lease } : undefined);
  return {
    async send(m: Partial<api.WriteContentRequest>): Promise<api.WriteContentResponse> {
      call.write(req(m));
      const reply = await call.read();
      if (!reply) throw new Error('stream ended without a reply');
      return reply;
    },
    /** Half-closes and waits for the end of the stream. */
    async end(): Promise<void> {
      call.end();
      while ((await call.read()) !== undefined);
    },
    cancel: () => call.cancel(),
  };
}

async function writeBlob(c: ContentClient, ref: string, data: Buffer, expected = digestOf(data)): Promise<string> {
  const s = session(c);
  await s.send({ ref, total: data.byteLength, expected });
  await s.send({ action: WRITE, data });
  await s.send({ action: COMMIT, total: data.byteLength, expected, offset: data.byteLength });
  await s.end();
  return expected;
}

async function expectCode(p: Promise<unknown>, code: GrpcCode, message?: string | RegExp): Promise<void> {
  const err = await p.then(
    () => {
      throw new Error(`expected ${GrpcCode[code]}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  const st = toGrpcStatus(err);
  expect(GrpcCode[st.code]).toBe(GrpcCode[code]);
  // Compare the message as it was on the wire (the client's error adds the kind's suffix back).
  const wire = (err as { cause?: { details?: string } }).cause?.details ?? st.details;
  if (typeof message === 'string') expect(wire).toBe(message);
  else if (message) expect(wire).toMatch(message);
}

async function readAll(c: ContentClient, r: api.ReadContentRequest): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const m of c.read(r)) parts.push(m.data);
  return Buffer.concat(parts);
}

/**
 * A deterministic pseudo-random byte stream, generated chunk by chunk (never held whole): each
 * 1 MiB chunk is a fixed random block with its index stamped in.
 */
function* pseudoRandom(size: number, seed = 1): Generator<Buffer> {
  const block = Buffer.alloc(1 << 20);
  let h = createHash('sha256').update(String(seed)).digest();
  for (let i = 0; i < block.length; i += 32) {
    h.copy(block, i);
    h = createHash('sha256').update(h).digest();
  }
  for (let i = 0, off = 0; off < size; i++, off += block.length) {
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, size - off)));
    chunk.writeUInt32LE(i, 0);
    yield chunk;
  }
}

function digestOfStream(size: number, seed = 1): string {
  const h = createHash('sha256');
  for (const chunk of pseudoRandom(size, seed)) h.update(chunk);
  return `sha256:${h.digest('hex')}`;
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** Runs ctr and hashes its stdout as it streams (`content get` of binary data). */
function ctrDigest(address: string, args: string[], namespace = 'default'): Promise<{ code: number; digest: string; size: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CTR_PATH, ['--address', address, '--namespace', namespace, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const h = createHash('sha256');
    let size = 0;
    child.stdout.on('data', (b: Buffer) => {
      h.update(b);
      size += b.length;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, digest: `sha256:${h.digest('hex')}`, size }));
  });
}

/** Makes ctr output comparable across daemons: ages and tab padding differ with timing only. */
function normalize(text: string): string {
  return text
    .replace(/Less than a second|About a minute|\d+ (seconds?|minutes?)/g, '<age>')
    // ctr's own log lines carry the time: two runs may straddle a second.
    .replace(/time="[^"]+"/g, 'time="<time>"')
    .replace(/\t+/g, '\t')
    .replace(/ +\n/g, '\n')
    .split('\n')
    .map((line) => {
      // ctr prints labels in Go map order, which is random: compare them sorted.
      const fields = line.split('\t');
      const last = fields.length - 1;
      if (fields[last].includes('=')) fields[last] = fields[last].split(',').sort().join(',');
      return fields.join('\t');
    })
    .join('\n');
}

describe('Content service: stock ctr against berthd and containerd', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([TestDaemon.start({ logLevel: 'info', config: NO_GC }), ReferenceContainerd.start({ config: NO_GC })]);
  });
  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
  });

  const hello = 'hello content\n';
  const helloDigest = digestOf(hello);
  const other = 'another blob, with more bytes in it\n';
  const otherDigest = digestOf(other);

  const script: Array<{ args: string[]; input?: string }> = [
    { args: ['content', 'ls'] },
    { args: ['content', 'ingest', 'plain'], input: hello },
    { args: ['content', 'ingest', 'plain-again'], input: hello },
    { args: ['content', 'ingest', '--expected-digest', otherDigest, '--expected-size', String(other.length), 'tar-blobs/sha256/x'], input: other },
    { args: ['content', 'ingest', '--expected-digest', otherDigest, 'again'], input: other },
    { args: ['content', 'ingest', '--expected-size', '3', 'wrong-size'], input: 'four' },
    { args: ['content', 'ingest', '--expected-digest', helloDigest.replace(/.$/, '0'), 'wrong-digest'], input: 'x' },
    { args: ['content', 'ingest', '--expected-digest', 'sha256:nothex', 'bad'], input: 'x' },
    { args: ['content', 'ls'] },
    { args: ['content', 'ls', '-q'] },
    { args: ['content', 'ls', `digest==${helloDigest}`] },
    { args: ['content', 'ls', 'digest~=^sha256:0'] },
    { args: ['content', 'ls', 'digest=='] },
    { args: ['content', 'label', helloDigest, 'a=1', 'b=two', 'containerd.io/gc.root=x'] },
    { args: ['content', 'label', helloDigest] },
    { args: ['content', 'label', helloDigest, 'a='] },
    { args: ['content', 'ls'] },
    { args: ['content', 'ls', 'labels.b==two'] },
    { args: ['content', 'ls', 'labels.a'] },
    { args: ['content', 'label', 'sha256:' + 'a'.repeat(64), 'x=y'] },
    { args: ['content', 'active'] },
    { args: ['content', 'active', '^wrong'] },
    { args: ['content', 'rm', otherDigest] },
    { args: ['content', 'rm', otherDigest, helloDigest] },
    { args: ['content', 'rm', 'not-a-digest'] },
    { args: ['content', 'ls'] },
    { args: ['content', 'get', helloDigest] },
    { args: ['content', 'ingest', 'back'], input: hello },
    { args: ['content', 'get', helloDigest] },
    { args: ['content', 'get', otherDigest] },
  ];

  it('prints what containerd prints, command by command', async () => {
    for (const { args, input } of script) {
      const [ours, theirs] = await Promise.all([berthd.ctr(args, { input }), containerd.ctr(args, { input })]);
      // `content active` lists ingests in no defined order (containerd walks its ingest directory,
      // named by hashes of backend refs): compare its rows as a set, after the header.
      const rows = (out: string) => {
        if (args[1] !== 'active') return out;
        const [head, ...rest] = out.split('\n');
        return [head, ...rest.filter((l) => l !== '').sort()].join('\n');
      };
      const show = (r: { code: number; stdout: string; stderr: string }) => ({ args, code: r.code, stdout: rows(normalize(r.stdout)), stderr: normalize(r.stderr) });
      expect(show(ours)).toEqual(show(theirs));
    }
  });

  it('lists unfinished ingests in `content active` as containerd does', async () => {
    const clients = [berthd.client(api.ContentService, 'active'), createRefClient(containerd.address, 'active')];
    for (const c of clients) {
      const s = session(c);
      await s.send({ ref: 'half/done', total: 10 });
      await s.send({ action: WRITE, data: Buffer.from('12345') });
      await s.end();
    }
    clients[1].close();
    const args = ['content', 'active'];
    const [ours, theirs] = await Promise.all([berthd.ctr(args, { namespace: 'active' }), containerd.ctr(args, { namespace: 'active' })]);
    expect(normalize(ours.stdout)).toBe(normalize(theirs.stdout));
    expect(ours.stdout).toContain('half/done\t5');
  });

  it('`content get` returns identical bytes for a 3 MiB binary blob', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const digest = digestOf(data);
    for (const d of [berthd, containerd]) {
      const ingest = await d.ctr(['content', 'ingest', '--expected-digest', digest, 'bin'], { input: data });
      expect(ingest.code).toBe(0);
      expect(await ctrDigest(d.address, ['content', 'get', digest])).toEqual({ code: 0, digest, size: data.byteLength });
    }
  });
});

function createRefClient(address: string, namespace: string): ContentClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createClient } = require('@berth/grpc') as typeof import('@berth/grpc');
  return createClient(api.ContentService, address, { namespace });
}

describe('Content service: raw gRPC against berthd', () => {
  let berthd: TestDaemon;
  let c: ContentClient;

  beforeAll(async () => {
    berthd = await TestDaemon.start({ logLevel: 'info', config: NO_GC });
    c = berthd.client(api.ContentService, 'raw');
  });
  afterAll(async () => {
    await berthd?.cleanup();
  });

  it('resumes a write cut after N bytes at N, and the blob verifies', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const digest = digestOf(data);
    const first = session(c);
    expect((await first.send({ ref: 'cut', total: data.byteLength, expected: digest })).offset).toBe(0);
    await first.send({ action: WRITE, data: data.subarray(0, 1_000_000) });
    await first.send({ action: WRITE, data: data.subarray(1_000_000, 1_234_567), offset: 1_000_000 });
    first.cancel();
    // The server closes the writer when the stream goes away; the lock is released promptly.
    let status: api.Status | undefined;
    for (let i = 0; i < 50; i++) {
      status = (await c.status({ ref: 'cut' })).status;
      if (status) break;
    }
    expect(status).toMatchObject({ ref: 'cut', offset: 1_234_567, total: data.byteLength, expected: digest });

    const again = session(c);
    const stat = await again.send({ ref: 'cut', total: data.byteLength, expected: digest });
    expect(stat.offset).toBe(1_234_567);
    expect(stat.digest).toBe(digestOf(data.subarray(0, 1_234_567)));
    await again.send({ action: WRITE, data: data.subarray(1_234_567), offset: 1_234_567 });
    const done = await again.send({ action: COMMIT, total: data.byteLength, expected: digest, offset: data.byteLength });
    expect(done).toMatchObject({ offset: data.byteLength, digest });
    await again.end();
    expect(Buffer.compare(await readAll(c, { digest, offset: 0, size: 0 }), data)).toBe(0);
    await expectCode(c.status({ ref: 'cut' }), GrpcCode.NOT_FOUND, 'could not get status for ref "cut": reference cut: not found');
  });

  it('answers Unavailable to a second stream on a held ref, and the first completes', async () => {
    const data = Buffer.from('locked data');
    const first = session(c);
    await first.send({ ref: 'held' });
    const second = session(c);
    await expectCode(second.send({ ref: 'held' }), GrpcCode.UNAVAILABLE, /^ref raw\/\d+\/held locked for \d+ms \(since .+\): unavailable$/);
    await first.send({ action: WRITE, data });
    expect((await first.send({ action: COMMIT, offset: data.byteLength, total: data.byteLength })).digest).toBe(digestOf(data));
    await first.end();
  });

  it('zeroes the times until a STAT, then keeps the STAT times', async () => {
    const s = session(c);
    const w = await s.send({ ref: 'times', action: WRITE, data: Buffer.from('abc') });
    expect(w.startedAt?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    const st = await s.send({});
    expect(st.startedAt!.getTime()).toBeGreaterThan(0);
    const w2 = await s.send({ action: WRITE, data: Buffer.from('d'), offset: 3 });
    expect(w2.startedAt).toEqual(st.startedAt);
    expect(w2.offset).toBe(4);
    await s.end();
    await c.abort({ ref: 'times' });
  });

  it.each([
    ['size', { total: 5 }, '"fp-size" failed size validation: 11 != 5: failed precondition'],
    ['digest', { expected: 'sha256:' + 'b'.repeat(64) }, `unexpected commit digest ${digestOf('eleven byte')}, expected sha256:${'b'.repeat(64)}: failed precondition`],
  ])('answers FailedPrecondition to a wrong expected %s, keeping the ingest', async (what, commit, message) => {
    const data = Buffer.from('eleven byte');
    const s = session(c);
    await s.send({ ref: `fp-${what}` });
    await s.send({ action: WRITE, data });
    await expectCode(s.send({ action: COMMIT, offset: data.byteLength, ...commit }), GrpcCode.FAILED_PRECONDITION, message);
    expect((await c.status({ ref: `fp-${what}` })).status?.offset).toBe(data.byteLength);
    await c.abort({ ref: `fp-${what}` });
  });

  it('answers AlreadyExists to a second commit of the same blob, and to a stream expecting it', async () => {
    const data = Buffer.from('committed twice');
    const digest = await writeBlob(c, 'twice-1', data);
    const s = session(c);
    await s.send({ ref: 'twice-2' });
    await s.send({ action: WRITE, data });
    await expectCode(s.send({ action: COMMIT, offset: data.byteLength }), GrpcCode.ALREADY_EXISTS, `content ${digest}: already exists`);
    await expectCode(writeBlob(c, 'twice-3', data), GrpcCode.ALREADY_EXISTS, `content ${digest}: already exists`);
    const late = session(c);
    await late.send({ ref: 'twice-4' });
    await expectCode(late.send({ action: WRITE, data, expected: digest }), GrpcCode.ALREADY_EXISTS, `blob with expected digest ${digest} exists`);
    await expectCode(c.status({ ref: 'twice-4' }), GrpcCode.NOT_FOUND);
  });

  it('links a blob of another namespace without its data, and keeps namespaces apart', async () => {
    const data = randomBytes(200_000);
    const digest = await writeBlob(c, 'shared', data);
    const b = berthd.client(api.ContentService, 'raw-b');
    await expectCode(b.info({ digest }), GrpcCode.NOT_FOUND, `content digest ${digest}: not found`);
    await expectCode(readAll(b, { digest, offset: 0, size: 0 }), GrpcCode.NOT_FOUND);
    await expectCode(b.delete({ digest }), GrpcCode.NOT_FOUND);

    const s = session(b);
    const first = await s.send({ ref: 'shared', total: data.byteLength, expected: digest });
    expect(first).toMatchObject({ offset: data.byteLength, total: data.byteLength, digest });
    const done = await s.send({ action: COMMIT, total: data.byteLength, expected: digest, offset: data.byteLength, labels: { only: 'b' } });
    expect(done).toMatchObject({ offset: data.byteLength, digest });
    await s.end();

    expect((await b.info({ digest })).info).toMatchObject({ size: data.byteLength, labels: { only: 'b' } });
    expect((await c.info({ digest })).info?.labels).toEqual({});
    await b.delete({ digest });
    await expectCode(b.info({ digest }), GrpcCode.NOT_FOUND);
    expect(Buffer.compare(await readAll(c, { digest, offset: 0, size: 0 }), data)).toBe(0);
  });

  it('lists with filters on digest, size and labels, in batches of 100 without updated_at', async () => {
    const l = berthd.client(api.ContentService, 'many');
    const digests: string[] = [];
    for (let i = 0; i < 150; i++) digests.push(await writeBlob(l, `m${i}`, Buffer.from(`blob ${i} ${'x'.repeat(i % 3)}`)));
    await l.update({ info: { digest: digests[7], size: 0, labels: { pick: 'me' } }, updateMask: ['labels.pick'] });
    const batches: number[] = [];
    for await (const m of l.list({ filters: [] })) {
      batches.push(m.info.length);
      for (const info of m.info) expect(info.updatedAt?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    }
    expect(batches).toEqual([100, 50]);
    const list = async (filters: string[]) => {
      const out: string[] = [];
      for await (const m of l.list({ filters })) out.push(...m.info.map((i) => i.digest));
      return out.sort();
    };
    expect(await list([`digest==${digests[3]}`])).toEqual([digests[3]]);
    expect(await list(['labels.pick==me'])).toEqual([digests[7]]);
    // "blob 0 ", "blob 3 ", "blob 6 " and "blob 9 " are the 7-byte ones; filters are OR'd.
    expect((await list(['size==7'])).length).toBe(4);
    expect((await list(['size==7', `digest==${digests[1]}`])).length).toBe(5);
    expect(await list([`size==7,digest==${digests[3]}`])).toEqual([digests[3]]);
    await expectCode(list(['size>']), GrpcCode.INVALID_ARGUMENT, /^filters: parse error: /);
  });

  it('reads with containerd offset and size semantics', async () => {
    const data = Buffer.from('0123456789abcdef');
    const digest = await writeBlob(c, 'ranges', data);
    const read = async (offset: number, size: number) => {
      const replies: Array<[number, string]> = [];
      for await (const m of c.read({ digest, offset, size })) replies.push([m.offset, m.data.toString()]);
      return replies;
    };
    expect(await read(-5, 0)).toEqual([[0, '0123456789abcdef']]);
    expect(await read(4, 3)).toEqual([[0, '456']]);
    expect(await read(10, 100)).toEqual([[0, 'abcdef']]);
    expect(await read(0, -1)).toEqual([[0, '0123456789abcdef']]);
    expect(await read(16, 0)).toEqual([]);
    await expectCode(read(17, 0), GrpcCode.OUT_OF_RANGE, 'read past object length 16 bytes');

    const big = randomBytes(2.5 * 1024 * 1024);
    const bigDigest = await writeBlob(c, 'big-ranges', big);
    const offsets: number[] = [];
    const parts: Buffer[] = [];
    for await (const m of c.read({ digest: bigDigest, offset: 100, size: 0 })) {
      offsets.push(m.offset);
      parts.push(m.data);
    }
    expect(offsets).toEqual([0, 1 << 20, 2 << 20]);
    expect(Buffer.compare(Buffer.concat(parts), big.subarray(100))).toBe(0);
  });

  const badDigests: Array<[string, string]> = [
    ['xyz', 'invalid checksum digest format'],
    ['sha256:abc', 'invalid checksum digest length'],
    ['md5:' + 'a'.repeat(32), 'unsupported digest algorithm'],
    ['sha256:' + 'A'.repeat(64), 'invalid checksum digest format'],
  ];
  it.each(badDigests)('answers %j with containerd’s InvalidArgument in every method', async (bad, why) => {
    await expectCode(c.info({ digest: bad }), GrpcCode.INVALID_ARGUMENT, `${JSON.stringify(bad)} failed validation`);
    await expectCode(c.update({ info: { digest: bad, size: 0, labels: {} }, updateMask: [] }), GrpcCode.INVALID_ARGUMENT, `${JSON.stringify(bad)} failed validation`);
    await expectCode(c.delete({ digest: bad }), GrpcCode.INVALID_ARGUMENT, why);
    await expectCode(readAll(c, { digest: bad, offset: 0, size: 0 }), GrpcCode.INVALID_ARGUMENT, `${bad}: ${why}`);
    await expectCode(session(c).send({ ref: 'bad-expected', expected: bad }), GrpcCode.INVALID_ARGUMENT, `invalid expected digest ${JSON.stringify(bad)}: ${why}`);
  });

  it('rejects bad refs, oversized labels and bad filters, and keeps serving', async () => {
    for (const ref of ['/lead', 'a/../b', 'a\0b', 'x'.repeat(4096)]) {
      await expectCode(session(c).send({ ref }), GrpcCode.INVALID_ARGUMENT, /^invalid ref /);
    }
    await expectCode(session(c).send({}), GrpcCode.INVALID_ARGUMENT, 'first message must have a reference');
    await expectCode(c.status({ ref: '' }), GrpcCode.INVALID_ARGUMENT, 'ref must not be empty: invalid argument');
    const ok = await writeBlob(c, 'tar-blobs/sha256/' + 'c'.repeat(64), Buffer.from('slashes are fine'));
    await expectCode(
      c.update({ info: { digest: ok, size: 0, labels: { k: 'v'.repeat(4096) } }, updateMask: ['labels.k'] }),
      GrpcCode.INVALID_ARGUMENT,
      'info.Labels: label key and value greater than maximum size (4096 bytes), key: k: invalid argument',
    );
    const s = session(c);
    await s.send({ ref: 'big-label' });
    await s.send({ action: WRITE, data: Buffer.from('l') });
    await expectCode(s.send({ action: COMMIT, offset: 1, labels: { ['k'.repeat(4097)]: '' } }), GrpcCode.INVALID_ARGUMENT, /greater than maximum size/);
    await expectCode(c.update({ info: { digest: ok, size: 0, labels: {} }, updateMask: ['size'] }), GrpcCode.INVALID_ARGUMENT, /^cannot update "size" field/);
    await expectCode(c.listStatuses({ filters: ['ref=='] }), GrpcCode.INVALID_ARGUMENT, 'filters: parse error: [ref==]: expected value or quoted: invalid argument');
    const w = session(c);
    await w.send({ ref: 'offsets' });
    await w.send({ action: WRITE, data: Buffer.from('abcde') });
    await expectCode(w.send({ action: WRITE, data: Buffer.from('x'), offset: 3 }), GrpcCode.OUT_OF_RANGE, 'write @3 must occur at current offset 5');
    expect((await c.info({ digest: ok })).info?.size).toBe(16);
  });

});

describe('Content service: crash recovery and memory', () => {
  let berthd: TestDaemon;
  afterEach(async () => {
    await berthd?.cleanup();
  });

  /** Sends `chunks` through a session (one reply per message), hashing nothing. */
  async function sendChunks(s: ReturnType<typeof session>, chunks: Iterable<Buffer>, from: number, until = Infinity): Promise<number> {
    let offset = 0;
    for (const chunk of chunks) {
      const end = offset + chunk.byteLength;
      if (end > from && offset < until) {
        const start = Math.max(0, from - offset);
        const stop = Math.min(chunk.byteLength, until - offset);
        const reply = await s.send({ action: WRITE, data: chunk.subarray(start, stop), offset: offset + start });
        if (reply.offset !== offset + stop) throw new Error(`short write: ${reply.offset}`);
      }
      offset = end;
      if (offset >= until) break;
    }
    return Math.min(offset, until);
  }

  it('survives kill -9 in the middle of a 1 GiB ingest: status shows the partial offset, the resume verifies', async () => {
    berthd = await TestDaemon.start({ logLevel: 'info', config: NO_GC });
    let c = berthd.client(api.ContentService, 'crash');
    const small = Buffer.from('committed before the crash');
    const smallDigest = await writeBlob(c, 'small', small);

    const size = 1 << 30;
    const digest = digestOfStream(size, 7);
    const s = session(c);
    await s.send({ ref: 'huge', total: size, expected: digest });
    const cut = 300 * 1024 * 1024 + 12345;
    await sendChunks(s, pseudoRandom(size, 7), 0, cut);
    await berthd.kill('SIGKILL');
    await berthd.restart();
    c = berthd.client(api.ContentService, 'crash');

    const status = (await c.status({ ref: 'huge' })).status!;
    expect(status).toMatchObject({ ref: 'huge', total: size, expected: digest });
    // Every byte the daemon acknowledged reached the page cache, so nothing is lost.
    expect(status.offset).toBe(cut);

    const again = session(c);
    const stat = await again.send({ ref: 'huge', total: size, expected: digest });
    expect(stat.offset).toBe(cut);
    await sendChunks(again, pseudoRandom(size, 7), stat.offset);
    const done = await again.send({ action: COMMIT, total: size, expected: digest, offset: size });
    expect(done).toMatchObject({ offset: size, digest });
    await again.end();
    expect((await c.info({ digest })).info?.size).toBe(size);
    expect(Buffer.compare(await readAll(c, { digest: smallDigest, offset: 0, size: 0 }), small)).toBe(0);
  }, 180_000);

  it('ingests and reads a 2 GiB blob with less than 64 MiB of RSS growth', async () => {
    berthd = await TestDaemon.start({ logLevel: 'info', config: NO_GC });
    const c = berthd.client(api.ContentService, 'rss');
    await writeBlob(c, 'warm-up', randomBytes(4 << 20)); // load the code paths once
    const pid = berthd.pid!;
    const baseline = rssKiB(pid);
    let peak = baseline;

    const size = 2 * 1024 ** 3;
    const s = session(c);
    const h = createHash('sha256');
    await s.send({ ref: 'two-gib', total: size });
    let offset = 0;
    for (const chunk of pseudoRandom(size, 3)) {
      h.update(chunk);
      await s.send({ action: WRITE, data: chunk, offset });
      offset += chunk.byteLength;
      if ((offset & ((64 << 20) - 1)) === 0) peak = Math.max(peak, rssKiB(pid));
    }
    const digest = `sha256:${h.digest('hex')}`;
    expect((await s.send({ action: COMMIT, total: size, expected: digest, offset: size })).digest).toBe(digest);
    await s.end();

    const check = createHash('sha256');
    let n = 0;
    for await (const m of c.read({ digest, offset: 0, size: 0 })) {
      check.update(m.data);
      if (++n % 64 === 0) peak = Math.max(peak, rssKiB(pid));
    }
    expect(`sha256:${check.digest('hex')}`).toBe(digest);
    expect((peak - baseline) / 1024).toBeLessThan(64);
  }, 300_000);
});
