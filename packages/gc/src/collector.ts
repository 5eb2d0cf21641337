import { type Context, context } from '@berth/context';
import { type Logger, nullLogger } from '@berth/log';
import { NotFoundError } from '@berth/errdefs';
import {
  GC_ROOT,
  type CollectionStats,
  type GcHooks,
  type GcKind,
  type GcRecord,
  type Key,
  type LeaseRecord,
  type MetadataDb,
  type NamespaceRecord,
  type ReadTx,
  type RemovedRecords,
  type WriteTx,
  namespaceObjectsPrefix,
  namespacesPrefix,
  objectsPrefix,
  parseNamespaceKey,
  splitObjectKey,
} from '@berth/metadata';
import { GC_EXPIRE, GC_FLAT, parseExpiry } from './labels';

/** How deep a node is marked: flat (the object and what its kind always keeps) or full (its label references too). */
const FLAT = 1;
const FULL = 2;
type Level = typeof FLAT | typeof FULL;

interface Node extends GcRecord {
  hooks: GcKind;
}

/** One namespace's records, read inside the collection's transaction. */
interface NamespaceObjects {
  ns: string;
  leases: Map<string, LeaseRecord>;
  /** Lease id -> its resources' lmdb keys and what they name. */
  leased: Map<string, Array<{ lmdbKey: Key; type: string; id: string }>>;
  /** Node name (see nodeName) -> the record. */
  nodes: Map<string, Node>;
  /** Kind -> its records. */
  byKind: Map<string, Node[]>;
  /** Kinds found that no hooks describe. */
  unknown: Set<string>;
}

const nodeName = (kind: string, id: readonly string[]) => [kind, ...id].join('\u0000');

/** An object of the collector's graph, or a lease: the ends of an edge in an explanation. */
export interface GcObject {
  kind: string;
  id: readonly string[];
}

/** How an object was first reached: from which object (none for a root), along what edge. */
interface Why {
  from?: GcObject;
  via: string;
}

/** What the mark phase found reachable in one namespace. */
class Marks {
  readonly levels = new Map<string, Level>();
  private readonly queue: Array<{ name: string; level: Level }> = [];

  /**
   * @param trace when given, records for each object how it was first reached (explanations);
   *   a collection passes none and pays nothing for it.
   */
  constructor(
    private readonly objs: NamespaceObjects,
    private readonly kinds: readonly GcKind[],
    readonly trace?: Map<string, Why>,
  ) {}

  mark(kind: string, id: readonly string[], level: Level, why?: () => Why): void {
    const name = nodeName(kind, id);
    if ((this.levels.get(name) ?? 0) >= level) return;
    this.levels.set(name, level);
    if (this.trace && why && !this.trace.has(name)) this.trace.set(name, why());
    this.queue.push({ name, level });
  }

  /** Marks, in full, what the `gc.ref` labels among `labels` name. */
  labels(labels: Readonly<Record<string, string>> | undefined, from?: GcObject): void {
    for (const [key, value] of Object.entries(labels ?? {})) {
      // An empty value references nothing.
      if (value === '') continue;
      for (const k of this.kinds) {
        const id = k.label?.(key, value);
        if (id) {
          this.mark(k.kind, id, FULL, this.trace && (() => ({ from, via: `label ${key}` })));
          break;
        }
      }
    }
  }

  /** Marks what a lease resource names, at the lease's level; a type no kind claims names nothing. */
  leased(type: string, id: string, level: Level, lease?: string): void {
    for (const k of this.kinds) {
      const parts = k.leased?.(type, id);
      if (parts) return this.mark(k.kind, parts, level, this.trace && (() => ({ from: { kind: 'leases', id: [lease ?? ''] }, via: `lease resource ${type}` })));
    }
  }

  /** Follows references from everything marked until nothing new is reached. */
  drain(): void {
    for (let next = this.queue.pop(); next; next = this.queue.pop()) {
      const node = this.objs.nodes.get(next.name);
      if (!node) continue;
      // Only an explanation pays for the record of where each mark came from.
      const from: GcObject | undefined = this.trace && { kind: node.hooks.kind, id: node.id };
      for (const ref of node.hooks.references?.(node.value, node.id) ?? []) {
        this.mark(ref.kind, ref.id, ref.full ? FULL : next.level, this.trace && (() => ({ from, via: ref.edge ?? 'reference' })));
      }
      if (next.level === FULL) this.labels(node.hooks.labels?.(node.value), from);
    }
  }
}

