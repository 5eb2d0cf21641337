import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';
import { FailedPreconditionError } from '@berth/errdefs';
import { GROUP_SYNC_ENV_OPTIONS, GroupSync, NOSYNC_TXN_FLAGS } from '@berth/group-sync';
import { Key, SCHEMA_VERSION, namespaceKey, schemaKey, NamespaceRecord } from './schema';

/** Reads inside one consistent snapshot of the database. */
export interface ReadTx {
  get<T>(key: Key): T | undefined;
  has(key: Key): boolean;
  /** Iterates the entries whose key starts with `prefix` (the prefix itself included), in key order. */
  range<T>(prefix: Key): IterableIterator<{ key: Key; value: T }>;
  /** Reports whether any entry's key starts with `prefix` (the prefix itself excluded). */
  hasUnder(prefix: Key): boolean;
}

/** Writes inside one atomic transaction; a throw rolls all of them back. */
export interface WriteTx extends ReadTx {
  put(key: Key, value: unknown): void;
  remove(key: Key): boolean;
  /** Creates the namespace record if absent: every write in a namespace makes it exist. */
  ensureNamespace(ns: string): void;
  /**
   * Marks the transaction as a deletion the garbage collector's scheduler should count (containerd's
   * "dirty": deleting an image, container, lease, lease resource, blob or snapshot). Removing keys
   * alone does not: a commit that drops its ingest record or an active snapshot key is no deletion.
   */
  markDeletion(): void;
}

/** What a committed write transaction did; passed to commit listeners. */
export interface Mutation {
  /** Whether the transaction called `markDeletion` (deleted an object the collector may reclaim). */
  readonly deletions: boolean;
}

/** A schema migration from `from` to `from + 1`, run inside one write transaction. */
export interface Migration {
  readonly from: number;
  migrate(tx: WriteTx): void;
}

export interface OpenOptions {
  /** Migrations to apply to an older database, in order. */
  migrations?: readonly Migration[];
  /**
   * When a write becomes durable. `commit` (the default): each {@link MetadataDb.update} syncs
   * the database before it returns, blocking the thread for the sync. `group`: an update commits
   * without syncing (visible at once, and kept when the process is killed), and
   * {@link MetadataDb.durable} syncs every update made before it, one sync for all of its callers;
   * whoever acknowledges a write (berthd's gRPC replies) awaits it first. Updates nobody awaits are
   * synced within 200 ms.
   */
  durability?: 'commit' | 'group';
}

/** lmdb decodes a one-element array key as the bare element; keys are always arrays here. */
const asKey = (raw: unknown): Key => (Array.isArray(raw) ? (raw as Key) : [raw as string | number]);

const startsWith = (key: Key, prefix: Key) => {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
};

/**
 * The metadata database: one lmdb environment, synchronous commits (durable at once, or grouped:
 * see {@link OpenOptions.durability}), `view`/`update` helpers. Listeners run after a write
 * commits (never inside the transaction), which is where events get published and the garbage
 * collector learns about mutations.
 */
export class MetadataDb {
  private readonly listeners = new Set<(m: Mutation) => void>();
  /** Group durability's syncs (undefined with commit durability). */
  private readonly group: GroupSync | undefined;
  /** The read side of every view and update: one object, not four closures per transaction. */
  private readonly reader: ReadTx;

  private constructor(
    readonly path: string,
    private readonly env: RootDatabase<unknown, Key>,
    readonly durability: 'commit' | 'group',
  ) {
    if (durability === 'group') this.group = new GroupSync(env, `metadata database ${path}`);
    this.reader = readTx(env);
  }

