import type { Context } from '@berth/context';
import { AlreadyExistsError } from '@berth/errdefs';
import { token } from '@berth/plugin';
import type { WriteTx } from './db';
import { containersGcKind, imagesGcKind } from './gc-kinds';
import type { ExtensionKind, Key, ObjectKind } from './schema';

/** The label that makes a blob or snapshot a root of the garbage collector (any value). */
export const GC_ROOT = 'containerd.io/gc.root';

/** What one collection's sweep removed: expired leases, and the unreached records of each collectible kind. */
export interface RemovedRecords {
  leases: number;
  /** Per registered kind that is not all roots (`blobs`, `ingests`, `snapshots` in berthd). */
  [kind: string]: number;
}

/** A reference from one record to an object of the collector's graph. */
export interface GcRef {
  kind: ObjectKind | ExtensionKind;
  /** The object's id, as its kind's `id` gives it. */
  id: readonly string[];
  /** Keeps the object in full even when the referrer is kept flat (an ingest's expected blob). */
  full?: boolean;
  /** What the edge is, for explanations (`target`, `snapshot`, `parent`, `expected`); default `reference`. */
  edge?: string;
}

/** One stored record of a kind, as the collector hands it to that kind's hooks. */
export interface GcRecord<R = unknown> {
  key: Key;
  id: readonly string[];
  value: R;
}

/**
 * How the garbage collector treats the records of one kind of the key tree: which are roots, what
 * each references, which `gc.ref` labels and lease resources name them, and how sweeping removes
 * them. The package that owns the records registers it on {@link GcHooks}; the collector reads no
 * record type of its own. Every hook runs inside the collection's write transaction: synchronous,
 * with no I/O.
 */
export interface GcKind<R = any> {
  kind: ObjectKind | ExtensionKind;
  /** How many key parts follow the kind (default 1); other keys under the kind are not records. */
  parts?: number;
  /** The record's id in references (default: its key parts). */
  id?(parts: readonly string[], record: R): readonly string[];
  /**
   * Whether a record is a root at `now` (ms since the epoch); `true`: every record is one, and
   * the kind is never swept (images, containers). Default: no record is.
   */
  root?: true | ((record: R, now: number) => boolean);
  /** The labels whose `gc.ref` entries a record references when it is kept in full. */
  labels?(record: R): Readonly<Record<string, string>> | undefined;
  /** A record's other references, kept at the level the record is kept at unless `full`. */
  references?(record: R, id: readonly string[]): Iterable<GcRef>;
  /** The id a `gc.ref` label of this kind's family names (its value is never empty), or undefined. */
  label?(key: string, value: string): readonly string[] | undefined;
  /** The id a lease resource of this kind names (`content`, `snapshots/<snapshotter>` ...), or undefined. */
  leased?(type: string, id: string): readonly string[] | undefined;
  /**
   * Removes the records no root reaches (`unreached`, a subset of `all`, the namespace's records
   * of the kind). Default: removes their keys.
   */
  sweep?(tx: WriteTx, unreached: readonly GcRecord<R>[], all: readonly GcRecord<R>[]): void;
}

/**
 * What one garbage collection did. Times are milliseconds; `pauseMs` is the time the metadata
 * database was held (mark and sweep, one write transaction), which is what the scheduler's
 * `pause_threshold` budgets; `backendMs` is the file removal that follows, outside it.
 */
export interface CollectionStats {
  /** When the collection started (ms since the epoch). */
  startedAt: number;
  pauseMs: number;
  backendMs: number;
  totalMs: number;
  /** Metadata records removed, by kind. */
  removed: RemovedRecords;
  /**
   * Namespaces left as they were: they hold records of a kind no {@link GcKind} describes (its
   * owner has not registered yet, or is not loaded), whose references the collector cannot know.
   */
  skipped: string[];
  /** Backend objects (blob files, ingests, snapshots) removed after the sweep, by backend name. */
  backendRemoved: Record<string, number>;
}

