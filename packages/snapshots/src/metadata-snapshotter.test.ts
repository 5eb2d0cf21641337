import { join } from 'node:path';
import { Envelope, unpackAny } from '@berth/api/events';
import { context } from '@berth/context';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { Exchange } from '@berth/events';
import { LmdbNamespaceStore, MetadataDb, objectKey, objectsPrefix } from '@berth/metadata';
import { unmountAll } from '@berth/mount';
import { rejectionOf, tempDir } from '@berth/testing';
import { LocalSnapshotter } from './local';
import { MetadataSnapshotter, SnapshotMetaRecord } from './metadata-snapshotter';
import { NativeSnapshotter } from './native';
import { OverlaySnapshotter } from './overlay';
import { SnapshotsService } from './service';
import { runSnapshotterSuite, SnapshotterFixture } from './testsuite';

function layeredFixture(open: (root: string) => LocalSnapshotter, name: string): () => Promise<SnapshotterFixture> {
  return async () => {
    const dir = tempDir('berth-snapmeta-');
    const db = MetadataDb.open(join(dir.path, 'meta'));
    let backend = open(join(dir.path, 'backend'));
    let layer = new MetadataSnapshotter(db, name, backend);
    return {
      get snapshotter() {
        return layer;
      },
      ctx: context({ namespace: 'suite' }),
      reopen: async () => {
        await backend.close();
        backend = open(join(dir.path, 'backend'));
        layer = new MetadataSnapshotter(db, name, backend);
        await layer.recover(context());
        return layer;
      },
      cleanup: async () => {
        await unmountAll(dir.path, { lazyFallback: true });
        await backend.close();
        await db.close();
        dir.remove();
      },
    };
  };
}

runSnapshotterSuite('metadata over overlayfs', layeredFixture((r) => OverlaySnapshotter.open(r), 'overlayfs'), { chainDepth: 120 });
runSnapshotterSuite('metadata over native', layeredFixture((r) => NativeSnapshotter.open(r), 'native'), { chainDepth: 40 });

