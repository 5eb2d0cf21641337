/**
 * The conformance suite every {@link ContentStore} implementation runs, after containerd's
 * content testsuite: `runContentStoreSuite('local', makeStore)` inside a jest test file. It uses
 * jest globals, which is why it is its own entry point (`@berth/content/testsuite`) and not
 * exported from the package index.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { Digester, EMPTY_DIGEST, digestOf, type Digest } from './digest';
import type { ContentStore, Info, Labels, Writer, WriterOptions } from './types';

/** One store under test, made fresh for every test. */
export interface ContentStoreFixture {
  store: ContentStore;
  /** Closes the store(s) and removes everything the fixture created. */
  cleanup(): Promise<void>;
  /**
   * Simulates a restart: drops the current store object without closing its writers (as a crash
   * would) and returns a new one over the same storage. Required unless the suite is told
   * `{ reopen: false }`.
   */
  reopen?(): Promise<ContentStore>;
}

/** What the implementation under test supports. */
export interface ContentStoreSuiteOptions {
  /**
   * Whether the store keeps labels (default true). A store that does not must reject `update`
   * with FailedPrecondition and report empty labels.
   */
  labels?: boolean;
  /**
   * The NotFound message for a missing blob. Default `content <digest>` (the local store's);
   * the namespaced store says `content digest <digest>`, as containerd's metadata layer does.
   */
  blobNotFound?: (digest: Digest) => string;
  /**
   * The ref a lock conflict names. Default the ref itself; the namespaced store names the
   * backend ref `<ns>/<seq>/<ref>`, as containerd does.
   */
  lockedRef?: RegExp;
  /**
   * Whether the fixtures can reopen the store (default true). With false the restart tests are
   * reported as skipped; with true a fixture without `reopen` fails them.
   */
  reopen?: boolean;
}

