import { type Context, context } from '@berth/context';
import type { BlobRecord, IngestRecord } from '@berth/content';
import { type Logger, nullLogger } from '@berth/log';
import {
  type CollectionStats,
  type ContainerRecord,
  type GcHooks,
  type ImageRecord,
  type Key,
  type LeaseRecord,
  type MetadataDb,
  type NamespaceRecord,
  type ReadTx,
  type WriteTx,
  namespacesPrefix,
  objectsPrefix,
  parseNamespaceKey,
  parseObjectKey,
} from '@berth/metadata';
import type { SnapshotMetaRecord } from '@berth/snapshots';
import { GC_FLAT, GC_EXPIRE, GC_ROOT, type LabelRef, labelRefs, parseExpiry } from './labels';

/** How deep a node is marked: flat (the object and, for snapshots, its parents) or full (its label references too). */
const FLAT = 1;
const FULL = 2;
type Level = typeof FLAT | typeof FULL;

interface SnapshotEntry {
  lmdbKey: Key;
  rec: SnapshotMetaRecord;
}

/** One namespace's collectible objects, read inside the collection's transaction. */
interface NamespaceObjects {
  ns: string;
  leases: Map<string, LeaseRecord>;
  /** Lease id -> its resources' lmdb keys and what they name. */
  leased: Map<string, Array<{ lmdbKey: Key; type: string; id: string }>>;
  blobs: Map<string, BlobRecord>;
  ingests: Map<string, IngestRecord>;
  /** Snapshotter -> key -> record. */
  snapshots: Map<string, Map<string, SnapshotEntry>>;
}

/** What the mark phase found reachable in one namespace. */
class Marks {
  readonly blobs = new Map<string, Level>();
  readonly snapshots = new Map<string, Level>();
  readonly ingests = new Set<string>();
  private readonly queue: Array<{ ref: LabelRef; level: Level }> = [];

  constructor(private readonly objs: NamespaceObjects) {}

  blob(digest: string, level: Level): void {
    if ((this.blobs.get(digest) ?? 0) >= level) return;
    this.blobs.set(digest, level);
    this.queue.push({ ref: { kind: 'content', digest }, level });
  }

  snapshot(snapshotter: string, key: string, level: Level): void {
    const id = snapshotId(snapshotter, key);
    if ((this.snapshots.get(id) ?? 0) >= level) return;
    this.snapshots.set(id, level);
    this.queue.push({ ref: { kind: 'snapshot', snapshotter, key }, level });
  }

  ingest(ref: string): void {
    if (this.ingests.has(ref)) return;
    this.ingests.add(ref);
    // An ingest keeps the blob it is expected to become, if the namespace already has it.
    const expected = this.objs.ingests.get(ref)?.expected;
    if (expected) this.blob(expected, FULL);
  }

  label(refs: LabelRef[]): void {
    for (const r of refs) {
      if (r.kind === 'content') this.blob(r.digest, FULL);
      else this.snapshot(r.snapshotter, r.key, FULL);
    }
  }

  /** Follows references from everything marked until nothing new is reached. */
  drain(): void {
    for (let next = this.queue.pop(); next; next = this.queue.pop()) {
      const { ref, level } = next;
      if (ref.kind === 'content') {
        const rec = this.objs.blobs.get(ref.digest);
        if (rec && level === FULL) this.label(labelRefs(rec.labels));
      } else {
        const entry = this.objs.snapshots.get(ref.snapshotter)?.get(ref.key);
        if (!entry) continue;
        if (entry.rec.parent !== '') this.snapshot(ref.snapshotter, entry.rec.parent, level);
        if (level === FULL) this.label(labelRefs(entry.rec.labels));
      }
    }
  }
}

const snapshotId = (snapshotter: string, key: string) => `${snapshotter}\u0000${key}`;

export interface MetadataCollectorOptions {
  logger?: Logger;
  /** The clock, in milliseconds since the epoch (lease and ingest expiry). */
  now?: () => number;
}

