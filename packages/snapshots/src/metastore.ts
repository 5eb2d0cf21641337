import { mkdirSync } from 'node:fs';
import type { RootDatabase } from 'lmdb';
import { GROUP_SYNC_ENV_OPTIONS, GroupSync, NOSYNC_TXN_FLAGS } from '@berth/group-sync';
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
 * before or the state after. It commits without flushing; `durable()` flushes, on a worker thread
 * and once for every caller waiting meanwhile, and the snapshotter awaits it before it answers.
 */
export class MetaStore {
  private readonly sync: GroupSync;

  private constructor(
    private readonly env: RootDatabase<unknown, LKey>,
    path: string,
  ) {
    this.sync = new GroupSync(env, `snapshot metastore ${path}`);
  }

  static open(path: string): MetaStore {
    // lmdb (a native addon) loads when a database opens, not when this package is imported.
    const { open } = require('lmdb') as typeof import('lmdb');
    mkdirSync(path.slice(0, path.lastIndexOf('/')) || '/', { recursive: true });
    return new MetaStore(open<unknown, LKey>({ path, compression: false, ...GROUP_SYNC_ENV_OPTIONS }), path);
  }

  /** Resolves once every transaction committed before the call is on disk. */
  durable(): Promise<void> {
    return this.sync.durable();
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
   * Runs `fn` in one synchronous write transaction; a throw rolls it back. The commit is visible
   * at once and kept if the process is killed; it is on disk once {@link durable} resolves.
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
    const result = env.transactionSync(() => fn(w), NOSYNC_TXN_FLAGS);
    this.sync.committedOne();
    return result;
  }

  async close(): Promise<void> {
    await this.sync.close();
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