/** Registers the conformance tests for a content store implementation. */
export function runContentStoreSuite(
  name: string,
  makeStore: () => Promise<ContentStoreFixture>,
  options: ContentStoreSuiteOptions = {},
): void {
  const keepsLabels = options.labels ?? true;
  const blobNotFound = (d: Digest) => `${(options.blobNotFound ?? ((x: Digest) => `content ${x}`))(d)}: not found`;
  const lockedRef = options.lockedRef?.source ?? 'held';
  // Chosen at definition time, so a store that cannot reopen reports a skip, never a pass.
  const withReopen = options.reopen === false ? it.skip : it;
  const reopenNote = options.reopen === false ? ' (skipped: the fixture cannot reopen the store)' : '';

  describe(`${name}: content store conformance`, () => {
    let fixture: ContentStoreFixture;
    let store: ContentStore;
    let writers: Writer[];

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
      writers = [];
    });

    afterEach(async () => {
      for (const w of writers) await w.close().catch(() => undefined);
      await fixture.cleanup();
    });

    /** Opens a writer that afterEach closes if the test does not. */
    async function open(opts: WriterOptions): Promise<Writer> {
      const w = await store.writer(opts);
      writers.push(w);
      return w;
    }

    async function commitBlob(ref: string, data: Uint8Array, labels?: Labels): Promise<Digest> {
      const digest = digestOf(data);
      const w = await open({ ref, total: data.byteLength, expected: digest });
      // As containerd's content.Copy: a writer that already has everything (a blob shared from
      // another namespace) gets no data.
      if ((await w.status()).offset !== data.byteLength) await writeChunks(w, data, 4096);
      await w.commit(data.byteLength, digest, labels);
      return digest;
    }

    describe('write and commit', () => {
      it('round-trips a blob written in chunks', async () => {
        const data = randomBytes(10_000);
        const digest = digestOf(data);
        const labels = { 'containerd.io/gc.root': '2024-01-01T00:00:00Z', k: 'v' };

        const w = await open({ ref: 'round-trip', total: data.byteLength, expected: digest });
        expect(w.ref).toBe('round-trip');
        await writeChunks(w, data, 1000);
        expect(await w.digest()).toBe(digest);

        const before = new Date();
        await w.commit(data.byteLength, digest, labels);
        const after = new Date();
        expect(await w.digest()).toBe(digest);

        const info = await store.info(digest);
        expect(info).toMatchObject({ digest, size: data.byteLength, labels: keepsLabels ? labels : {} });
        expectBetween(info.createdAt, before, after);
        expectBetween(info.updatedAt, before, after);

        const reader = await store.readerAt({ digest, size: data.byteLength });
        try {
          expect(reader.size).toBe(data.byteLength);
          expect(Buffer.compare(await readAll(reader.createReadStream()), data)).toBe(0);
        } finally {
          await reader.close();
        }

        await expectError(store.status('round-trip'), GrpcCode.NOT_FOUND, 'reference round-trip: not found');
        await w.close(); // closing after commit is a no-op
      });

      it('commits without size or digest checks when none are given', async () => {
        const data = Buffer.from('no checks');
        const w = await open({ ref: 'unchecked' });
        await w.write(data);
        await w.commit(0);
        expect((await store.info(digestOf(data))).size).toBe(data.byteLength);
      });

      it('commits an empty blob', async () => {
        const w = await open({ ref: 'empty' });
        expect(await w.digest()).toBe(EMPTY_DIGEST);
        await w.commit(0, EMPTY_DIGEST);
        expect((await store.info(EMPTY_DIGEST)).size).toBe(0);
      });

      it('reports the running digest and status while writing', async () => {
        const data = randomBytes(256);
        const digest = digestOf(data);
        const before = new Date();
        const w = await open({ ref: 'progress', total: 256, expected: digest });
        const after = new Date();

        let status = await w.status();
        expect(status).toMatchObject({ ref: 'progress', offset: 0, total: 256, expected: digest });
        expectBetween(status.startedAt, before, after);
        expect(await w.digest()).toBe(EMPTY_DIGEST);

        for (const end of [64, 192, 256]) {
          const start = (await w.status()).offset;
          const writeStart = new Date();
          expect(await w.write(data.subarray(start, end))).toBe(end - start);
          status = await w.status();
          expect(status.offset).toBe(end);
          expectBetween(status.updatedAt, writeStart, new Date());
          expect(await w.digest()).toBe(digestOf(data.subarray(0, end)));
          expect((await store.status('progress')).offset).toBe(end);
        }
        await w.commit(256, digest);
      });

      it('applies writes issued without awaiting in call order', async () => {
        const parts = [randomBytes(100_000), randomBytes(3), randomBytes(50_000)];
        const data = Buffer.concat(parts);
        const w = await open({ ref: 'pipelined' });
        const lengths = await Promise.all(parts.map((p) => w.write(p)));
        expect(lengths).toEqual(parts.map((p) => p.byteLength));
        await w.commit(data.byteLength, digestOf(data));
        expect((await store.info(digestOf(data))).size).toBe(data.byteLength);
      });

      it('rejects use of a writer after commit', async () => {
        const w = await open({ ref: 'done' });
        await w.write(Buffer.from('x'));
        await w.commit(1);
        await expectError(w.write(Buffer.from('y')), GrpcCode.FAILED_PRECONDITION);
        await expectError(w.commit(1), GrpcCode.FAILED_PRECONDITION);
      });

      it.each(['sha384', 'sha512'] as const)('hashes with the algorithm of a %s expected digest', async (algorithm) => {
        const data = randomBytes(5000);
        const digest = digestOf(data, algorithm);
        const w = await open({ ref: `alg-${algorithm}`, total: data.byteLength, expected: digest });
        await w.write(data);
        expect(await w.digest()).toBe(digest);
        await w.commit(data.byteLength, digest);
        expect(await store.info(digest)).toMatchObject({ digest, size: data.byteLength });
        const reader = await store.readerAt({ digest });
        try {
          expect(Buffer.compare(await readAll(reader.createReadStream()), data)).toBe(0);
        } finally {
          await reader.close();
        }
      });

      it('verifies a commit digest of another algorithm than the one written with', async () => {
        const data = randomBytes(3000);
        const digest = digestOf(data, 'sha512');
        const w = await open({ ref: 'late-alg' });
        await w.write(data);
        await w.commit(data.byteLength, digest);
        expect((await store.info(digest)).size).toBe(data.byteLength);
      });
    });

    describe('resume', () => {
      const sizes = [500, 50_000];
      const cuts = [0, 0.1, 0.5, 1];
      const cases = sizes.flatMap((size) =>
        cuts.flatMap((cut) => (['continue', 'truncate'] as const).map((how) => [size, cut, how] as const)),
      );

      it.each(cases)('resumes a %i-byte ingest closed at %f and finishes it (%s)', async (size, cut, how) => {
        const data = randomBytes(size);
        const digest = digestOf(data);
        const ref = `resume-${size}-${cut}-${how}`;
        const limit = Math.floor(size * cut);

        const before = new Date();
        const w1 = await open({ ref, total: size, expected: digest });
        const after = new Date();
        await w1.write(data.subarray(0, limit));
        await w1.close();

        const w2 = await open({ ref, total: size, expected: digest });
        const status = await w2.status();
        expect(status).toMatchObject({ ref, offset: limit, total: size });
        expectBetween(status.startedAt, before, after);
        expect(await w2.digest()).toBe(digestOf(data.subarray(0, limit)));

        if (how === 'truncate') {
          await w2.truncate(0);
          expect((await w2.status()).offset).toBe(0);
          await w2.write(data);
        } else {
          await w2.write(data.subarray(limit));
        }
        await w2.commit(size, digest);
        expect((await store.info(digest)).size).toBe(size);
      });

      withReopen(`resumes after the store is reopened, with or without the writer closed${reopenNote}`, async () => {
        if (!fixture.reopen) throw new Error('the fixture has no reopen(): give it one, or run the suite with { reopen: false }');
        const a = randomBytes(20_000);
        const b = randomBytes(20_000);
        const wa = await open({ ref: 'restart-closed', total: a.byteLength });
        await wa.write(a.subarray(0, 7000));
        await wa.close();
        const wb = await open({ ref: 'restart-crashed', total: b.byteLength });
        await wb.write(b.subarray(0, 9000));
        // wb is left open, as a crash leaves it.

        store = await fixture.reopen();
        const refs = (await store.listStatuses()).map((s) => [s.ref, s.offset]);
        expect(refs.sort()).toEqual([
          ['restart-closed', 7000],
          ['restart-crashed', 9000],
        ]);

        for (const [ref, data, done] of [
          ['restart-closed', a, 7000],
          ['restart-crashed', b, 9000],
        ] as const) {
          const w = await open({ ref, total: data.byteLength });
          expect((await w.status()).offset).toBe(done);
          expect(await w.digest()).toBe(digestOf(data.subarray(0, done)));
          await w.write(data.subarray(done));
          await w.commit(data.byteLength, digestOf(data));
          expect((await store.info(digestOf(data))).size).toBe(data.byteLength);
        }
      });
    });

    describe('truncate', () => {
      it('truncate(0) discards what was written', async () => {
        const data = randomBytes(4000);
        const digest = digestOf(data);
        const w = await open({ ref: 'truncate', total: data.byteLength });
        await w.write(randomBytes(1234));
        await w.truncate(0);
        expect((await w.status()).offset).toBe(0);
        expect(await w.digest()).toBe(EMPTY_DIGEST);
        expect((await store.status('truncate')).offset).toBe(0);
        await w.write(data);
        await w.commit(data.byteLength, digest);
        expect((await store.info(digest)).size).toBe(data.byteLength);
      });

      it('truncate(0) also discards data of a resumed ingest', async () => {
        const w1 = await open({ ref: 'truncate-resumed' });
        await w1.write(randomBytes(999));
        await w1.close();
        const w2 = await open({ ref: 'truncate-resumed' });
        expect((await w2.status()).offset).toBe(999);
        await w2.truncate(0);
        const data = Buffer.from('fresh');
        await w2.write(data);
        await w2.commit(data.byteLength, digestOf(data));
      });
    });

    describe('commit checks', () => {
      it('rejects a wrong size and keeps the ingest for a resume', async () => {
        const data = randomBytes(10);
        const w = await open({ ref: 'short' });
        await w.write(data.subarray(0, 5));
        await expectError(
          w.commit(10, digestOf(data)),
          GrpcCode.FAILED_PRECONDITION,
          '"short" failed size validation: 5 != 10: failed precondition',
        );
        // The writer is finished and the ref free; the bytes remain.
        await expectError(w.write(data.subarray(5)), GrpcCode.FAILED_PRECONDITION);
        expect((await store.status('short')).offset).toBe(5);

        const again = await open({ ref: 'short' });
        expect((await again.status()).offset).toBe(5);
        await again.write(data.subarray(5));
        await again.commit(10, digestOf(data));
        expect((await store.info(digestOf(data))).size).toBe(10);
      });

      it('rejects a wrong digest and keeps the ingest for a resume', async () => {
        const data = randomBytes(64);
        const actual = digestOf(data);
        const wrong = digestOf('something else');
        const w = await open({ ref: 'wrong-digest' });
        await w.write(data);
        await expectError(
          w.commit(64, wrong),
          GrpcCode.FAILED_PRECONDITION,
          `unexpected commit digest ${actual}, expected ${wrong}: failed precondition`,
        );
        expect((await store.status('wrong-digest')).offset).toBe(64);
        await expectError(store.info(wrong), GrpcCode.NOT_FOUND);

        const again = await open({ ref: 'wrong-digest' });
        await again.commit(64, actual);
        expect((await store.info(actual)).size).toBe(64);
      });

      it('refuses to open a writer for content that exists', async () => {
        const data = randomBytes(256);
        const digest = await commitBlob('first', data);
        await expectError(
          store.writer({ ref: 'second', total: 256, expected: digest }),
          GrpcCode.ALREADY_EXISTS,
          `content ${digest}: already exists`,
        );
        // The failed open left no lock and no ingest behind.
        await expectError(store.status('second'), GrpcCode.NOT_FOUND);
        const w = await open({ ref: 'second' });
        await w.close();
      });

      it.each([
        ['with', true],
        ['without', false],
      ])('answers AlreadyExists to a commit %s expected digest of content that exists, removing the ingest', async (_, withDigest) => {
        const data = randomBytes(256);
        const digest = await commitBlob('original', data);
        const w = await open({ ref: 'duplicate' });
        await w.write(data);
        await expectError(
          w.commit(256, withDigest ? digest : undefined),
          GrpcCode.ALREADY_EXISTS,
          `content ${digest}: already exists`,
        );
        await expectError(store.status('duplicate'), GrpcCode.NOT_FOUND);
        expect((await store.info(digest)).size).toBe(256);
        const next = await open({ ref: 'duplicate' });
        expect((await next.status()).offset).toBe(0);
      });
    });

    describe('locking', () => {
      it('refuses a second writer on a held ref and leaves the first unaffected', async () => {
        const data = randomBytes(2000);
        const w1 = await open({ ref: 'held', total: 2000 });
        await w1.write(data.subarray(0, 1000));

        await expectError(
          store.writer({ ref: 'held' }),
          GrpcCode.UNAVAILABLE,
          new RegExp(`^ref ${lockedRef} locked for \\d+ms \\(since .+\\): unavailable$`),
        );

        await w1.write(data.subarray(1000));
        await w1.commit(2000, digestOf(data));
        expect((await store.info(digestOf(data))).size).toBe(2000);
        const w2 = await open({ ref: 'held' });
        expect((await w2.status()).offset).toBe(0);
      });

      it('frees the ref when the writer closes', async () => {
        const w1 = await open({ ref: 'released' });
        await w1.write(Buffer.from('abc'));
        await w1.close();
        const w2 = await open({ ref: 'released' });
        expect((await w2.status()).offset).toBe(3);
      });

      it('gives the ref to a waiting writer released within the retry window', async () => {
        const w1 = await open({ ref: 'handover' });
        await w1.write(Buffer.from('abcd'));
        const timer = setTimeout(() => void w1.close(), 100);
        try {
          const w2 = await open({ ref: 'handover' });
          expect((await w2.status()).offset).toBe(4);
        } finally {
          clearTimeout(timer);
        }
      });

      it('does not lock distinct refs together', async () => {
        const w1 = await open({ ref: 'one' });
        const w2 = await open({ ref: 'two' });
        await w1.write(Buffer.from('1'));
        await w2.write(Buffer.from('2'));
        await w1.commit(1);
        await w2.commit(1);
      });
    });

    describe('abort', () => {
      it('removes an ingest, and a second abort is NotFound', async () => {
        const w = await open({ ref: 'doomed' });
        await w.write(Buffer.from('some bytes'));
        await w.close();
        await store.abort('doomed');
        await expectError(store.status('doomed'), GrpcCode.NOT_FOUND, 'reference doomed: not found');
        expect(await store.listStatuses()).toEqual([]);
        await expectError(store.abort('doomed'), GrpcCode.NOT_FOUND, 'reference doomed: not found');

        const again = await open({ ref: 'doomed' });
        expect((await again.status()).offset).toBe(0);
      });

      it('is NotFound for an unknown ref', async () => {
        await expectError(store.abort('never-seen'), GrpcCode.NOT_FOUND, 'reference never-seen: not found');
      });
    });

    describe('status and listStatuses', () => {
      it('describe every ingest and only ingests', async () => {
        const expected = digestOf('payload-b');
        const before = new Date();
        const a = await open({ ref: 'ingest-a', total: 100 });
        const b = await open({ ref: 'ingest-b', total: 9, expected });
        const after = new Date();
        await a.write(randomBytes(40));
        await b.write(Buffer.from('payl'));
        await b.close();
        await commitBlob('committed', Buffer.from('gone from statuses'));

        const a1 = await store.status('ingest-a');
        expect(a1).toMatchObject({ ref: 'ingest-a', offset: 40, total: 100 });
        expectBetween(a1.startedAt, before, after);
        expect(a1.updatedAt.getTime()).toBeGreaterThanOrEqual(a1.startedAt.getTime());
        expect(await store.status('ingest-b')).toMatchObject({ ref: 'ingest-b', offset: 4, total: 9 });

        const all = await store.listStatuses();
        expect(all.map((s) => [s.ref, s.offset, s.total]).sort()).toEqual([
          ['ingest-a', 40, 100],
          ['ingest-b', 4, 9],
        ]);
        const some = await store.listStatuses((s) => s.ref === 'ingest-b');
        expect(some.map((s) => s.ref)).toEqual(['ingest-b']);
      });

      it('is NotFound for an unknown ref and InvalidArgument for an empty one', async () => {
        await expectError(store.status('nope'), GrpcCode.NOT_FOUND, 'reference nope: not found');
        await expectError(store.status(''), GrpcCode.INVALID_ARGUMENT);
        await expectError(store.writer({ ref: '' }), GrpcCode.INVALID_ARGUMENT);
      });
    });

    describe('walk', () => {
      it('visits nothing in an empty store', async () => {
        const seen: Info[] = [];
        await store.walk((info) => void seen.push(info));
        expect(seen).toEqual([]);
      });

      it('visits every blob once, filtered, awaiting each call', async () => {
        const blobs = [randomBytes(10), randomBytes(20), randomBytes(30)];
        const digests: Digest[] = [];
        for (const [i, b] of blobs.entries()) digests.push(await commitBlob(`walk-${i}`, b));
        const ingest = await open({ ref: 'walk-ingest' });
        await ingest.write(randomBytes(5)); // ingests are not blobs

        const seen: [string, number][] = [];
        let running = 0;
        await store.walk(async (info) => {
          expect(running++).toBe(0);
          await new Promise((r) => setImmediate(r));
          seen.push([info.digest, info.size]);
          running--;
        });
        expect(seen.sort()).toEqual(digests.map((d, i) => [d, blobs[i].byteLength] as [string, number]).sort());

        const big: string[] = [];
        await store.walk(
          (info) => void big.push(info.digest),
          (info) => info.size >= 20,
        );
        expect(big.sort()).toEqual([digests[1], digests[2]].sort());

        await expect(
          store.walk(() => {
            throw new Error('stop');
          }),
        ).rejects.toThrow('stop');
      });
    });

    describe('delete', () => {
      it('removes a blob, after which it is NotFound everywhere', async () => {
        const keep = await commitBlob('keep', randomBytes(100));
        const digest = await commitBlob('delete', randomBytes(100));
        await store.delete(digest);
        const gone = blobNotFound(digest);
        await expectError(store.info(digest), GrpcCode.NOT_FOUND, gone);
        await expectError(store.readerAt({ digest }), GrpcCode.NOT_FOUND, gone);
        await expectError(store.delete(digest), GrpcCode.NOT_FOUND, gone);
        const seen: string[] = [];
        await store.walk((info) => void seen.push(info.digest));
        expect(seen).toEqual([keep]);
      });
    });

    describe('malformed digests', () => {
      const valid = digestOf('x');
      const cases: [string, string][] = [
        ['', 'invalid checksum digest format'],
        ['sha256', 'invalid checksum digest format'],
        ['sha256:', 'invalid checksum digest format'],
        [':' + valid.slice(7), 'invalid checksum digest format'],
        ['sha256:abc', 'invalid checksum digest length'],
        [`sha256:${'g'.repeat(64)}`, 'invalid checksum digest format'],
        [`sha256:${valid.slice(7).toUpperCase()}`, 'invalid checksum digest format'],
        [`SHA256:${valid.slice(7)}`, 'invalid checksum digest format'],
        ['md5:d41d8cd98f00b204e9800998ecf8427e', 'unsupported digest algorithm'],
        [`sha256:${valid.slice(7)}/../x`, 'invalid checksum digest length'],
      ];

      it.each(cases)('rejects %j with %j in every operation', async (bad, message) => {
        const check = (p: Promise<unknown>) => expectError(p, GrpcCode.INVALID_ARGUMENT, message);
        await check(store.info(bad));
        await check(store.delete(bad));
        await check(store.readerAt({ digest: bad }));
        await check(store.update({ digest: bad, labels: {} }));
        await check(store.writer({ ref: 'bad-expected', expected: bad || 'x' }));
        const w = await open({ ref: 'bad-commit' });
        await check(w.commit(0, bad || 'x'));
      });
    });

    describe('reading', () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const size = data.byteLength;
      let digest: Digest;
      beforeEach(async () => {
        digest = await commitBlob('readme', data);
      });

      it.each<[number, number | undefined]>([
        [0, undefined],
        [0, 1],
        [10, 100],
        [1024 * 1024 - 1, 1024 * 1024 + 2],
        [size - 1, 10],
        [size, 10],
        [size + 5, undefined],
        [7, 0],
      ])('streams from offset %i, length %p', async (offset, length) => {
        const reader = await store.readerAt({ digest });
        try {
          const got = await readAll(reader.createReadStream(offset, length));
          const end = length === undefined ? size : Math.min(size, offset + length);
          expect(Buffer.compare(got, data.subarray(Math.min(offset, size), Math.max(end, Math.min(offset, size))))).toBe(0);
        } finally {
          await reader.close();
        }
      });

      it.each<[number, number]>([
        [0, 16],
        [100, 4096],
        [size - 3, 16],
        [size, 16],
        [size + 100, 16],
        [0, size + 1],
      ])('reads at offset %i into a %i-byte buffer', async (offset, length) => {
        const reader = await store.readerAt({ digest });
        try {
          const buffer = Buffer.alloc(length);
          const n = await reader.readAt(buffer, offset);
          const want = data.subarray(Math.min(offset, size), Math.min(size, offset + length));
          expect(n).toBe(want.byteLength);
          expect(Buffer.compare(buffer.subarray(0, n), want)).toBe(0);
        } finally {
          await reader.close();
        }
      });

      it('serves concurrent streams from one reader', async () => {
        const reader = await store.readerAt({ digest });
        try {
          const [x, y] = await Promise.all([
            readAll(reader.createReadStream(0)),
            readAll(reader.createReadStream(size - 1000, 500)),
          ]);
          expect(Buffer.compare(x, data)).toBe(0);
          expect(Buffer.compare(y, data.subarray(size - 1000, size - 500))).toBe(0);
        } finally {
          await reader.close();
        }
      });

      it('rejects negative offsets and reports a missing blob', async () => {
        const reader = await store.readerAt({ digest });
        try {
          await expectError(reader.readAt(Buffer.alloc(1), -1), GrpcCode.INVALID_ARGUMENT);
          expect(() => reader.createReadStream(-1)).toThrow();
        } finally {
          await reader.close();
          await reader.close();
        }
        const missing = digestOf('missing');
        await expectError(store.readerAt({ digest: missing }), GrpcCode.NOT_FOUND, blobNotFound(missing));
      });
    });

    if (keepsLabels) {
      describe('labels', () => {
        it('stores commit labels, dropping empty values', async () => {
          const digest = await commitBlob('labelled', randomBytes(32), { a: '1', empty: '' });
          expect((await store.info(digest)).labels).toEqual({ a: '1' });
        });

        it('replaces all labels without field paths or with "labels"', async () => {
          const digest = await commitBlob('replace', randomBytes(32), { a: '1', b: '2' });
          const created = (await store.info(digest)).createdAt;
          const before = new Date();
          const info = await store.update({ digest, labels: { c: '3' } });
          expect(info.labels).toEqual({ c: '3' });
          expect(info.createdAt).toEqual(created);
          expectBetween(info.updatedAt, before, new Date());
          expect((await store.info(digest)).labels).toEqual({ c: '3' });
          await store.update({ digest, labels: { d: '4', e: '' } }, ['labels']);
          expect((await store.info(digest)).labels).toEqual({ d: '4' });
        });

        it('sets and deletes single labels by field path', async () => {
          const digest = await commitBlob('paths', randomBytes(32), { k1: 'v1', k2: 'v2', k3: 'v3' });
          const info = await store.update({ digest, labels: { k1: 'new', k2: '', other: 'ignored' } }, [
            'labels.k1',
            'labels.k2',
            'labels.k3',
            'labels.k4',
          ]);
          expect(info.labels).toEqual({ k1: 'new' });
        });

        it('rejects other field paths, oversized labels and missing blobs', async () => {
          const digest = await commitBlob('bad-update', randomBytes(32));
          await expectError(store.update({ digest, labels: {} }, ['size']), GrpcCode.INVALID_ARGUMENT);
          await expectError(store.update({ digest, labels: { k: 'v'.repeat(4096) } }), GrpcCode.INVALID_ARGUMENT);
          const missing = digestOf('missing');
          await expectError(store.update({ digest: missing, labels: {} }), GrpcCode.NOT_FOUND, blobNotFound(missing));
        });

        it('forgets the labels of a deleted blob', async () => {
          const data = randomBytes(32);
          const digest = await commitBlob('relabel', data, { a: '1' });
          await store.delete(digest);
          await commitBlob('relabel-again', data);
          expect((await store.info(digest)).labels).toEqual({});
        });
      });
    } else {
      describe('without labels', () => {
        it('rejects update with FailedPrecondition and reports no labels', async () => {
          const digest = await commitBlob('unlabelled', randomBytes(32), { a: '1' });
          expect((await store.info(digest)).labels).toEqual({});
          await expectError(store.update({ digest, labels: { a: '1' } }), GrpcCode.FAILED_PRECONDITION);
        });
      });
    }

    describe('large blobs', () => {
      it('writes and reads 64 MiB in 1 MiB chunks with bounded memory', async () => {
        const chunk = 1024 * 1024;
        const count = 64;
        const gc = exposeGc();
        // Retained memory (heap and Buffers) after collecting: a second pass frees the Buffers
        // whose backing stores the first one only released.
        const sample = () => {
          gc();
          gc();
          const m = process.memoryUsage();
          return m.heapUsed + m.arrayBuffers;
        };

        // One buffer, changed between chunks, so the test itself holds 1 MiB.
        const buffer = randomBytes(chunk);
        const expect256 = new Digester();
        const baseline = sample();
        let peak = 0;
        const w = await open({ ref: 'large', total: chunk * count });
        for (let i = 0; i < count; i++) {
          buffer.writeUInt32BE(i, 0);
          expect256.update(buffer);
          await w.write(buffer);
          if (i % 8 === 7) peak = Math.max(peak, sample() - baseline);
        }
        const digest = expect256.digest();
        await w.commit(chunk * count, digest);
        peak = Math.max(peak, sample() - baseline);
        expect(peak).toBeLessThan(16 * 1024 * 1024);

        const reader = await store.readerAt({ digest });
        try {
          expect(reader.size).toBe(chunk * count);
          const check = new Digester();
          let n = 0;
          peak = 0;
          const readBaseline = sample();
          for await (const piece of reader.createReadStream()) {
            check.update(piece as Buffer);
            if (++n % 16 === 0) peak = Math.max(peak, sample() - readBaseline);
          }
          expect(check.digest()).toBe(digest);
          expect(peak).toBeLessThan(16 * 1024 * 1024);
        } finally {
          await reader.close();
        }
      });
    });
  });
}

