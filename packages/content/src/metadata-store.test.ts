import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, type Context } from '@berth/context';
import fc from 'fast-check';
import { GrpcCode, kindOf } from '@berth/errdefs';
import { ContentDelete, unpackAny } from '@berth/api/events';
import { Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { MetadataDb, objectKey } from '@berth/metadata';
import { ContentService } from './content-service';
import { digestOf } from './digest';
import { LocalContentStore } from './local-store';
import { INGEST_EXPIRY_MS, MetadataContentStore, type ContentSharingPolicy, type IngestRecord } from './metadata-store';
import { expectError, runContentStoreSuite, type ContentStoreFixture } from './testsuite';

interface Fixture {
  dir: string;
  db: MetadataDb;
  backend: LocalContentStore;
  store: MetadataContentStore;
  cleanup(): Promise<void>;
}

async function fixture(policy: ContentSharingPolicy = 'shared'): Promise<Fixture> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'berth-mcontent-'));
  const db = MetadataDb.open(join(dir, 'io.containerd.metadata.v1.bolt'));
  const backend = await LocalContentStore.open(join(dir, 'io.containerd.content.v1.content'));
  const store = new MetadataContentStore(db, backend, { policy });
  return {
    dir,
    db,
    backend,
    store,
    cleanup: async () => {
      await db.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

const ns = (namespace: string, lease?: string): Context => context({ namespace, lease });

runContentStoreSuite('MetadataContentStore', async (): Promise<ContentStoreFixture> => {
  const fx = await fixture();
  return {
    store: fx.store.bind(ns('suite')),
    cleanup: fx.cleanup,
    // A restart: new store objects over the same database and directory.
    reopen: async () => {
      const backend = await LocalContentStore.open(fx.backend.root);
      return new MetadataContentStore(fx.db, backend).bind(ns('suite'));
    },
  };
}, { blobNotFound: (d) => `content digest ${d}`, lockedRef: /suite\/\d+\/held/ });

async function put(store: MetadataContentStore, ctx: Context, ref: string, data: Buffer, labels?: Record<string, string>): Promise<string> {
  const digest = digestOf(data);
  const w = await store.writer(ctx, { ref, total: data.byteLength, expected: digest });
  await w.write(data);
  await w.commit(data.byteLength, digest, labels);
  return digest;
}

describe('MetadataContentStore', () => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await fixture();
  });
  afterEach(() => fx.cleanup());

  it('requires a namespace', async () => {
    await expectError(fx.store.info(context(), digestOf('x')), GrpcCode.FAILED_PRECONDITION, 'namespace is required: failed precondition');
  });

  it('shows each namespace only its own blobs, in Info, List, Read and Delete', async () => {
    const a = ns('a');
    const b = ns('b');
    const data = randomBytes(1000);
    const digest = await put(fx.store, a, 'one', data);
    await expectError(fx.store.info(b, digest), GrpcCode.NOT_FOUND, `content digest ${digest}: not found`);
    await expectError(fx.store.readerAt(b, { digest }), GrpcCode.NOT_FOUND);
    await expectError(fx.store.delete(b, digest), GrpcCode.NOT_FOUND);
    expect(await fx.store.list(b)).toEqual([]);
    expect((await fx.store.list(a)).map((i) => i.digest)).toEqual([digest]);
  });

  it('links a blob another namespace has without its data (shared policy)', async () => {
    const data = randomBytes(5000);
    const digest = await put(fx.store, ns('a'), 'x', data);
    const w = await fx.store.writer(ns('b', undefined), { ref: 'y', total: data.byteLength, expected: digest });
    expect(w.isShared).toBe(true);
    expect(await w.status()).toMatchObject({ ref: 'y', offset: 5000, total: 5000 });
    expect(await w.digest()).toBe(digest);
    await w.commit(data.byteLength, digest, { k: 'v' });
    expect(await fx.store.info(ns('b'), digest)).toMatchObject({ size: 5000, labels: { k: 'v' } });
    expect((await fx.store.info(ns('a'), digest)).labels).toEqual({});
    await expectError(fx.store.status(ns('b'), 'y'), GrpcCode.NOT_FOUND, 'reference y: not found');
  });

  it('does not link when the announced size differs, or under the isolated policy', async () => {
    const data = randomBytes(100);
    const digest = await put(fx.store, ns('a'), 'x', data);
    const w = await fx.store.writer(ns('b'), { ref: 'y', total: 99, expected: digest });
    expect(w.isShared).toBe(false);
    await w.close();

    const isolated = new MetadataContentStore(fx.db, fx.backend, { policy: 'isolated' });
    const w2 = await isolated.writer(ns('c'), { ref: 'y', total: 100, expected: digest });
    expect(w2.isShared).toBe(false);
    expect((await w2.status()).offset).toBe(0);
    await w2.write(data);
    await w2.commit(100, digest);
    expect((await isolated.info(ns('c'), digest)).size).toBe(100);
  });

  it('turns a shared writer into a real one when data is sent after all', async () => {
    const data = randomBytes(3000);
    const digest = await put(fx.store, ns('a'), 'x', data);
    const w = await fx.store.writer(ns('b'), { ref: 'y', expected: digest });
    await w.truncate(0);
    await w.write(data);
    await w.commit(3000, digest);
    expect((await fx.store.info(ns('b'), digest)).size).toBe(3000);
  });

  it('uses backend refs <ns>/<seq>/<ref>, so namespaces never share an ingest', async () => {
    const wa = await fx.store.writer(ns('a'), { ref: 'same' });
    const wb = await fx.store.writer(ns('b'), { ref: 'same' });
    expect(wa.backendRef).toBe('a/1/same');
    expect(wb.backendRef).toBe('b/1/same');
    await wa.write(Buffer.from('aaa'));
    await wb.write(Buffer.from('bbbbb'));
    await wa.close();
    await wb.close();
    expect((await fx.store.status(ns('a'), 'same')).offset).toBe(3);
    expect((await fx.store.status(ns('b'), 'same')).offset).toBe(5);
    expect((await fx.store.listStatuses(ns('a'))).map((s) => s.ref)).toEqual(['same']);
    // The same ref reopened resumes the same backend ingest.
    const again = await fx.store.writer(ns('a'), { ref: 'same' });
    expect(again.backendRef).toBe('a/1/same');
    expect((await again.status()).offset).toBe(3);
    await again.close();
  });

  it('reports a locked ref with its backend ref, as containerd does', async () => {
    const w = await fx.store.writer(ns('default'), { ref: 'busy' });
    await expectError(fx.store.writer(ns('default'), { ref: 'busy' }), GrpcCode.UNAVAILABLE, /^ref default\/1\/busy locked for \d+ms \(since .+\): unavailable$/);
    await w.close();
  });

  it('gives unleased ingests a 24h expiry and attaches leased ones and their blobs to the lease', async () => {
    const before = Date.now();
    const w = await fx.store.writer(ns('a'), { ref: 'free' });
    await w.close();
    const rec = fx.db.view((tx) => tx.get<IngestRecord>(objectKey('a', 'ingests', 'free')))!;
    expect(rec.expireAt).toBeGreaterThanOrEqual(before + INGEST_EXPIRY_MS);

    await expectError(fx.store.writer(ns('a', 'nolease'), { ref: 'l' }), GrpcCode.NOT_FOUND);
    fx.db.update((tx) => tx.put(objectKey('a', 'leases', 'L1'), { createdAt: Date.now(), labels: {} }));
    const data = Buffer.from('leased');
    const lw = await fx.store.writer(ns('a', 'L1'), { ref: 'l' });
    expect(fx.db.view((tx) => tx.get<IngestRecord>(objectKey('a', 'ingests', 'l'))!.expireAt)).toBeUndefined();
    expect(fx.db.view((tx) => tx.has(objectKey('a', 'leased', 'L1', 'ingests', 'l')))).toBe(true);
    await lw.write(data);
    await lw.commit(data.byteLength, digestOf(data));
    expect(fx.db.view((tx) => tx.has(objectKey('a', 'leased', 'L1', 'content', digestOf(data))))).toBe(true);
    expect(fx.db.view((tx) => tx.has(objectKey('a', 'leased', 'L1', 'ingests', 'l')))).toBe(false);
  });

  it('deletes the namespace record only, never the backend file', async () => {
    const data = Buffer.from('keep the file');
    const digest = await put(fx.store, ns('a'), 'k', data);
    const linked = await fx.store.writer(ns('b'), { ref: 'k', expected: digest });
    await linked.commit(0, digest);
    await fx.store.delete(ns('a'), digest);
    await expectError(fx.store.info(ns('a'), digest), GrpcCode.NOT_FOUND);
    expect((await fx.store.info(ns('b'), digest)).size).toBe(data.byteLength);
    const path = join(fx.backend.root, 'blobs', 'sha256', digest.slice(7));
    expect(existsSync(path)).toBe(true);
    // Written again in a: linked without data, the file is the same one.
    const w = await fx.store.writer(ns('a'), { ref: 'k2', expected: digest });
    expect(w.isShared).toBe(true);
    await w.commit(0, digest);
  });

  it('validates labels, applies masks and bumps updatedAt', async () => {
    const digest = await put(fx.store, ns('a'), 'l', Buffer.from('labels'), { a: '1', b: '2' });
    const created = await fx.store.info(ns('a'), digest);
    await new Promise((r) => setTimeout(r, 5));
    const one = await fx.store.update(ns('a'), { digest, labels: { a: '', c: '3' } }, ['labels.a', 'labels.c']);
    expect(one.labels).toEqual({ b: '2', c: '3' });
    expect(one.updatedAt.getTime()).toBeGreaterThan(created.updatedAt.getTime());
    expect(one.createdAt).toEqual(created.createdAt);
    expect((await fx.store.update(ns('a'), { digest, labels: { z: '9' } }, [])).labels).toEqual({ z: '9' });
    expect((await fx.store.update(ns('a'), { digest, labels: { y: '8' } }, ['labels'])).labels).toEqual({ y: '8' });
    await expectError(
      fx.store.update(ns('a'), { digest, labels: { k: 'v'.repeat(4096) } }, ['labels.k']),
      GrpcCode.INVALID_ARGUMENT,
      'info.Labels: label key and value greater than maximum size (4096 bytes), key: k: invalid argument',
    );
    await expectError(fx.store.update(ns('a'), { digest }, ['size']), GrpcCode.INVALID_ARGUMENT, `cannot update "size" field on content info "${digest}": invalid argument`);
  });

  it('label updates take any field paths and labels (keys such as constructor included): updated as asked, or InvalidArgument', async () => {
    const digest = await put(fx.store, ns('p'), 'p', Buffer.from('property'), { x: '1' });
    const key = fc.oneof(fc.constantFrom('constructor', 'toString', '__proto__', 'x', 'a'), fc.string({ unit: 'binary', maxLength: 10 }));
    const labels = fc.dictionary(key, fc.oneof(fc.constant(''), fc.string({ maxLength: 6 })), { maxKeys: 3 }).map((d) => Object.fromEntries(Object.entries(d)));
    const paths = fc.array(fc.oneof(fc.constant('labels'), key.map((k) => `labels.${k}`), fc.string({ maxLength: 12 })), { maxLength: 3 });
    await fc.assert(fc.asyncProperty(labels, paths, async (given, fieldpaths) => {
      const before = (await fx.store.info(ns('p'), digest)).labels;
      let after;
      try {
        after = (await fx.store.update(ns('p'), { digest, labels: given }, fieldpaths)).labels;
      } catch (err) {
        expect(`${kindOf(err)}: ${String(err)}`).toMatch(/^invalid-argument: /);
        return;
      }
      expect((await fx.store.info(ns('p'), digest)).labels).toEqual(after);
      if (fieldpaths.length === 0 || fieldpaths.includes('labels')) return;
      const want = new Map(Object.entries(before));
      for (const k of fieldpaths.map((p) => p.slice('labels.'.length))) {
        const v = Object.prototype.hasOwnProperty.call(given, k) ? given[k] : '';
        if (v === '') want.delete(k);
        else want.set(k, v);
      }
      expect(new Map(Object.entries(after))).toEqual(want);
    }), { numRuns: 300 });
  });

  it('publishes /content/delete from the service after the delete, and nothing for a failed one', async () => {
    const exchange = new Exchange();
    const svc = new ContentService(fx.store, exchange, nullLogger);
    const sub = exchange.subscribe(context(), []);
    const digest = await put(fx.store, ns('ev'), 'e', Buffer.from('event'));
    await expectError(svc.delete(ns('ev'), digestOf('missing')), GrpcCode.NOT_FOUND);
    await svc.delete(ns('ev'), digest);
    const it = sub[Symbol.asyncIterator]();
    const env = (await it.next()).value;
    expect(env).toMatchObject({ namespace: 'ev', topic: '/content/delete' });
    expect(unpackAny(env.event!)).toEqual(ContentDelete.fromPartial({ digest }));
    sub.close();
  });

  it.each([
    ['', 'ref must not be empty'],
    ['/abs', "must not start with '/'"],
    ['a/../b', "'..' path segment"],
    ['..', "'..' path segment"],
    ['a\0b', 'NUL'],
    ['x'.repeat(1025), 'more than the maximum 1024'],
  ])('rejects the ref %j with InvalidArgument', async (ref, why) => {
    await expectError(fx.store.writer(ns('a'), { ref }), GrpcCode.INVALID_ARGUMENT, new RegExp(why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  it.each(['tar-blobs/sha256/' + 'a'.repeat(64), 'a/b/c', 'x'.repeat(1024), 'trailing/', './a'])('accepts the ref %j', async (ref) => {
    const w = await fx.store.writer(ns('a'), { ref });
    await w.write(Buffer.from('ok'));
    await w.commit(2);
  });
});