/** Collects garbage on request: what synchronous deletes wait for. */
export interface GarbageCollector {
  /**
   * Schedules a collection (after `schedule_delay`) and resolves with its statistics once a
   * collection that started after this call has finished (files removed included).
   */
  scheduleAndWait(ctx: Context): Promise<CollectionStats>;
  /**
   * Runs a collection now (no `schedule_delay`; after the one running, if any) and resolves with
   * its statistics: an operator's explicit request.
   */
  collectNow(ctx: Context): Promise<CollectionStats>;
}

/** The collector, provided by the `io.containerd.gc.v1 scheduler` plugin. */
export const GarbageCollectorToken = token<GarbageCollector>('io.containerd.gc.v1/collector');

/**
 * Removes what a backend holds that no metadata record references any more (blob files,
 * ingests, snapshots), returning how many objects it removed. Runs after the collector's sweep,
 * outside any metadata transaction; it must be safe against writes running at the same time.
 */
export type BackendCleaner = (ctx: Context) => Promise<number>;

/**
 * Told what a collection's sweep removed, after the sweep is on disk and before any backend
 * removes an object: the window in which a crash leaves only orphans (an audit log, a metric,
 * a test's fault injection). The backends wait for it.
 */
export type SweepListener = (removed: RemovedRecords) => void | Promise<void>;

/**
 * Where the packages that own records describe them to the garbage collector (`registerKind`),
 * where the layers that own backends (content, snapshotters) register their cleaners, and where
 * the collector, once loaded, makes itself reachable to services that cannot require its plugin
 * type (containerd's leases service needs only the metadata plugin). Images and containers, the
 * records of this package, are registered from the start.
 */
export class GcHooks {
  private readonly kindHooks = new Map<string, GcKind>();
  private readonly cleaners = new Map<string, BackendCleaner>();
  private readonly sweepListeners = new Set<SweepListener>();
  private collector: GarbageCollector | undefined;

  constructor() {
    this.registerKind(imagesGcKind);
    this.registerKind(containersGcKind);
  }

  /** Registers how the collector treats a kind's records; AlreadyExists if the kind has hooks. Returns its remover. */
  registerKind<R>(kind: GcKind<R>): () => void {
    if (this.kindHooks.has(kind.kind)) throw new AlreadyExistsError(`gc hooks for kind "${kind.kind}"`);
    this.kindHooks.set(kind.kind, kind);
    return () => {
      if (this.kindHooks.get(kind.kind) === kind) this.kindHooks.delete(kind.kind);
    };
  }

  /** The registered kinds, by name, in registration order. */
  kinds(): ReadonlyMap<string, GcKind> {
    return this.kindHooks;
  }

  /** Registers a backend's cleaner under a name (`content`, `snapshotter/<id>`); returns its remover. */
  registerBackend(name: string, cleaner: BackendCleaner): () => void {
    this.cleaners.set(name, cleaner);
    return () => {
      if (this.cleaners.get(name) === cleaner) this.cleaners.delete(name);
    };
  }

  /** The registered cleaners, by name. */
  backends(): ReadonlyMap<string, BackendCleaner> {
    return this.cleaners;
  }

  /** Registers a listener of every sweep (see {@link SweepListener}); returns its remover. */
  onSwept(listener: SweepListener): () => void {
    this.sweepListeners.add(listener);
    return () => void this.sweepListeners.delete(listener);
  }

  /** Called by the collector after a sweep: runs the listeners in registration order. */
  async swept(removed: RemovedRecords): Promise<void> {
    for (const listener of [...this.sweepListeners]) await listener(removed);
  }

  /** Sets (or, with undefined, clears) the collector that `collectGarbage` waits for. */
  setCollector(collector: GarbageCollector | undefined): void {
    this.collector = collector;
  }

  /** Waits for the next collection; resolves at once when no collector is loaded. */
  async collectGarbage(ctx: Context): Promise<void> {
    if (this.collector) await this.collector.scheduleAndWait(ctx);
  }
}

/** The hooks of the metadata database, provided by the metadata plugin. */
export const GcHooksToken = token<GcHooks>('io.containerd.metadata.v1/gc-hooks');