/** Writes `data` in chunks of `size` bytes, awaiting each. */
async function writeChunks(w: Writer, data: Uint8Array, size: number): Promise<void> {
  for (let i = 0; i < data.byteLength; i += size) await w.write(data.subarray(i, i + size));
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Asserts that `promise` rejects with the gRPC code (and message) the service would send. */
export async function expectError(promise: Promise<unknown>, code: GrpcCode, message?: string | RegExp): Promise<void> {
  const outcome = await promise.then(
    () => ({ rejected: false as const }),
    (err: unknown) => ({ rejected: true as const, err }),
  );
  if (!outcome.rejected) throw new Error(`expected a rejection with code ${GrpcCode[code]}, but the call succeeded`);
  const status = toGrpcStatus(outcome.err);
  expect(GrpcCode[status.code]).toBe(GrpcCode[code]);
  if (typeof message === 'string') expect(status.details).toBe(message);
  else if (message) expect(status.details).toMatch(message);
}

function expectBetween(value: Date, from: Date, to: Date): void {
  expect(value).toBeInstanceOf(Date);
  expect(value.getTime()).toBeGreaterThanOrEqual(from.getTime());
  expect(value.getTime()).toBeLessThanOrEqual(to.getTime());
}

/** Returns V8's collector, exposing it at run time when node was started without --expose-gc. */
function exposeGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
