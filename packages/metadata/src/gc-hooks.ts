import type { Context } from '@berth/context';
import { token } from '@berth/plugin';

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
  removed: { leases: number; blobs: number; ingests: number; snapshots: number };
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
export type SweepListener = (removed: CollectionStats['removed']) => void | Promise<void>;

/**
 * Where the layers that own backends (content, snapshotters) register their cleaners, and where
 * the collector, once loaded, makes itself reachable to services that cannot require its plugin
 * type (containerd's leases service needs only the metadata plugin).
 */
export class GcHooks {
  private readonly cleaners = new Map<string, BackendCleaner>();
  private readonly sweepListeners = new Set<SweepListener>();
  private collector: GarbageCollector | undefined;

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
  async swept(removed: CollectionStats['removed']): Promise<void> {
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
