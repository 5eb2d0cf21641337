import { context } from '@berth/context';
import { type GcKind, addLeaseResource, objectKey } from '@berth/metadata';
import { GcWorld } from './test-helpers';

const ns = 'default';
const ctx = context({ namespace: ns });
const WIDGETS = 'io.acme.widgets';
const WIDGET_REF = 'acme.example/gc.ref.widget';

/** A third party's record, kept in the metadata database beside Berth's. */
interface Widget {
  labels: Record<string, string>;
  /** A blob the widget always needs, even when kept flat. */
  blob?: string;
}

/** What a third-party plugin registers for its kind: the collector knows nothing else of it. */
const widgets: GcKind<Widget> = {
  kind: WIDGETS,
  root: (w) => 'acme.example/pinned' in w.labels,
  labels: (w) => w.labels,
  references: (w) => (w.blob ? [{ kind: 'blobs', id: [w.blob] }] : []),
  label: (key, value) => (key === WIDGET_REF ? [value] : undefined),
  leased: (type, id) => (type === WIDGETS ? [id] : undefined),
};

describe('the collector learns kinds through GcHooks', () => {
  let w: GcWorld;
  const putWidget = (name: string, widget: Widget, namespace = ns) =>
    w.db.update((tx) => {
      tx.ensureNamespace(namespace);
      tx.put(objectKey(namespace, WIDGETS, name), widget);
    });
  const widgetNames = (namespace = ns) => w.db.view((tx) => [...tx.range(objectKey(namespace, WIDGETS))].map(({ key }) => String(key.at(-1))).sort());

  beforeEach(async () => {
    w = await GcWorld.open();
  });
  afterEach(async () => {
    await w.close();
  });

  it('marks a third-party kind from an image label, follows its references and labels, and sweeps the rest', async () => {
    w.hooks.registerKind(widgets);
    const needed = await w.blob(ctx, 'needed by w1');
    const labelled = await w.blob(ctx, 'named by a label of w1');
    const orphan = await w.blob(ctx, 'needed by w2 only');
    putWidget('w1', { labels: { 'containerd.io/gc.ref.content.x': labelled }, blob: needed });
    putWidget('w2', { labels: {}, blob: orphan });
    putWidget('pinned', { labels: { 'acme.example/pinned': '' } });
    const manifest = await w.blob(ctx, 'manifest');
    await w.image(ctx, 'img', manifest, { [WIDGET_REF]: 'w1' });

    const stats = await w.gc.collect();
    expect(stats.removed).toEqual({ leases: 0, blobs: 1, ingests: 0, snapshots: 0, [WIDGETS]: 1 });
    expect(stats.skipped).toEqual([]);
    expect(widgetNames()).toEqual(['pinned', 'w1']);
    expect([needed, labelled, orphan].map((d) => w.has(ns, d))).toEqual([true, true, false]);
    expect(w.file(orphan)).toBe(false);

    await w.images.delete(ctx, 'img');
    expect((await w.gc.collect()).removed[WIDGETS]).toBe(1);
    expect(widgetNames()).toEqual(['pinned']);
  });

  it('keeps what a lease holds of the kind; a flat lease keeps its references but not its labels', async () => {
    w.hooks.registerKind(widgets);
    const needed = await w.blob(ctx, 'always needed');
    const labelled = await w.blob(ctx, 'labelled only');
    putWidget('held', { labels: { 'containerd.io/gc.ref.content': labelled }, blob: needed });
    await w.leases.create(ctx, 'flat', { 'containerd.io/gc.flat': 'true' });
    w.db.update((tx) => addLeaseResource(tx, ns, 'flat', { type: WIDGETS, id: 'held' }));

    await w.gc.collect();
    expect(widgetNames()).toEqual(['held']);
    expect([w.has(ns, needed), w.has(ns, labelled)]).toEqual([true, false]);

    await w.leases.delete(ctx, 'flat');
    await w.gc.collect();
    expect([widgetNames(), w.has(ns, needed)]).toEqual([[], false]);
  });

  it("sweeps through the kind's own sweep hook when it has one", async () => {
    const swept: string[][] = [];
    w.hooks.registerKind<Widget>({
      ...widgets,
      sweep: (tx, unreached, all) => {
        swept.push(unreached.map((r) => r.id.join('/')), all.map((r) => r.id.join('/')));
        for (const r of unreached) tx.put(r.key, { ...r.value, labels: { 'acme.example/pinned': 'tombstone' } });
      },
    });
    putWidget('a', { labels: {} });
    putWidget('b', { labels: { 'acme.example/pinned': '' } });
    expect(w.gc.markAndSweep()).toEqual({ leases: 0, blobs: 0, ingests: 0, snapshots: 0, [WIDGETS]: 1 });
    expect(swept).toEqual([['a'], ['a', 'b']]);
    expect(w.gc.markAndSweep()[WIDGETS]).toBe(0);
  });

  it('leaves a namespace alone while it holds records of a kind no hooks describe, and collects the others', async () => {
    putWidget('w', { labels: {}, blob: await w.blob(ctx, 'kept by an unknown kind') });
    const loose = await w.blob(context({ namespace: 'other' }), 'loose elsewhere');

    const stats = await w.gc.collect();
    expect(stats.skipped).toEqual([ns]);
    expect(stats.removed.blobs).toBe(1);
    expect([w.has('other', loose), widgetNames()]).toEqual([false, ['w']]);
    expect(await w.content.list(ctx)).toHaveLength(1);

    const off = w.hooks.registerKind(widgets);
    const after = await w.gc.collect();
    expect([after.skipped, after.removed[WIDGETS], after.removed.blobs]).toEqual([[], 1, 1]);
    off();
    putWidget('again', { labels: {} });
    expect((await w.gc.collect()).skipped).toEqual([ns]);
  });

  it('refuses a second registration of a kind until the first is removed', () => {
    const off = w.hooks.registerKind(widgets);
    expect(() => w.hooks.registerKind(widgets)).toThrow(`gc hooks for kind "${WIDGETS}": already exists`);
    off();
    expect(() => w.hooks.registerKind(widgets)()).not.toThrow();
    expect([...w.hooks.kinds().keys()]).toEqual(['images', 'containers', 'blobs', 'ingests', 'snapshots']);
  });
});
