import { context } from '@berth/context';
import { objectKey } from '@berth/metadata';
import { GcWorld } from './test-helpers';

const ns = 'default';
const ctx = context({ namespace: ns });
const REF = 'containerd.io/gc.ref.content';

/**
 * MetadataCollector.explain: the collector's own marking, recording how each object was first
 * reached, over a real database, content store and snapshotter. Each answer is checked against
 * what the collection that follows does.
 */
describe('MetadataCollector.explain', () => {
  let w: GcWorld;
  beforeEach(async () => {
    w = await GcWorld.open();
  });
  afterEach(async () => {
    await w.close();
  });

  it('names the chain from an image through labels, and unreferenced for what the collection then removes', async () => {
    const layer = await w.blob(ctx, 'layer');
    const manifest = await w.blob(ctx, 'manifest', { [`${REF}.l.0`]: layer });
    const loose = await w.blob(ctx, 'loose');
    await w.image(ctx, 'img', manifest);
    await w.image(ctx, 'img-2', manifest);
    expect(w.gc.explain(ns, { kind: 'blobs', id: [layer] })).toEqual({
      referenced: true,
      skipped: false,
      keptBy: [
        { kind: 'images', id: ['img'] },
        { kind: 'images', id: ['img-2'] },
      ],
      // One of them, as the marking (depth first, the last root first) reached it.
      chain: [
        { kind: 'images', id: ['img-2'], via: 'root' },
        { kind: 'blobs', id: [manifest], via: 'target' },
        { kind: 'blobs', id: [layer], via: `label ${REF}.l.0` },
      ],
    });
    expect(w.gc.explain(ns, { kind: 'blobs', id: [loose] })).toEqual({ referenced: false, skipped: false, chain: [], keptBy: [] });
    await w.gc.collect();
    expect([w.has(ns, layer), w.has(ns, loose)]).toEqual([true, false]);
    expect(() => w.gc.explain(ns, { kind: 'blobs', id: [loose] })).toThrow(`blobs ${loose} in namespace "default": not found`);
  });

  it('follows a lease to its resources and a snapshot to its parents; an expired lease keeps nothing', async () => {
    await w.leases.create(ctx, 'build');
    const leased = context({ namespace: ns, lease: 'build' });
    await w.layer(leased, 'base');
    await w.layer(leased, 'top', 'base');
    expect(w.gc.explain(ns, { kind: 'snapshots', id: ['native', 'base'] }).chain).toEqual([
      { kind: 'leases', id: ['build'], via: 'root' },
      { kind: 'snapshots', id: ['native', 'base'], via: 'lease resource snapshots/native' },
    ]);
    await w.leases.create(ctx, 'old', { 'containerd.io/gc.expire': '2000-01-01T00:00:00Z' });
    const blob = await w.blob(context({ namespace: ns, lease: 'old' }), 'held by an expired lease');
    expect(w.gc.explain(ns, { kind: 'blobs', id: [blob] }).referenced).toBe(false);
    await w.gc.collect();
    expect(w.has(ns, blob)).toBe(false);

    await w.leases.delete(ctx, 'build');
    await w.snapshots.update(ctx, { name: 'top', labels: { 'containerd.io/gc.root': 'yes' } }, ['labels.containerd.io/gc.root']);
    const base = w.gc.explain(ns, { kind: 'snapshots', id: ['native', 'base'] });
    expect(base.chain).toEqual([
      { kind: 'snapshots', id: ['native', 'top'], via: 'root (label containerd.io/gc.root)' },
      { kind: 'snapshots', id: ['native', 'base'], via: 'parent' },
    ]);
    expect(base.keptBy).toEqual([{ kind: 'snapshots', id: ['native', 'top'] }]);
    await w.gc.collect();
    expect(await w.snapshotNames(ns)).toEqual(['base', 'top']);
  });

  it('says a namespace holding records of a kind nobody describes is skipped', async () => {
    const blob = await w.blob(ctx, 'in a namespace with unknown records');
    w.db.update((tx) => tx.put(objectKey(ns, 'io.acme.widgets', 'w1'), { any: 'thing' }));
    expect(w.gc.explain(ns, { kind: 'blobs', id: [blob] })).toEqual({ referenced: false, skipped: true, chain: [], keptBy: [] });
    expect((await w.gc.collect()).skipped).toEqual([ns]);
    expect(w.has(ns, blob)).toBe(true);
  });
});