/**
 * containerd's garbage collector over Berth's metadata database: mark from the roots, sweep
 * every unreached lease, blob, ingest and snapshot record in the same synchronous write
 * transaction, then let each backend remove what no record references any more.
 *
 * Mark and sweep run in one lmdb write transaction and never yield to the event loop, so no
 * write of this process (or any other: lmdb serializes writers) lands between them: an object
 * created after the mark cannot be swept by it. Objects created after the sweep are safe from
 * the backend phase because each backend's cleaner re-reads the records under its own lock
 * (see the content store's `collectBackend` and the snapshotter's `cleanup`). A crash between
 * the sweep and the backend phase leaves only unreferenced backend objects, which the next
 * collection removes (the backend phase always compares the whole backend with the records).
 */
export class MetadataCollector {
  private readonly logger: Logger;
  private readonly now: () => number;
  private sweepingNow = false;

  constructor(
    private readonly db: MetadataDb,
    private readonly hooks: GcHooks,
    private readonly options: MetadataCollectorOptions = {},
  ) {
    this.logger = options.logger ?? nullLogger;
    this.now = options.now ?? Date.now;
  }

  /** True while the collector's own transaction commits (so a scheduler can ignore it). */
  get sweeping(): boolean {
    return this.sweepingNow;
  }

  /** Runs one collection: mark and sweep, then the backends' removal of unreferenced objects. */
  async collect(ctx: Context = context()): Promise<CollectionStats> {
    const startedAt = Date.now();
    const t0 = performance.now();
    const removed = this.markAndSweep();
    const pauseMs = performance.now() - t0;
    // The sweep is on disk before any backend object goes: a power loss must not bring back a
    // record whose file was removed (with group durability the sweep commits unsynced).
    await this.db.durable();
    // Listeners registered on the hooks (GcHooks.onSwept) hear of the sweep before any file goes.
    await this.hooks.swept(removed);
    const t1 = performance.now();
    const backendRemoved: Record<string, number> = {};
    await Promise.all(
      [...this.hooks.backends()].map(async ([name, cleaner]) => {
        try {
          backendRemoved[name] = await cleaner(ctx);
        } catch (err) {
          this.logger.warn('garbage collection of a backend failed', { backend: name, error: (err as Error).message });
        }
      }),
    );
    const backendMs = performance.now() - t1;
    return { startedAt, pauseMs, backendMs, totalMs: performance.now() - t0, removed, backendRemoved };
  }

  /** Marks and sweeps in one synchronous write transaction; returns the records removed. */
  markAndSweep(): CollectionStats['removed'] {
    const removed = { leases: 0, blobs: 0, ingests: 0, snapshots: 0 };
    this.sweepingNow = true;
    try {
      this.db.update((tx) => {
        const now = this.now();
        for (const ns of namespaces(tx)) {
          const objs = readNamespace(tx, ns);
          const { marks, expired } = mark(tx, objs, now);
          sweep(tx, objs, marks, expired, removed);
        }
      });
    } finally {
      this.sweepingNow = false;
    }
    return removed;
  }
}

function namespaces(tx: ReadTx): string[] {
  const out: string[] = [];
  for (const { key } of tx.range<NamespaceRecord>(namespacesPrefix())) {
    const ns = parseNamespaceKey(key);
    if (ns !== undefined) out.push(ns);
  }
  return out;
}

function readNamespace(tx: ReadTx, ns: string): NamespaceObjects {
  const objs: NamespaceObjects = { ns, leases: new Map(), leased: new Map(), blobs: new Map(), ingests: new Map(), snapshots: new Map() };
  for (const { key, value } of tx.range<LeaseRecord>(objectsPrefix(ns, 'leases'))) {
    const id = parseObjectKey(key, 'leases');
    if (id) objs.leases.set(id[0], value);
  }
  for (const { key } of tx.range(objectsPrefix(ns, 'leased'))) {
    const parts = parseObjectKey(key, 'leased', 3);
    if (!parts) continue;
    const [lease, type, id] = parts;
    let list = objs.leased.get(lease);
    if (!list) objs.leased.set(lease, (list = []));
    list.push({ lmdbKey: key, type, id });
  }
  for (const { key, value } of tx.range<BlobRecord>(objectsPrefix(ns, 'blobs'))) {
    const id = parseObjectKey(key, 'blobs');
    if (id) objs.blobs.set(id[0], value);
  }
  for (const { key, value } of tx.range<IngestRecord>(objectsPrefix(ns, 'ingests'))) {
    const id = parseObjectKey(key, 'ingests');
    if (id) objs.ingests.set(id[0], value);
  }
  for (const { key, value } of tx.range<SnapshotMetaRecord>(objectsPrefix(ns, 'snapshots'))) {
    const parts = parseObjectKey(key, 'snapshots', 2);
    if (!parts) continue;
    const snapshotter = parts[0];
    let m = objs.snapshots.get(snapshotter);
    if (!m) objs.snapshots.set(snapshotter, (m = new Map()));
    m.set(value.key, { lmdbKey: key, rec: value });
  }
  return objs;
}

