import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, read } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GrpcCode } from '@berth/errdefs';
import { Digester, digestOf } from './digest';
import { FileLabelStore } from './label-store';
import { LocalContentStore, type LocalContentStoreOptions } from './local-store';
import { expectError, runContentStoreSuite, type ContentStoreFixture } from './testsuite';
import type { Writer } from './types';

/** A store in a fresh temp dir, at the path the daemon uses; `reopen` re-creates the object. */
async function localFixture(options: (root: string) => LocalContentStoreOptions = () => ({})): Promise<
  ContentStoreFixture & { root: string; store: LocalContentStore; reopen(): Promise<LocalContentStore> }
> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'berth-content-'));
  const root = join(dir, 'io.containerd.content.v1.content');
  const make = () => LocalContentStore.open(root, options(root));
  return {
    root,
    store: await make(),
    reopen: make,
    cleanup: () => fsp.rm(dir, { recursive: true, force: true }),
  };
}

runContentStoreSuite('LocalContentStore', () => localFixture(), { labels: false });
runContentStoreSuite('LocalContentStore with FileLabelStore', () =>
  localFixture((root) => ({ labelStore: new FileLabelStore(join(root, 'labels')) })),
);
// Every writer that announces its total hashes on the hashing thread.
runContentStoreSuite('LocalContentStore hashing on its thread', () => localFixture(() => ({ hashOffloadMinBytes: 1 })), { labels: false });

const sha256hex = (text: string) => createHash('sha256').update(text).digest('hex');

