import { mkdirSync } from 'node:fs';
import { open, RootDatabase } from 'lmdb';
import { GROUP_SYNC_OPEN_OPTIONS, GroupSync, MDB_NOSYNC, TXN_SYNC_FLAGS } from '@berth/metadata';
import type { Kind } from './types';
import { storedKey } from './keys';

/**
 * A backend snapshot as a snapshotter's own metastore keeps it. The directory of a snapshot is
 * named by its numeric `id`, never by its key.
 */
export interface SnapshotRecord {
  id: number;
  /** The full key (the lmdb key may hold a shortened form, see storedKey). */
  key: string;
  kind: Kind;
  /** The parent's key, '' for none. */
  parent: string;
  /** The ids of the parent chain, closest first (fixed at creation: ids never change). */
  parentIds: number[];
  labels: Record<string, string>;
  created: number;
  updated: number;
  /** Usage of a committed snapshot, measured at commit. */
  size: number;
  inodes: number;
}

type LKey = Array<string | number>;

/**
 * The metastore of one snapshotter: an lmdb environment in the snapshotter's root.
 *
 * ```
 * ['seq']                        -> number           last id handed out (ids are never reused)
 * ['s', <stored key>]            -> SnapshotRecord
 * ['i', <id>]                    -> <key>            id to key, for Cleanup
 * ['c', <parent id>, <child id>] -> true             children, so a parent with any cannot go
 * ```
 *
 * Every write is one synchronous transaction (`transaction`), so a crash leaves either the state
 * before or the state after. It commits without a sync; `durable()` (which every snapshotter
 * operation awaits before it answers) syncs on a worker thread, one sync for every commit before
 * it: a sync per commit on the event loop took 10 to 100 ms on a loaded disk.
 */
export class MetaStore {
  private readonly group: GroupSync;

  private constructor(private readonly env: RootDatabase<unknown, LKey>, path: string) {
    this.group = new GroupSync(env, path);
  }

  static open(path: string): MetaStore {
    mkdirSync(path.slice(0, path.lastIndexOf('/')) || '/', { recursive: true });
    return new MetaStore(open<unknown, LKey>({ path, compression: false, ...GROUP_SYNC_OPEN_OPTIONS }), path);
  }

  /** Resolves once every transaction committed before the call is on disk (see GroupSync). */
  durable(): Promise<void> {
    return this.group.durable();
  }

  get(key: string): SnapshotRecord | undefined {
    const rec = this.env.get(['s', storedKey(key)]) as SnapshotRecord | undefined;
    return rec && rec.key === key ? rec : undefined;
  }

  keyOf(id: number): string | undefined {
    return this.env.get(['i', id]) as string | undefined;
  }

  hasChildren(id: number): boolean {
    for (const { key } of this.env.getRange({ start: ['c', id] })) {
      const k = key as LKey;
      return Array.isArray(k) && k[0] === 'c' && k[1] === id;
    }
    return false;
  }

  /** The next id that `create` will hand out. */
  peekId(): number {
    return ((this.env.get(['seq']) as number | undefined) ?? 0) + 1;
  }

  /** Every record, in stored-key order. */
  *records(): IterableIterator<SnapshotRecord> {
    for (const { key, value } of this.env.getRange({ start: ['s'] })) {
      const k = key as LKey;
      if (!Array.isArray(k) || k[0] !== 's') return;
      yield value as SnapshotRecord;
    }
  }

  /** Every id that has a record. */
  ids(): Set<number> {
    const out = new Set<number>();
    for (const { key } of this.env.getRange({ start: ['i'] })) {
      const k = key as LKey;
      if (!Array.isArray(k) || k[0] !== 'i') break;
      out.add(Number(k[1]));
    }
    return out;
  }

  /**
   * Runs `fn` in one synchronous write transaction; a throw rolls it back. Durable once a
   * following {@link durable} resolves.
   */
  transaction<T>(fn: (w: MetaWriter) => T): T {
    const env = this.env;
    const w: MetaWriter = {
      allocateId: () => {
        const id = ((env.get(['seq']) as number | undefined) ?? 0) + 1;
        env.putSync(['seq'], id);
        return id;
      },
      put: (rec) => {
        env.putSync(['s', storedKey(rec.key)], rec);
        env.putSync(['i', rec.id], rec.key);
        if (rec.parentIds.length > 0) env.putSync(['c', rec.parentIds[0], rec.id], true);
      },
      rename: (rec, from) => {
        env.removeSync(['s', storedKey(from)]);
        env.putSync(['s', storedKey(rec.key)], rec);
        env.putSync(['i', rec.id], rec.key);
      },
      delete: (rec) => {
        env.removeSync(['s', storedKey(rec.key)]);
        env.removeSync(['i', rec.id]);
        if (rec.parentIds.length > 0) env.removeSync(['c', rec.parentIds[0], rec.id]);
      },
    };
    const result = env.transactionSync(() => fn(w), TXN_SYNC_FLAGS | MDB_NOSYNC);
    this.group.committed();
    return result;
  }

  async close(): Promise<void> {
    this.group.stop();
    await this.durable().catch(() => undefined);
    await this.env.close();
  }
}

/** The writes of a metastore transaction. */
export interface MetaWriter {
  allocateId(): number;
  /** Stores a new or updated record under its key. */
  put(rec: SnapshotRecord): void;
  /** Moves a record from key `from` to `rec.key` (commit). */
  rename(rec: SnapshotRecord, from: string): void;
  delete(rec: SnapshotRecord): void;
}
