import { context } from '@berth/context';
import { INGEST_EXPIRY_MS } from '@berth/content';
import { MetadataCollector } from './collector';
import { GcWorld } from './test-helpers';

const ns = 'default';
const ctx = context({ namespace: ns });
const REF = 'containerd.io/gc.ref.content';

describe('MetadataCollector', () => {
  let w: GcWorld;
  beforeEach(async () => {
    w = await GcWorld.open();
  });
  afterEach(async () => {
    await w.close();
  });

  it('keeps what an image reaches through gc.ref labels and removes the rest, records and files', async () => {
    const l0 = await w.blob(ctx, 'layer 0');
    const l1 = await w.blob(ctx, 'layer 1');
    const cfg = await w.blob(ctx, 'config');
    const manifest = await w.blob(ctx, 'manifest', { [`${REF}.config`]: cfg, [`${REF}.l.0`]: l0, [`${REF}.l.1`]: l1 });
    const loose = await w.blob(ctx, 'loose');
    await w.image(ctx, 'img', manifest);

    const stats = await w.gc.collect();
    expect(stats.removed).toEqual({ leases: 0, blobs: 1, ingests: 0, snapshots: 0 });
    expect(stats.backendRemoved.content).toBe(1);
    for (const d of [manifest, cfg, l0, l1]) expect([w.has(ns, d), w.file(d)]).toEqual([true, true]);
    expect([w.has(ns, loose), w.file(loose)]).toEqual([false, false]);

    await w.images.delete(ctx, 'img');
    const after = await w.gc.collect();
    expect(after.removed.blobs).toBe(4);
    for (const d of [manifest, cfg, l0, l1]) expect([w.has(ns, d), w.file(d)]).toEqual([false, false]);
  });

  it('tells sweep listeners what was swept after the records went and before any file goes', async () => {
    const loose = await w.blob(ctx, 'loose for a listener');
    const heard: Array<[unknown, boolean, boolean]> = [];
    const off = w.hooks.onSwept((removed) => void heard.push([removed, w.has(ns, loose), w.file(loose)]));
    await w.gc.collect();
    off();
    await w.gc.collect();
    expect(heard).toEqual([[{ leases: 0, blobs: 1, ingests: 0, snapshots: 0 }, false, true]]);
    expect(w.file(loose)).toBe(false);
  });

  it.each([
    [`${REF}`, true],
    [`${REF}.anything`, true],
    [`${REF}/anything`, true],
    [`${REF}x`, false],
    ['containerd.io/gc.ref.contents', false],
    ['example.com/gc.ref.content', false],
  ])('follows the content label %s: %s', async (key, followed) => {
    const child = await w.blob(ctx, `child of ${key}`);
    const parent = await w.blob(ctx, `parent ${key}`, { [key]: child, 'containerd.io/gc.root': 'x' });
    await w.gc.collect();
    expect(w.has(ns, parent)).toBe(true);
    expect(w.has(ns, child)).toBe(followed);
    expect(w.file(child)).toBe(followed);
  });

  it('keeps blobs and snapshots labelled gc.root, and snapshot parents', async () => {
    const root = await w.blob(ctx, 'root', { 'containerd.io/gc.root': '2024-01-01T00:00:00Z' });
    await w.layer(ctx, 'base');
    await w.layer(ctx, 'top', 'base', { 'containerd.io/gc.root': 'yes' });
    await w.layer(ctx, 'other');
    await w.snapshots.prepare(ctx, 'loose-active', 'other');
    const backendBefore = w.native.keys().length;
    const stats = await w.gc.collect();
    expect(w.has(ns, root)).toBe(true);
    expect(await w.snapshotNames(ns)).toEqual(['base', 'top']);
    expect(stats.removed.snapshots).toBe(2);
    expect(w.native.keys()).toHaveLength(backendBefore - 2);
  });

  it('follows gc.ref.snapshot labels (with and without a suffix) from images, blobs and containers', async () => {
    await w.layer(ctx, 'a1');
    await w.layer(ctx, 'a2', 'a1');
    await w.layer(ctx, 'b1');
    await w.layer(ctx, 'c1');
    await w.layer(ctx, 'd1');
    await w.layer(ctx, 'x1', '', {});
    const cfg = await w.blob(ctx, 'config', { 'containerd.io/gc.ref.snapshot.native': 'a2' });
    const manifest = await w.blob(ctx, 'manifest', { [`${REF}.config`]: cfg });
    await w.image(ctx, 'img', manifest, { 'containerd.io/gc.ref.snapshot.native/extra': 'b1' });
    await w.snapshots.prepare(ctx, 'ctr-rootfs', 'c1');
    await w.containers.create(ctx, {
      id: 'ctr',
      labels: { 'containerd.io/gc.ref.snapshot.native': 'd1', 'containerd.io/gc.ref.snapshot.other': 'x1' },
      image: 'img',
      runtime: { name: 'io.containerd.runc.v2' },
      spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{}') },
      snapshotter: 'native',
      snapshotKey: 'ctr-rootfs',
      extensions: {},
    });
    await w.gc.collect();
    expect(await w.snapshotNames(ns)).toEqual(['a1', 'a2', 'b1', 'c1', 'ctr-rootfs', 'd1']);

    await w.containers.delete(ctx, 'ctr');
    await w.images.delete(ctx, 'img');
    await w.gc.collect();
    expect(await w.snapshotNames(ns)).toEqual([]);
    expect(w.native.keys()).toEqual([]);
    expect(w.has(ns, cfg)).toBe(false);
  });

  it('updates a kept parent when its children are collected', async () => {
    await w.layer(ctx, 'p', '', { 'containerd.io/gc.root': 'x' });
    await w.layer(ctx, 'c', 'p');
    await w.gc.collect();
    expect(await w.snapshotNames(ns)).toEqual(['p']);
    await w.snapshots.update(ctx, { name: 'p', labels: {} }, ['labels']);
    await w.snapshots.remove(ctx, 'p'); // would fail "cannot remove snapshot with child" if c were still listed
    expect(await w.snapshotNames(ns)).toEqual([]);
  });

  it('keeps what a lease holds until the lease is deleted', async () => {
    await w.leases.create(ctx, 'l1');
    const leased = context({ namespace: ns, lease: 'l1' });
    const d = await w.blob(leased, 'leased blob');
    await w.layer(leased, 's1');
    for (let i = 0; i < 2; i++) await w.gc.collect();
    expect(w.has(ns, d) && w.file(d)).toBe(true);
    expect(await w.snapshotNames(ns)).toEqual(['s1']);
    await w.leases.delete(ctx, 'l1');
    await w.gc.collect();
    expect([w.has(ns, d), w.file(d)]).toEqual([false, false]);
    expect(await w.snapshotNames(ns)).toEqual([]);
  });

  it.each([
    ['in the past', '2001-01-01T00:00:00Z', false],
    ['in the future', '2999-01-01T00:00:00.123456789+02:00', true],
    ['invalid (no expiry)', 'tomorrow', true],
  ])('with gc.expire %s the lease keeps its blob: %s', async (_what, expire, kept) => {
    await w.leases.create(ctx, 'l', { 'containerd.io/gc.expire': expire });
    const d = await w.blob(context({ namespace: ns, lease: 'l' }), 'expiring');
    const stats = await w.gc.collect();
    expect(w.has(ns, d)).toBe(kept);
    expect(w.file(d)).toBe(kept);
    expect((await w.leases.list(ctx)).map((l) => l.id)).toEqual(kept ? ['l'] : []);
    expect(stats.removed.leases).toBe(kept ? 0 : 1);
  });

  it('with gc.flat a lease keeps only its resources and snapshot parents, not their label references', async () => {
    await w.leases.create(ctx, 'flat', { 'containerd.io/gc.flat': 'true' });
    const leased = context({ namespace: ns, lease: 'flat' });
    const child = await w.blob(ctx, 'child');
    const parent = await w.blob(leased, 'parent', { [`${REF}.x`]: child });
    await w.layer(ctx, 'base');
    await w.layer(ctx, 'labelled');
    await w.layer(leased, 'top', 'base', { 'containerd.io/gc.ref.snapshot.native': 'labelled' });
    await w.gc.collect();
    expect([w.has(ns, parent), w.has(ns, child)]).toEqual([true, false]);
    expect(await w.snapshotNames(ns)).toEqual(['base', 'top']);
  });

  it('keeps a flat-leased blob full when an image also reaches it', async () => {
    await w.leases.create(ctx, 'flat', { 'containerd.io/gc.flat': 'true' });
    const child = await w.blob(ctx, 'child');
    const parent = await w.blob(context({ namespace: ns, lease: 'flat' }), 'parent', { [`${REF}.x`]: child });
    await w.image(ctx, 'img', parent);
    await w.gc.collect();
    expect([w.has(ns, parent), w.has(ns, child)]).toEqual([true, true]);
  });

  it('collects ingests once expired (24 h without a lease), with their data', async () => {
    const open = await w.content.writer(ctx, { ref: 'open-ingest', total: 10 });
    await open.write(Buffer.from('12345'));
    await open.close();
    await w.leases.create(ctx, 'l');
    const leasedW = await w.content.writer(context({ namespace: ns, lease: 'l' }), { ref: 'leased-ingest', total: 10 });
    await leasedW.write(Buffer.from('abc'));
    await leasedW.close();
    await w.gc.collect();
    expect((await w.content.listStatuses(ctx)).map((s) => s.ref).sort()).toEqual(['leased-ingest', 'open-ingest']);
    expect(await w.backend.listStatuses()).toHaveLength(2);

    // The same database seen by a collector whose clock is 24 h ahead.
    const later = new MetadataCollector(w.db, w.hooks, { now: () => Date.now() + INGEST_EXPIRY_MS + 60_000 });
    expect((await later.collect()).removed.ingests).toBe(1);
    expect((await w.content.listStatuses(ctx)).map((s) => s.ref)).toEqual(['leased-ingest']);
    expect(await w.backend.listStatuses()).toHaveLength(1);
    await w.leases.delete(ctx, 'l');
    await w.gc.collect();
    expect(await w.backend.listStatuses()).toHaveLength(0);
  });

  it('keeps a blob shared by two namespaces until neither references it', async () => {
    const a = context({ namespace: 'a' });
    const b = context({ namespace: 'b' });
    const d = await w.blob(a, 'shared');
    expect(await w.blob(b, 'shared')).toBe(d);
    await w.image(a, 'img', d);
    await w.image(b, 'img', d);
    await w.images.delete(a, 'img');
    await w.gc.collect();
    expect([w.has('a', d), w.has('b', d), w.file(d)]).toEqual([false, true, true]);
    await w.images.delete(b, 'img');
    await w.gc.collect();
    expect([w.has('b', d), w.file(d)]).toEqual([false, false]);
  });

  describe('an object a leased call finds already present joins the lease', () => {
    /** A blob (or snapshot) that nothing but a finished lease held: the next collection takes it. */
    const orphanBlob = async (data: string) => {
      await w.leases.create(ctx, 'old');
      const d = await w.blob(context({ namespace: ns, lease: 'old' }), data);
      await w.leases.delete(ctx, 'old');
      return d;
    };
    const orphanSnapshot = async (name: string) => {
      await w.leases.create(ctx, 'old');
      await w.layer(context({ namespace: ns, lease: 'old' }), name);
      await w.leases.delete(ctx, 'old');
    };
    const leased = context({ namespace: ns, lease: 'new' });
    const resources = async () => (await w.leases.listResources(ctx, 'new')).map((r) => `${r.type} ${r.id}`);

    beforeEach(async () => {
      await w.leases.create(ctx, 'new');
    });

    it('content: a writer opened with an expected digest present answers AlreadyExists and holds it', async () => {
      const d = await orphanBlob('present');
      await expect(w.content.writer(leased, { ref: 'again', expected: d })).rejects.toThrow(`content ${d}: already exists`);
      expect(await resources()).toEqual([`content ${d}`]);
      await w.gc.collect();
      expect([w.has(ns, d), w.file(d)]).toEqual([true, true]);
      await w.leases.delete(ctx, 'new');
      await w.gc.collect();
      expect([w.has(ns, d), w.file(d)]).toEqual([false, false]);
    });

    it('content: a commit that finds its digest present answers AlreadyExists and holds it', async () => {
      const d = await orphanBlob('committed twice');
      // Written without an expected digest (as ctr images import writes archive members).
      const wr = await w.content.writer(leased, { ref: 'tar-index.json' });
      await wr.write(Buffer.from('committed twice'));
      await expect(wr.commit(15)).rejects.toThrow(`content ${d}: already exists`);
      expect(await resources()).toEqual([`content ${d}`]);
      await w.gc.collect();
      expect([w.has(ns, d), w.file(d)]).toEqual([true, true]);
    });

    it('content: a hold under a lease that does not exist is NotFound', async () => {
      const d = await orphanBlob('no lease');
      await expect(w.content.writer(context({ namespace: ns, lease: 'nope' }), { ref: 'x', expected: d })).rejects.toThrow('lease does not exist');
    });

    it("content: a blob linked from another namespace's file stays while an ingest expects it", async () => {
      const other = context({ namespace: 'other' });
      await w.leases.create(other, 'old');
      const d = await w.blob(context({ namespace: 'other', lease: 'old' }), 'shared bytes');
      await w.leases.delete(other, 'old');
      const wr = await w.content.writer(leased, { ref: 'link', expected: d, total: 12 });
      expect((await wr.status()).offset).toBe(12); // no data needed: the file is shared
      await w.gc.collect(); // removes other's record; the file stays for the open ingest
      expect([w.has('other', d), w.file(d)]).toEqual([false, true]);
      await wr.commit(12, d);
      expect([w.has(ns, d), w.file(d)]).toEqual([true, true]);
      await w.gc.collect();
      expect(w.file(d)).toBe(true);
    });

    it('content: a writer that waited for a ref gets an ingest of its own once the holder commits', async () => {
      // Two imports in one namespace write the same archive member ref (ctr's `tar-index.json`).
      await w.leases.create(ctx, 'first');
      const first = await w.content.writer(context({ namespace: ns, lease: 'first' }), { ref: 'tar-index.json' });
      const waiting = w.content.writer(leased, { ref: 'tar-index.json' });
      await first.write(Buffer.from('first index'));
      await first.commit(11);
      const second = await waiting;
      await second.write(Buffer.from('second index'));
      await w.gc.collect(); // the second writer's ingest is its lease's, not an orphan
      await second.commit(12);
      expect(await resources()).toHaveLength(1);
      expect((await resources())[0]).toMatch(/^content sha256:/);
    });

    it('snapshots: Stat under a lease holds the snapshot it finds (once), without a lease it only reads', async () => {
      await orphanSnapshot('found');
      expect((await w.snapshots.stat(ctx, 'found')).name).toBe('found');
      expect(await resources()).toEqual([]);
      await w.snapshots.stat(leased, 'found');
      await w.snapshots.stat(leased, 'found');
      expect(await resources()).toEqual(['snapshots/native found']);
      await w.gc.collect();
      expect(await w.snapshotNames(ns)).toEqual(['found']);
      // containerd's Stat ignores the lease header; so does Berth's when the lease is unknown.
      expect((await w.snapshots.stat(context({ namespace: ns, lease: 'nope' }), 'found')).name).toBe('found');
    });

    it.each([
      ['Prepare', (key: string) => w.snapshots.prepare(leased, key, '')],
      ['View', (key: string) => w.snapshots.view(leased, key, '')],
      ['Commit', async (key: string) => {
        await w.snapshots.prepare(leased, 'extract-again', '');
        await w.snapshots.commit(leased, key, 'extract-again');
      }],
    ])('snapshots: %s onto an existing key answers AlreadyExists and holds it', async (_op, op) => {
      await orphanSnapshot('taken');
      await expect(op('taken')).rejects.toThrow('snapshot "taken": already exists');
      expect(await resources()).toContain('snapshots/native taken');
      await w.gc.collect();
      expect(await w.snapshotNames(ns)).toContain('taken');
    });
  });

  it('runs mark and sweep synchronously: nothing can be written between them', () => {
    expect(w.gc.markAndSweep()).toEqual({ leases: 0, blobs: 0, ingests: 0, snapshots: 0 });
  });

  it('never removes the file of a blob committed while the backend phase runs', async () => {
    // Widen the window between the backend commit and the blob record: the file phase starts
    // right after the bytes are committed and gets 50 ms before the record is written. A record
    // must never point at a missing file.
    const open = w.content.openBackend.bind(w.content);
    let cleaning: Promise<number> | undefined;
    w.content.openBackend = async (...args) => {
      const bw = await open(...args);
      const commit = bw.commit.bind(bw);
      bw.commit = async (...c) => {
        await commit(...c);
        cleaning = w.content.collectBackend();
        await new Promise((r) => setTimeout(r, 50));
      };
      return bw;
    };
    const d = await w.blob(ctx, 'committed during the file phase');
    expect(await cleaning).toBe(0);
    expect([w.has(ns, d), w.file(d)]).toEqual([true, true]);
  });

  it('never loses a fresh object to a concurrent collection (create loop under leases)', async () => {
    let stop = false;
    const collections = (async () => {
      let n = 0;
      while (!stop) {
        await w.gc.collect();
        n++;
        await new Promise((r) => setImmediate(r));
      }
      return n;
    })();
    for (let i = 0; i < 30; i++) {
      const lease = `create-${i}`;
      await w.leases.create(ctx, lease, { 'containerd.io/gc.expire': new Date(Date.now() + 3_600_000).toISOString() });
      const leased = context({ namespace: ns, lease });
      const layer = await w.blob(leased, `fresh layer ${i}`);
      const manifest = await w.blob(leased, `fresh manifest ${i}`, { [`${REF}.l.0`]: layer });
      await w.layer(leased, `snap-${i}`);
      const cfg = await w.blob(leased, `cfg ${i}`, { 'containerd.io/gc.ref.snapshot.native': `snap-${i}` });
      await w.content.update(ctx, { digest: manifest, labels: { [`${REF}.l.0`]: layer, [`${REF}.config`]: cfg } });
      await w.image(ctx, `img-${i}`, manifest);
      await w.leases.delete(ctx, lease);
      if (i % 3 === 0 && i > 0) await w.images.delete(ctx, `img-${i - 1}`);
    }
    stop = true;
    expect(await collections).toBeGreaterThan(5);
    await w.gc.collect();
    for (const img of await w.images.list(ctx)) {
      const manifest = img.target.digest;
      expect([w.has(ns, manifest), w.file(manifest)]).toEqual([true, true]);
      const info = await w.content.info(ctx, manifest);
      for (const d of [info.labels[`${REF}.l.0`], info.labels[`${REF}.config`]]) expect([w.has(ns, d), w.file(d)]).toEqual([true, true]);
      const i = img.name.slice(4);
      expect(await w.snapshotNames(ns)).toContain(`snap-${i}`);
    }
    expect((await w.images.list(ctx)).length).toBe(21);
  });
});
