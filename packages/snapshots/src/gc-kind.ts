import { GC_ROOT, type GcKind, type GcRecord, type WriteTx } from '@berth/metadata';
import type { SnapshotMetaRecord } from './metadata-snapshotter';

const GC_REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot.';
const SNAPSHOTS_LEASE = 'snapshots/';

/**
 * Snapshots, for the garbage collector, named `[snapshotter, key]`: a root when labelled
 * `containerd.io/gc.root` or while a commit is in flight (containerd's commit runs under the
 * database lock, so its collector never sees one); named by the label
 * `containerd.io/gc.ref.snapshot.<snapshotter>[/<anything>]` and by the lease resource
 * `snapshots/<snapshotter>`; keeping its parent at its own level and what its gc.ref labels
 * name. Sweeping one also takes it out of its kept parent's children.
 */
export const snapshotsGcKind: GcKind<SnapshotMetaRecord> = {
  kind: 'snapshots',
  parts: 2,
  // The key part may be shortened (storedKey); references name the full key.
  id: ([snapshotter], snapshot) => [snapshotter, snapshot.key],
  root: (snapshot) => GC_ROOT in snapshot.labels || !!snapshot.committing,
  labels: (snapshot) => snapshot.labels,
  references: (snapshot, [snapshotter]) => (snapshot.parent !== '' ? [{ kind: 'snapshots', id: [snapshotter, snapshot.parent], edge: 'parent' }] : []),
  label: (key, value) => {
    if (!key.startsWith(GC_REF_SNAPSHOT)) return undefined;
    const rest = key.slice(GC_REF_SNAPSHOT.length);
    const slash = rest.indexOf('/');
    const snapshotter = slash < 0 ? rest : rest.slice(0, slash);
    return snapshotter === '' ? undefined : [snapshotter, value];
  },
  leased: (type, key) => (type.startsWith(SNAPSHOTS_LEASE) ? [type.slice(SNAPSHOTS_LEASE.length), key] : undefined),
  sweep: sweepSnapshots,
};

function sweepSnapshots(tx: WriteTx, unreached: readonly GcRecord<SnapshotMetaRecord>[], all: readonly GcRecord<SnapshotMetaRecord>[]): void {
  const name = (snapshotter: string, key: string) => `${snapshotter}\u0000${key}`;
  const byName = new Map(all.map((r) => [name(r.id[0], r.value.key), r]));
  const gone = new Set(unreached.map((r) => name(r.id[0], r.value.key)));
  for (const r of unreached) tx.remove(r.key);
  // A kept parent forgets its removed children (a kept snapshot's parent is always kept).
  const parents = new Set<string>();
  for (const r of unreached) {
    const parent = name(r.id[0], r.value.parent);
    if (r.value.parent !== '' && !gone.has(parent)) parents.add(parent);
  }
  for (const p of parents) {
    const entry = byName.get(p);
    if (!entry) continue;
    const snapshotter = entry.id[0];
    tx.put(entry.key, { ...entry.value, children: entry.value.children.filter((c) => !gone.has(name(snapshotter, c))) });
  }
}