/** One link of the chain of references that keeps an object. */
export interface GcLink extends GcObject {
  /** How the link before reaches this one; `root` for the first. */
  via: string;
}

/** Why an object is kept, as the collector's own marking finds it. */
export interface GcExplanation {
  /** False when no root reaches the object: the next collection removes it. */
  referenced: boolean;
  /** From a root (an image, a container, a lease, a labelled or live record) to the object; empty when not referenced. */
  chain: GcLink[];
  /**
   * Every root that keeps the object (the chain's first among them): all of them must go before
   * a collection removes it. Empty when not referenced.
   */
  keptBy: GcObject[];
  /** The namespace holds records of kinds no hooks describe, so collections leave it alone. */
  skipped: boolean;
}

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
    const { removed, skipped } = this.sweepAll();
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
    return { startedAt, pauseMs, backendMs, totalMs: performance.now() - t0, removed, skipped, backendRemoved };
  }

  /**
   * Explains why `target` (a record of a kind the hooks describe, named by its id in references:
   * `['sha256:...']` for a blob, `[snapshotter, key]` for a snapshot) is kept in namespace `ns`:
   * the marking a collection would do now, in a read transaction, recording how each object was
   * first reached. NotFound when the namespace has no such record.
   */
  explain(ns: string, target: GcObject): GcExplanation {
    const kinds = [...this.hooks.kinds().values()];
    return this.db.view((tx) => {
      const objs = readNamespace(tx, ns, this.hooks);
      const name = nodeName(target.kind, target.id);
      if (!objs.nodes.has(name)) throw new NotFoundError(`${target.kind} ${target.id.join(' ')} in namespace "${ns}"`);
      const trace = new Map<string, Why>();
      const now = this.now();
      const { marks } = mark(objs, kinds, now, trace);
      const skipped = objs.unknown.size > 0;
      if (!marks.levels.has(name)) return { referenced: false, chain: [], keptBy: [], skipped };
      const chain: GcLink[] = [];
      let at: GcObject | undefined = target;
      // First reaches form a tree (an object is reached from one marked before it): this ends.
      while (at) {
        const why: Why = trace.get(nodeName(at.kind, at.id)) ?? { via: 'root' };
        chain.push({ kind: at.kind, id: [...at.id], via: why.via });
        if (why.from?.kind === 'leases') {
          chain.push({ kind: 'leases', id: [...why.from.id], via: 'root' });
          break;
        }
        at = why.from;
      }
      // Every root that reaches it on its own, each marked from alone: what must go before it can.
      const keptBy = rootsOf(objs, now)
        .roots.filter((r) => {
          const alone = new Marks(objs, kinds);
          r.seed(alone);
          alone.drain();
          return alone.levels.has(name);
        })
        .map((r) => ({ kind: r.object.kind, id: [...r.object.id] }));
      return { referenced: true, chain: chain.reverse(), keptBy, skipped };
    });
  }

  /** Marks and sweeps in one synchronous write transaction; returns the records removed. */
  markAndSweep(): RemovedRecords {
    return this.sweepAll().removed;
  }

  private sweepAll(): Pick<CollectionStats, 'removed' | 'skipped'> {
    const kinds = [...this.hooks.kinds().values()];
    const removed: RemovedRecords = { leases: 0 };
    for (const k of kinds) if (k.root !== true) removed[k.kind] = 0;
    const skipped: string[] = [];
    this.sweepingNow = true;
    try {
      this.db.update((tx) => {
        const now = this.now();
        for (const ns of namespaces(tx)) {
          const objs = readNamespace(tx, ns, this.hooks);
          if (objs.unknown.size > 0) {
            // Their records may reference anything: sweeping without them could remove what they keep.
            this.logger.debug('namespace not collected: it holds records of kinds no gc hooks describe', { namespace: ns, kinds: [...objs.unknown].join(',') });
            skipped.push(ns);
            continue;
          }
          const { marks, expired } = mark(objs, kinds, now);
          sweep(tx, objs, kinds, marks, expired, removed);
        }
      });
    } finally {
      this.sweepingNow = false;
    }
    return { removed, skipped };
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

function readNamespace(tx: ReadTx, ns: string, hooks: GcHooks): NamespaceObjects {
  const objs: NamespaceObjects = { ns, leases: new Map(), leased: new Map(), nodes: new Map(), byKind: new Map(), unknown: new Set() };
  const kinds = hooks.kinds();
  for (const { key, value } of tx.range<unknown>(namespaceObjectsPrefix(ns))) {
    const split = splitObjectKey(key);
    if (!split) continue;
    const { kind, parts } = split;
    if (kind === 'leases') {
      if (parts.length === 1) objs.leases.set(parts[0], value as LeaseRecord);
    } else if (kind === 'leased') {
      if (parts.length !== 3) continue;
      const [lease, type, id] = parts;
      let list = objs.leased.get(lease);
      if (!list) objs.leased.set(lease, (list = []));
      list.push({ lmdbKey: key, type, id });
    } else {
      const k = kinds.get(kind);
      if (!k) {
        objs.unknown.add(kind);
        continue;
      }
      if (parts.length !== (k.parts ?? 1)) continue;
      const node: Node = { key, id: k.id?.(parts, value) ?? parts, value, hooks: k };
      objs.nodes.set(nodeName(kind, node.id), node);
      let list = objs.byKind.get(kind);
      if (!list) objs.byKind.set(kind, (list = []));
      list.push(node);
    }
  }
  return objs;
}

/** A root of the namespace's graph (an unexpired lease, or a record its kind calls a root), and how it marks. */
interface Root {
  object: GcObject;
  seed(marks: Marks): void;
}

/** The namespace's roots at `now`, leases first, and its expired leases. */
function rootsOf(objs: NamespaceObjects, now: number): { roots: Root[]; expired: string[] } {
  const roots: Root[] = [];
  const expired: string[] = [];
  for (const [id, lease] of objs.leases) {
    const expiry = parseExpiry(lease.labels[GC_EXPIRE]);
    if (expiry !== undefined && expiry < now) {
      expired.push(id);
      continue;
    }
    const level = GC_FLAT in lease.labels ? FLAT : FULL;
    roots.push({
      object: { kind: 'leases', id: [id] },
      seed: (marks) => {
        for (const r of objs.leased.get(id) ?? []) marks.leased(r.type, r.id, level, id);
      },
    });
  }
  for (const node of objs.nodes.values()) {
    const { root } = node.hooks;
    if (root === true || root?.(node.value, now)) {
      roots.push({
        object: { kind: node.hooks.kind, id: node.id },
        seed: (marks) => marks.mark(node.hooks.kind, node.id, FULL, marks.trace && (() => ({ via: rootReason(node) }))),
      });
    }
  }
  return { roots, expired };
}

/** Marks everything reachable from the namespace's roots; returns the marks and the expired leases. */
function mark(objs: NamespaceObjects, kinds: readonly GcKind[], now: number, trace?: Map<string, Why>): { marks: Marks; expired: string[] } {
  const marks = new Marks(objs, kinds, trace);
  const { roots, expired } = rootsOf(objs, now);
  for (const r of roots) r.seed(marks);
  marks.drain();
  return { marks, expired };
}

/** Why a root is one, for explanations. */
function rootReason(node: Node): string {
  if (node.hooks.root === true) return 'root';
  const labels = node.hooks.labels?.(node.value);
  return labels && GC_ROOT in labels ? `root (label ${GC_ROOT})` : 'root (its kind keeps it: a live ingest, a commit in flight)';
}

/** Removes, in the collection's transaction, every record of the namespace that was not marked. */
function sweep(tx: WriteTx, objs: NamespaceObjects, kinds: readonly GcKind[], marks: Marks, expired: string[], removed: RemovedRecords): void {
  const { ns } = objs;
  for (const id of expired) {
    tx.remove(objectsPrefix(ns, 'leases', id));
    for (const r of objs.leased.get(id) ?? []) tx.remove(r.lmdbKey);
    removed.leases++;
  }
  for (const k of kinds) {
    if (k.root === true) continue;
    const all = objs.byKind.get(k.kind) ?? [];
    const unreached = all.filter((n) => !marks.levels.has(nodeName(k.kind, n.id)));
    if (unreached.length === 0) continue;
    if (k.sweep) k.sweep(tx, unreached, all);
    else for (const n of unreached) tx.remove(n.key);
    removed[k.kind] += unreached.length;
  }
}