/** Marks everything reachable from the namespace's roots; returns the marks and the expired leases. */
function mark(tx: ReadTx, objs: NamespaceObjects, now: number): { marks: Marks; expired: string[] } {
  const { ns } = objs;
  const marks = new Marks(objs);
  const expired: string[] = [];
  for (const [id, lease] of objs.leases) {
    const expiry = parseExpiry(lease.labels[GC_EXPIRE]);
    if (expiry !== undefined && expiry < now) {
      expired.push(id);
      continue;
    }
    const level = GC_FLAT in lease.labels ? FLAT : FULL;
    for (const r of objs.leased.get(id) ?? []) {
      if (r.type === 'content') marks.blob(r.id, level);
      else if (r.type === 'ingests') marks.ingest(r.id);
      else if (r.type.startsWith('snapshots/')) marks.snapshot(r.type.slice('snapshots/'.length), r.id, level);
    }
  }
  for (const { key, value } of tx.range<ImageRecord>(objectsPrefix(ns, 'images'))) {
    if (!parseObjectKey(key, 'images')) continue;
    if (value.target?.digest) marks.blob(value.target.digest, FULL);
    marks.label(labelRefs(value.labels));
  }
  for (const { key, value } of tx.range<ContainerRecord>(objectsPrefix(ns, 'containers'))) {
    if (!parseObjectKey(key, 'containers')) continue;
    if (value.snapshotter && value.snapshotKey) marks.snapshot(value.snapshotter, value.snapshotKey, FULL);
    marks.label(labelRefs(value.labels));
  }
  for (const [digest, rec] of objs.blobs) if (GC_ROOT in (rec.labels ?? {})) marks.blob(digest, FULL);
  for (const [snapshotter, m] of objs.snapshots) {
    for (const [key, { rec }] of m) {
      // A commit in flight holds its snapshot until it settles (containerd's commit runs under
      // the database lock, so its collector never sees one).
      if (GC_ROOT in rec.labels || rec.committing) marks.snapshot(snapshotter, key, FULL);
    }
  }
  for (const [ref, rec] of objs.ingests) if (rec.expireAt !== undefined && rec.expireAt > now) marks.ingest(ref);
  marks.drain();
  return { marks, expired };
}

/** Removes, in the collection's transaction, every record of the namespace that was not marked. */
function sweep(tx: WriteTx, objs: NamespaceObjects, marks: Marks, expired: string[], removed: CollectionStats['removed']): void {
  const { ns } = objs;
  for (const id of expired) {
    tx.remove(objectsPrefix(ns, 'leases', id));
    for (const r of objs.leased.get(id) ?? []) tx.remove(r.lmdbKey);
    removed.leases++;
  }
  for (const digest of objs.blobs.keys()) {
    if (marks.blobs.has(digest)) continue;
    tx.remove(objectsPrefix(ns, 'blobs', digest));
    removed.blobs++;
  }
  for (const ref of objs.ingests.keys()) {
    if (marks.ingests.has(ref)) continue;
    tx.remove(objectsPrefix(ns, 'ingests', ref));
    removed.ingests++;
  }
  for (const [snapshotter, m] of objs.snapshots) {
    const gone = new Set<string>();
    for (const [key, { lmdbKey }] of m) {
      if (marks.snapshots.has(snapshotId(snapshotter, key))) continue;
      tx.remove(lmdbKey);
      gone.add(key);
      removed.snapshots++;
    }
    // A kept parent forgets its removed children (a kept snapshot's parent is always kept).
    const parents = new Set<string>();
    for (const key of gone) {
      const parent = m.get(key)!.rec.parent;
      if (parent !== '' && !gone.has(parent)) parents.add(parent);
    }
    for (const p of parents) {
      const entry = m.get(p);
      if (!entry) continue;
      tx.put(entry.lmdbKey, { ...entry.rec, children: entry.rec.children.filter((c) => !gone.has(c)) });
    }
  }
}