  /** Opens (creating if needed) the database in a directory and brings its schema up to date. */
  static open(dir: string, options: OpenOptions = {}): MetadataDb {
    // lmdb (a native addon) loads when a database opens, not when this package is imported.
    const { open } = require('lmdb') as typeof import('lmdb');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'meta.lmdb');
    const durability = options.durability ?? 'commit';
    const env = open<unknown, Key>({ path, compression: false, maxDbs: 4, ...(durability === 'group' ? GROUP_SYNC_ENV_OPTIONS : {}) });
    const db = new MetadataDb(path, env, durability);
    db.migrate(options.migrations ?? []);
    return db;
  }

  private migrate(migrations: readonly Migration[]): void {
    this.update((tx) => {
      let version = tx.get<number>(schemaKey());
      if (version === undefined) {
        tx.put(schemaKey(), SCHEMA_VERSION);
        return;
      }
      if (version > SCHEMA_VERSION) {
        throw new FailedPreconditionError(
          `metadata database ${this.path} has schema version ${version}, newer than this berthd understands (${SCHEMA_VERSION})`,
        );
      }
      while (version < SCHEMA_VERSION) {
        const step = migrations.find((m) => m.from === version);
        if (!step) throw new FailedPreconditionError(`no migration from metadata schema version ${version}`);
        step.migrate(tx);
        version++;
        tx.put(schemaKey(), version);
      }
    });
  }

  /** The schema version stored in the database. */
  get schemaVersion(): number {
    return this.env.get(schemaKey()) as number;
  }

  /**
   * Runs `fn` over a consistent read snapshot. lmdb-js serves every read of one synchronous run
   * from the same read transaction, so `fn` must not await.
   */
  view<T>(fn: (tx: ReadTx) => T): T {
    return fn(this.reader);
  }

  /** Updates committed and not yet known to be on disk (group durability; always 0 otherwise). */
  get unsynced(): number {
    return this.group?.unsynced ?? 0;
  }

  /**
   * Resolves once every update made before the call is on disk: at once with commit durability
   * or when nothing is waiting to be synced; otherwise after one sync (on a worker thread, never
   * blocking this one) that covers it, shared with every caller waiting meanwhile. Rejects with
   * the sync's error.
   */
  durable(): Promise<void> {
    return this.group?.durable() ?? Promise.resolve();
  }

  /**
   * Runs `fn` in one synchronous write transaction: all of its writes commit together, or none
   * do if it throws; durable at once, or at the next {@link durable} with group durability.
   * Commit listeners run after the commit.
   */
  update<T>(fn: (tx: WriteTx) => T): T {
    let deletions = false;
    const env = this.env;
    const tx: WriteTx = {
      ...this.reader,
      put: (key, value) => void env.putSync(key, value),
      remove: (key) => env.removeSync(key),
      ensureNamespace: (ns) => {
        const k = namespaceKey(ns);
        if (!env.doesExist(k)) env.putSync(k, { labels: {}, createdAt: Date.now() } satisfies NamespaceRecord);
      },
      markDeletion: () => {
        deletions = true;
      },
    };
    const result = env.transactionSync(() => fn(tx), this.group ? NOSYNC_TXN_FLAGS : undefined);
    // Writes nobody awaits (a task's exit, a collection) reach the disk soon all the same.
    this.group?.committedOne();
    const mutation: Mutation = { deletions };
    for (const l of this.listeners) {
      try {
        l(mutation);
      } catch {
        // A listener's failure must not turn a committed write into an error for the caller.
      }
    }
    return result;
  }

  /** Registers a listener called after every committed write transaction; returns its remover. */
  onCommit(listener: (m: Mutation) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Closes the environment; pending transactions have committed by then (all are synchronous). */
  async close(): Promise<void> {
    await this.group?.close();
    await this.env.close();
  }
}

/**
 * The reads of a transaction over `env`. lmdb-js serves every read of one synchronous run from
 * the same read transaction (or from the write transaction inside `transactionSync`), so one
 * object serves them all. `has` asks lmdb whether the key is there without decoding the value
 * (with `get`, a blob's existence check on every Read call decoded its record: a third of the
 * check's cost).
 */
function readTx(env: RootDatabase<unknown, Key>): ReadTx {
  return {
    get: <T>(key: Key) => env.get(key) as T | undefined,
    has: (key) => env.doesExist(key),
    range: function* <T>(prefix: Key) {
      for (const entry of env.getRange({ start: prefix })) {
        const key = asKey(entry.key);
        if (!startsWith(key, prefix)) return;
        yield { key, value: entry.value as T };
      }
    },
    hasUnder: (prefix) => {
      for (const entry of env.getRange({ start: prefix })) {
        const key = asKey(entry.key);
        if (!startsWith(key, prefix)) return false;
        if (key.length > prefix.length) return true;
      }
      return false;
    },
  };
}