describe('namespaced snapshot metadata', () => {
  const dir = tempDir('berth-snapns-');
  let db: MetadataDb;
  let backend: OverlaySnapshotter;
  let layer: MetadataSnapshotter;
  const ns1 = context({ namespace: 'ns1' });
  const ns2 = context({ namespace: 'ns2' });

  beforeAll(() => {
    db = MetadataDb.open(join(dir.path, 'meta'));
    backend = OverlaySnapshotter.open(join(dir.path, 'overlayfs'));
    layer = new MetadataSnapshotter(db, 'overlayfs', backend);
  });
  afterAll(async () => {
    await backend.close();
    await db.close();
    dir.remove();
  });

  it('keeps keys per namespace, with distinct backend keys, stored at objectKey(ns, snapshots, snapshotter, key)', async () => {
    await layer.prepare(ns1, 'same', '', { labels: { 'containerd.io/gc.root': 't', 'containerd.io/snapshot/x': 'inherited' } });
    await layer.prepare(ns2, 'same', '');
    await layer.commit(ns1, 'c', 'same');
    expect((await layer.stat(ns2, 'same')).kind).toBe('active');
    expect((await rejectionOf(layer.stat(ns1, 'same'))).message).toBe('snapshot same does not exist: not found');
    const recs = db.view((tx) => ({
      a: tx.get<SnapshotMetaRecord>(objectKey('ns1', 'snapshots', 'overlayfs', 'c')),
      b: tx.get<SnapshotMetaRecord>(objectKey('ns2', 'snapshots', 'overlayfs', 'same')),
    }));
    expect(recs.a?.backendKey).toBe('ns1/2/c');
    expect(recs.b?.backendKey).toBe('ns2/1/same');
    expect(recs.a?.labels).toEqual({});
    expect(backend.keys().sort()).toEqual(['ns1/2/c', 'ns2/1/same']);
    // The backend keeps only the inherited labels.
    await layer.prepare(ns1, 'lab', '', { labels: { 'containerd.io/gc.root': 't', 'containerd.io/snapshot/x': 'y' } });
    expect((await backend.stat(context(), 'ns1/3/lab')).labels).toEqual({ 'containerd.io/snapshot/x': 'y' });
    expect((await layer.stat(ns1, 'lab')).labels).toEqual({ 'containerd.io/gc.root': 't', 'containerd.io/snapshot/x': 'y' });
    await layer.update(ns1, { name: 'lab', labels: {} }, ['labels.containerd.io/snapshot/x']);
    expect((await backend.stat(context(), 'ns1/3/lab')).labels).toEqual({});
    await layer.remove(ns1, 'lab');
    expect((await rejectionOf(layer.prepare(ns1, 'x', 'c', { labels: { k: 'v'.repeat(5000) } }))).message).toMatch(/^info\.Labels: label key and value greater than maximum size \(4096 bytes\), key: k: invalid argument$/);
    expect(toGrpcStatus(await rejectionOf(layer.stat(context(), 'x'))).code).toBe(GrpcCode.FAILED_PRECONDITION);
  });

  it('blocks namespace deletion while snapshots remain, naming the snapshotter', async () => {
    const store = new LmdbNamespaceStore(db);
    expect((await rejectionOf(store.delete('ns2'))).message).toBe('namespace "ns2" must be empty, but it still has snapshots on "overlayfs" snapshotter: failed precondition');
  });

  it('attaches created and committed snapshots to the lease, and detaches removed ones', async () => {
    db.update((tx) => tx.put(objectKey('ns1', 'leases', 'l1'), { createdAt: Date.now(), labels: {} }));
    const leased = () => db.view((tx) => [...tx.range(objectsPrefix('ns1', 'leased', 'l1'))].map((e) => e.key.slice(5).join(' ')));
    const ctx = context({ namespace: 'ns1', lease: 'l1' });
    await layer.prepare(ctx, 'la', 'c');
    expect(leased()).toEqual(['snapshots/overlayfs la']);
    await layer.commit(ctx, 'lc', 'la');
    expect(leased()).toEqual(['snapshots/overlayfs lc']);
    await layer.remove(ns1, 'lc');
    expect(leased()).toEqual([]);
    const err = await rejectionOf(layer.prepare(context({ namespace: 'ns1', lease: 'nope' }), 'lz', ''));
    expect(err.message).toBe('lease does not exist: not found');
    expect(backend.keys().some((k) => k.endsWith('/lz'))).toBe(false);
  });

  it('removes backend snapshots after the answer, a child before its parent, and close waits for them', async () => {
    await layer.prepare(ns1, 'rp-a', '');
    await layer.commit(ns1, 'rp', 'rp-a');
    await layer.prepare(ns1, 'rc', 'rp');
    const backendOf = (k: string) => backend.keys().filter((b) => b.endsWith(`/${k}`));
    expect(backendOf('rp')).toHaveLength(1);
    expect(backendOf('rc')).toHaveLength(1);
    // The parent's record goes right after the child's; the backend's removals follow in that
    // order (the other order would be refused: the backend parent still has a child).
    await layer.remove(ns1, 'rc');
    await layer.remove(ns1, 'rp');
    await expect(layer.stat(ns1, 'rp')).rejects.toThrow(/not found/);
    await layer.close();
    expect([...backendOf('rp'), ...backendOf('rc')]).toEqual([]);
  });

  it('cleanup removes backend snapshots and directories no namespace references', async () => {
    await backend.prepare(context(), 'orphan-parent', '');
    await backend.commit(context(), 'orphan-c', 'orphan-parent');
    await backend.prepare(context(), 'orphan-child', 'orphan-c');
    const res = await layer.cleanup(ns1);
    expect(res.snapshots.sort()).toEqual(['orphan-c', 'orphan-child']);
    expect(backend.keys().sort()).toEqual(['ns1/2/c', 'ns2/1/same']);
  });

  it('finishes or forgets a commit interrupted by a crash', async () => {
    // The backend committed, the metadata did not: the restart finishes the commit.
    await layer.prepare(ns1, 'i1', 'c');
    const rec = db.view((tx) => tx.get<SnapshotMetaRecord>(objectKey('ns1', 'snapshots', 'overlayfs', 'i1')))!;
    db.update((tx) => tx.put(objectKey('ns1', 'snapshots', 'overlayfs', 'i1'), { ...rec, committing: { name: 'i1c', backendKey: 'ns1/99/i1c', labels: { a: 'b' } } }));
    await backend.commit(context(), 'ns1/99/i1c', rec.backendKey);
    // The backend did not commit: the restart forgets the intent.
    await layer.prepare(ns1, 'i2', 'c');
    const rec2 = db.view((tx) => tx.get<SnapshotMetaRecord>(objectKey('ns1', 'snapshots', 'overlayfs', 'i2')))!;
    db.update((tx) => tx.put(objectKey('ns1', 'snapshots', 'overlayfs', 'i2'), { ...rec2, committing: { name: 'i2c', backendKey: 'ns1/98/i2c', labels: {} } }));

    await new MetadataSnapshotter(db, 'overlayfs', backend).recover(context());
    expect(await layer.stat(ns1, 'i1c')).toMatchObject({ kind: 'committed', parent: 'c', labels: { a: 'b' } });
    await rejectionOf(layer.stat(ns1, 'i1'));
    expect((await layer.stat(ns1, 'i2')).kind).toBe('active');
    expect(db.view((tx) => tx.get<SnapshotMetaRecord>(objectKey('ns1', 'snapshots', 'overlayfs', 'i2')))?.committing).toBeUndefined();
    const children = db.view((tx) => tx.get<SnapshotMetaRecord>(objectKey('ns1', 'snapshots', 'overlayfs', 'c')))!.children;
    expect(children.sort()).toEqual(['i1c', 'i2']);
  });

  it('the service picks snapshotters, resolves the default, and publishes events after changes', async () => {
    const exchange = new Exchange();
    const namespaces = new LmdbNamespaceStore(db);
    const svc = new SnapshotsService(new Map([['overlayfs', layer]]), exchange, namespaces);
    expect((await rejectionOf(svc.stat(ns1, '', 'c'))).message).toBe('snapshotter argument missing: invalid argument');
    expect((await rejectionOf(svc.stat(ns1, 'nosuch', 'c'))).message).toBe('snapshotter not loaded: nosuch: invalid argument');
    expect(await svc.resolve(ns1)).toBe('overlayfs');
    await namespaces.setLabel('ns1', 'containerd.io/defaults/snapshotter', 'native');
    expect(await svc.resolve(ns1)).toBe('native');
    expect(await svc.resolve(ns1, 'overlayfs')).toBe('overlayfs');

    const sub = exchange.subscribe(context(), []);
    await svc.prepare(ns1, 'overlayfs', 'e1', 'c');
    await svc.view(ns1, 'overlayfs', 'ev', 'c');
    await rejectionOf(svc.prepare(ns1, 'overlayfs', 'e1', 'c'));
    await svc.commit(ns1, 'overlayfs', 'e1c', 'e1');
    await svc.remove(ns1, 'overlayfs', 'e1c');
    sub.close();
    const events: unknown[] = [];
    for await (const e of sub as AsyncIterable<Envelope>) events.push([e.namespace, e.topic, unpackAny(e.event!)]);
    expect(events).toEqual([
      ['ns1', '/snapshot/prepare', { key: 'e1', parent: 'c' }],
      ['ns1', '/snapshot/commit', { key: 'e1', name: 'e1c' }],
      ['ns1', '/snapshot/remove', { key: 'e1c' }],
    ]);
  });
});