describe('LocalContentStore', () => {
  let fx: Awaited<ReturnType<typeof localFixture>>;
  let store: LocalContentStore;
  const writers: Writer[] = [];

  beforeEach(async () => {
    fx = await localFixture();
    store = fx.store;
  });

  afterEach(async () => {
    for (const w of writers.splice(0)) await w.close().catch(() => undefined);
    await fx.cleanup();
  });

  async function open(ref: string, total?: number, expected?: string): Promise<Writer> {
    const w = await store.writer({ ref, total, expected });
    writers.push(w);
    return w;
  }

  describe('diskUsage', () => {
    it("reports a blob's allocated blocks as du counts them; NotFound for an absent one", async () => {
      const data = randomBytes(10_000);
      const digest = digestOf(data);
      const w = await open('usage', data.length, digest);
      await w.write(data);
      await w.commit(data.length, digest);
      const stat = await fsp.stat(join(fx.root, 'blobs', 'sha256', digest.slice('sha256:'.length)));
      expect(await store.diskUsage(digest)).toBe(stat.blocks * 512);
      expect(await store.diskUsage(digest)).toBeGreaterThanOrEqual(10_000);
      await expectError(store.diskUsage(digestOf(Buffer.from('absent'))), GrpcCode.NOT_FOUND, `content ${digestOf(Buffer.from('absent'))}: not found`);
      await expectError(store.diskUsage('sha256:nope'), GrpcCode.INVALID_ARGUMENT);
    });
  });

  describe('on-disk layout', () => {
    it('keeps ingests in ingest/<sha256 of ref>/ and blobs in blobs/<alg>/<hex>', async () => {
      const data = randomBytes(1000);
      const digest = digestOf(data);
      const w = await open('layout', 1000, digest);
      await w.write(data.subarray(0, 600));

      const dir = join(fx.root, 'ingest', sha256hex('layout'));
      expect((await fsp.readdir(dir)).sort()).toEqual(['data', 'expected', 'ref', 'startedat', 'total', 'updatedat']);
      expect(await fsp.readFile(join(dir, 'ref'), 'utf8')).toBe('layout');
      expect(await fsp.readFile(join(dir, 'total'), 'utf8')).toBe('1000');
      expect(await fsp.readFile(join(dir, 'expected'), 'utf8')).toBe(digest);
      expect((await fsp.stat(join(dir, 'data'))).size).toBe(600);
      expect(Date.parse(await fsp.readFile(join(dir, 'startedat'), 'utf8'))).not.toBeNaN();

      await w.write(data.subarray(600));
      await w.commit(1000, digest);
      const blob = join(fx.root, 'blobs', 'sha256', digest.slice('sha256:'.length));
      expect(Buffer.compare(await fsp.readFile(blob), data)).toBe(0);
      expect((await fsp.stat(blob)).mode & 0o222).toBe(0); // read-only
      expect(await fsp.readdir(join(fx.root, 'ingest'))).toEqual([]);
    });

    it('omits total and expected when unknown, as containerd does', async () => {
      await open('bare');
      const dir = join(fx.root, 'ingest', sha256hex('bare'));
      expect((await fsp.readdir(dir)).sort()).toEqual(['data', 'ref', 'startedat', 'updatedat']);
    });

    it('resumes an ingest written by containerd (RFC 3339 nanosecond times, no expected file)', async () => {
      const ref = 'default/1/layer-sha256:abc';
      const dir = join(fx.root, 'ingest', sha256hex(ref));
      const data = randomBytes(3000);
      await fsp.mkdir(dir);
      await fsp.writeFile(join(dir, 'ref'), ref);
      await fsp.writeFile(join(dir, 'startedat'), '2024-05-01T10:00:00.123456789+02:00');
      await fsp.writeFile(join(dir, 'updatedat'), '2024-05-01T10:00:01.5Z');
      await fsp.writeFile(join(dir, 'total'), '5000');
      await fsp.writeFile(join(dir, 'data'), data);

      const status = await store.status(ref);
      expect(status).toMatchObject({ ref, offset: 3000, total: 5000 });
      expect(status.startedAt.toISOString()).toBe('2024-05-01T08:00:00.123Z');

      const rest = randomBytes(2000);
      const w = await open(ref, 5000);
      expect(await w.digest()).toBe(digestOf(data));
      await w.write(rest);
      await w.commit(5000, digestOf(Buffer.concat([data, rest])));
    });
  });

  describe('refs', () => {
    it.each(['../../escape', 'a/b/c', '/abs', '.', 'ü'.repeat(100), 'x'.repeat(4096), 'nul\0byte'])(
      'stores ref %j under its hash',
      async (ref) => {
        const w = await open(ref);
        await w.write(Buffer.from('x'));
        await w.close();
        expect(await fsp.readdir(join(fx.root, 'ingest'))).toEqual([sha256hex(ref)]);
        expect((await store.status(ref)).ref).toBe(ref);
        await store.abort(ref);
      },
    );

    it('rejects refs longer than 4096 bytes', async () => {
      await expectError(store.writer({ ref: 'é'.repeat(2049) }), GrpcCode.INVALID_ARGUMENT, /4098 bytes/);
      await expectError(store.status('x'.repeat(4097)), GrpcCode.INVALID_ARGUMENT);
    });

    it('rejects a negative or fractional total', async () => {
      await expectError(store.writer({ ref: 'r', total: -1 }), GrpcCode.INVALID_ARGUMENT);
      await expectError(store.writer({ ref: 'r', total: 1.5 }), GrpcCode.INVALID_ARGUMENT);
      // The failed opens did not leave the ref locked.
      await open('r');
    });
  });

  describe('leftovers', () => {
    it('removes staging directories at open and never mistakes junk for blobs or ingests', async () => {
      const digest = digestOf('real');
      const w = await open('real');
      await w.write(Buffer.from('real'));
      await w.commit(4, digest);

      const hex = digest.slice('sha256:'.length);
      const blobs = join(fx.root, 'blobs');
      await fsp.writeFile(join(blobs, 'sha256', `${hex}.tmp`), 'partial');
      await fsp.writeFile(join(blobs, 'sha256', 'README'), 'junk');
      await fsp.mkdir(join(blobs, 'sha256', sha256hex('a directory')));
      await fsp.mkdir(join(blobs, 'md5'));
      await fsp.writeFile(join(blobs, 'md5', 'd41d8cd98f00b204e9800998ecf8427e'), '');
      await fsp.mkdir(join(fx.root, 'ingest', '.tmp-crashed'));
      await fsp.writeFile(join(fx.root, 'ingest', '.tmp-crashed', 'ref'), 'crashed');
      await fsp.mkdir(join(fx.root, 'ingest', 'not-an-ingest'));
      // A commit interrupted after the rename: the ingest dir has lost its data file.
      const halfDone = join(fx.root, 'ingest', sha256hex('half-done'));
      await fsp.mkdir(halfDone);
      await fsp.writeFile(join(halfDone, 'ref'), 'half-done');

      store = await fx.reopen();
      expect((await fsp.readdir(join(fx.root, 'ingest'))).sort()).toEqual([sha256hex('half-done'), 'not-an-ingest'].sort());
      const seen: string[] = [];
      await store.walk((info) => void seen.push(info.digest));
      expect(seen).toEqual([digest]);
      expect(await store.listStatuses()).toEqual([]);
      await expectError(store.status('half-done'), GrpcCode.NOT_FOUND);
      await expectError(store.info(`sha256:${hex}.tmp`), GrpcCode.INVALID_ARGUMENT);

      const again = await open('half-done');
      expect((await again.status()).offset).toBe(0);
    });
  });

  describe('resume', () => {
    it('restarts an ingest reopened with a different total, as containerd does', async () => {
      const w1 = await open('retotal', 100);
      await w1.write(randomBytes(50));
      await w1.close();
      const w2 = await open('retotal', 200);
      expect(await w2.status()).toMatchObject({ offset: 0, total: 200 });
    });

    it('keeps the bytes when the first open gave no total, recording the new one', async () => {
      const w1 = await open('late-total');
      await w1.write(randomBytes(50));
      await w1.close();
      const w2 = await open('late-total', 200);
      expect(await w2.status()).toMatchObject({ offset: 50, total: 200 });
      expect((await store.status('late-total')).total).toBe(200);
    });

    it('resumes an ingest after the writing process is killed with SIGKILL', async () => {
      const chunk = 1 << 20;
      const total = 8 * chunk;
      const written = 5;
      const child = spawn(
        process.execPath,
        ['-e', CHILD, fx.root, String(total), String(written)],
        {
          env: {
            ...process.env,
            BERTH_PACKAGES: resolve(__dirname, '../..'),
            BERTH_REGISTER: require.resolve('esbuild-register/dist/node'),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<NodeJS.Signals | number | null>((ok) =>
        child.on('exit', (code, signal) => ok(signal ?? code)),
      );
      try {
        await new Promise<void>((ok, fail) => {
          child.stdout.on('data', (d: Buffer) => d.toString().includes('written') && ok());
          child.on('exit', () => fail(new Error(`child exited early: ${stderr}`)));
        });
      } finally {
        if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      }
      expect(await exited).toBe('SIGKILL');

      store = await fx.reopen();
      expect((await store.status('crash')).offset).toBe(written * chunk);

      const expected = new Digester();
      const buffer = Buffer.alloc(chunk);
      for (let i = 0; i < 8; i++) expected.update(buffer.fill(i + 1));
      const w = await open('crash', total);
      expect((await w.status()).offset).toBe(written * chunk);
      for (let i = written; i < 8; i++) await w.write(Buffer.alloc(chunk, i + 1));
      await w.commit(total, expected.digest());
      expect((await store.info(expected.digest())).size).toBe(total);
    });
  });

  describe('locking', () => {
    it('retries about 10 × 50 ms before answering Unavailable', async () => {
      await open('busy');
      const start = Date.now();
      await expectError(store.writer({ ref: 'busy' }), GrpcCode.UNAVAILABLE, /^ref busy locked for \d+ms \(since /);
      expect(Date.now() - start).toBeGreaterThanOrEqual(450);
    });

    it('honours a configured retry', async () => {
      store = await LocalContentStore.open(fx.root, { lockRetry: { retries: 0 } });
      await open('busy');
      const start = Date.now();
      await expectError(store.writer({ ref: 'busy' }), GrpcCode.UNAVAILABLE);
      expect(Date.now() - start).toBeLessThan(450); // below what the default's retries take at least (above), with room for a loaded CI machine
    });
  });

  describe('writer', () => {
    it('supports truncate to 0 only', async () => {
      const w = await open('t');
      await w.write(Buffer.from('abc'));
      await expectError(w.truncate(1), GrpcCode.UNIMPLEMENTED);
      expect((await w.status()).offset).toBe(3);
    });

    it('writev appends its chunks in order, hashed, also past the system limit of chunks per call', async () => {
      const chunks = Array.from({ length: 3000 }, (_, i) => Buffer.from(`chunk ${i};`));
      const all = Buffer.concat(chunks);
      const w = await open('v');
      await w.write(Buffer.from('head;'));
      expect(await w.writev!(chunks)).toBe(all.length);
      const whole = Buffer.concat([Buffer.from('head;'), all]);
      expect((await w.status()).offset).toBe(whole.length);
      await w.commit(whole.length, `sha256:${createHash('sha256').update(whole).digest('hex')}`);
      const ra = await store.readerAt({ digest: await w.digest() });
      const back = Buffer.alloc(ra.size);
      await ra.readAt(back, 0);
      await ra.close();
      expect(back.equals(whole)).toBe(true);
    });

    it('hashes a blob announced large on the hashing thread: the same digest, wrong bytes refused, truncate(0) starts over', async () => {
      const bytes = randomBytes(3 << 20);
      const digest = digestOf(bytes);
      const w = await open('large', bytes.length);
      for (let i = 0; i < bytes.length; i += 256 << 10) await w.write(bytes.subarray(i, i + (256 << 10)));
      expect(await w.digest()).toBe(digest);
      await w.truncate(0);
      await w.write(Buffer.alloc(bytes.length));
      await expectError(w.commit(bytes.length, digest), GrpcCode.FAILED_PRECONDITION, /^unexpected commit digest/);

      const again = await open('large', bytes.length);
      expect((await again.status()).offset).toBe(bytes.length);
      await again.truncate(0);
      await again.write(bytes);
      await again.commit(bytes.length, digest);
      expect((await store.info(digest)).size).toBe(bytes.length);
    });

    it('lets a program that committed through the hashing thread exit by itself', async () => {
      const child = spawn(process.execPath, ['-e', CHILD_COMMIT, fx.root], {
        env: { ...process.env, BERTH_PACKAGES: resolve(__dirname, '../..'), BERTH_REGISTER: require.resolve('esbuild-register/dist/node') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await new Promise((ok) => child.on('exit', (c, signal) => ok(signal ?? c)));
      clearTimeout(timer);
      expect({ code, out: out.trim() }).toEqual({ code: 0, out: digestOf(Buffer.alloc(2 << 20, 7)) });
    });

    it('fails the commit of an ingest aborted under it', async () => {
      const w = await open('aborted');
      await w.write(Buffer.from('abc'));
      await store.abort('aborted');
      await expectError(w.commit(3), GrpcCode.NOT_FOUND, 'reference aborted: not found');
      await w.close();
      await expectError(store.status('aborted'), GrpcCode.NOT_FOUND);
    });
  });

  describe('following an ingest as it is written', () => {
    const readAll = async (fd: number, length: number) => {
      const b = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = await new Promise<number>((res, rej) => read(fd, b, done, length - done, done, (e, r) => (e ? rej(e) : res(r))));
        if (n === 0) break;
        done += n;
      }
      return b.subarray(0, done);
    };

    it('sees each write, then `verified` at a commit that checks the digest, and keeps reading after the rename', async () => {
      const data = randomBytes(100_000);
      const expected = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      const w = await open('f', data.length, expected);
      await w.write(data.subarray(0, 1000));
      const g = (await w.follow!())!;
      const seen: Array<[number, unknown]> = [];
      g.onChange(() => seen.push([g.written, g.ended]));
      expect(g.written).toBe(1000);
      expect(g.ended).toBeUndefined();
      await w.write(data.subarray(1000));
      expect(seen).toEqual([[data.length, undefined]]);
      await w.commit(data.length, expected);
      expect(g.ended).toBe('verified');
      // The ingest's file was renamed to the blob and its directory removed: the descriptor reads on.
      expect((await readAll(g.fd, data.length)).equals(data)).toBe(true);
      await g.close();
      await g.close();
    });

    it('resumes from byte 0: a follower of a resumed ingest reads what the first writer wrote', async () => {
      const w = await open('r');
      await w.write(Buffer.from('hello '));
      await w.close();
      const w2 = await open('r');
      const g = (await w2.follow!())!;
      expect(g.written).toBe(6);
      await w2.write(Buffer.from('world'));
      expect((await readAll(g.fd, g.written)).toString()).toBe('hello world');
      await g.close();
    });

    it('ends with an error when the writer is closed, truncated, or refuses the digest at commit', async () => {
      const closed = await open('c');
      const g1 = (await closed.follow!())!;
      await closed.close();
      expect(g1.ended).toBeInstanceOf(Error);
      expect((g1.ended as Error).message).toMatch(/closed before its commit/);

      const truncated = await open('t');
      await truncated.write(Buffer.from('abc'));
      const g2 = (await truncated.follow!())!;
      await truncated.truncate(0);
      expect((g2.ended as Error).message).toMatch(/truncated/);

      const wrong = await open('w');
      await wrong.write(Buffer.from('abc'));
      const g3 = (await wrong.follow!())!;
      await expectError(wrong.commit(3, `sha256:${sha256hex('abd')}`), GrpcCode.FAILED_PRECONDITION);
      expect(g3.ended).toBeInstanceOf(Error);
      await Promise.all([g1.close(), g2.close(), g3.close()]);
      await expectError(closed.follow!(), GrpcCode.FAILED_PRECONDITION);
    });

    it('a writer opened with notify: false tells neither the writing nor the commit listeners', async () => {
      const heard: string[] = [];
      store.onCommitted((d) => void heard.push(d));
      let writing = 0;
      store.onWriting(() => void writing++);
      const quiet = await store.writer({ ref: 'q', notify: false });
      await quiet.write(Buffer.from('quiet'));
      await quiet.commit(5);
      const loud = await open('l');
      await loud.write(Buffer.from('loud'));
      await loud.commit(4);
      expect(heard).toEqual([`sha256:${sha256hex('loud')}`]);
      expect(writing).toBe(1);
    });
  });

  describe('reading', () => {
    it('keeps an open reader working after the blob is deleted', async () => {
      const data = randomBytes(5000);
      const w = await open('r');
      await w.write(data);
      await w.commit(5000);
      const reader = await store.readerAt({ digest: digestOf(data) });
      try {
        await store.delete(digestOf(data));
        const buffer = Buffer.alloc(5000);
        expect(await reader.readAt(buffer, 0)).toBe(5000);
        expect(Buffer.compare(buffer, data)).toBe(0);
      } finally {
        await reader.close();
      }
    });
  });

  describe('FileLabelStore', () => {
    it('keeps labels in <dir>/<alg>/<hex>.json and ignores leftover temporaries', async () => {
      const dir = join(fx.root, 'labels');
      const labels = new FileLabelStore(dir);
      const digest = digestOf('x');
      const hex = digest.slice('sha256:'.length);
      expect(await labels.get(digest)).toBeUndefined();
      await Promise.all([
        labels.update(digest, (l) => ({ ...l, a: '1' })),
        labels.update(digest, (l) => ({ ...l, b: '2' })),
      ]);
      await fsp.writeFile(join(dir, 'sha256', `${hex}.json.abc.tmp`), '{"labels":');
      expect((await labels.get(digest))?.labels).toEqual({ a: '1', b: '2' });
      expect((await fsp.readdir(join(dir, 'sha256'))).sort()).toEqual([`${hex}.json`, `${hex}.json.abc.tmp`]);
      await labels.delete(digest);
      expect(await labels.get(digest)).toBeUndefined();
    });
  });
});

/**
 * The process that is killed: opens the store from the TypeScript sources (through esbuild-register,
 * mapping @berth/* to packages/<name>/src), writes chunk i filled with i + 1, reports, and waits.
 */
/** Loads @berth packages from their TypeScript sources in a child process. */
const CHILD_PRELUDE = `
const Module = require('module');
const path = require('path');
const packages = process.env.BERTH_PACKAGES;
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const m = /^@berth\\/([a-z0-9-]+)$/.exec(request);
  return resolveFilename.call(this, m ? path.join(packages, m[1], 'src', 'index.ts') : request, ...rest);
};
require(process.env.BERTH_REGISTER).register({ target: 'node20' });
const { LocalContentStore } = require(path.join(packages, 'content', 'src', 'local-store.ts'));
`;

/** Writes `count` MiB of a `total`-byte blob, then waits to be killed. */
const CHILD =
  CHILD_PRELUDE +
  `
(async () => {
  const [root, total, count] = process.argv.slice(1);
  const store = await LocalContentStore.open(root);
  const w = await store.writer({ ref: 'crash', total: Number(total) });
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < Number(count); i++) await w.write(Buffer.from(chunk.fill(i + 1)));
  process.stdout.write('written\\n');
  setInterval(() => {}, 1000);
})().catch((err) => { console.error(err); process.exit(1); });
`;

/** Commits a 2 MiB blob (hashed on the hashing thread), prints its digest and returns. */
const CHILD_COMMIT =
  CHILD_PRELUDE +
  `
(async () => {
  const store = await LocalContentStore.open(process.argv[1]);
  const bytes = Buffer.alloc(2 << 20, 7);
  const w = await store.writer({ ref: 'exit', total: bytes.length });
  await w.write(bytes);
  await w.commit(bytes.length);
  process.stdout.write(await w.digest());
})().catch((err) => { console.error(err); process.exit(1); });
`;
