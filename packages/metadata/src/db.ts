import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, RootDatabase } from 'lmdb';
import { DataLossError, FailedPreconditionError } from '@berth/errdefs';
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

/** lmdb-js's flags for a synchronous write transaction (abortable, synchronous commit)... */
const TXN_SYNC_FLAGS = 3;
/** ... and LMDB's MDB_NOSYNC, which commits it without flushing. */
const MDB_NOSYNC = 0x10000;

/** With group durability, how long an update waits at most for a sync nobody asked for. */
const BACKGROUND_SYNC_MS = 200;

/** The native environment's asynchronous sync (mdb_env_sync on a worker thread). */
interface NativeEnv {
  sync(callback: (err?: unknown) => void): void;
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
  /** Group durability: updates committed so far, and how many of them the last sync covered. */
  private committed = 0;
  private synced = 0;
  private syncing = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly waiters: Array<{ upTo: number; resolve: () => void; reject: (err: unknown) => void }> = [];

  private constructor(
    readonly path: string,
    private readonly env: RootDatabase<unknown, Key>,
    readonly durability: 'commit' | 'group',
  ) {}

  /** Opens (creating if needed) the database in a directory and brings its schema up to date. */
  static open(dir: string, options: OpenOptions = {}): MetadataDb {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'meta.lmdb');
    // lmdb-js's default "overlapping sync" makes a commit flagged MDB_NOSYNC sync the file all the
    // same, on the committing thread, after it releases the write lock (lmdb's mdb_txn_commit): with
    // it every group update cost an fdatasync on the event loop, 10 to 100 ms under load. Plain
    // LMDB commits it without a sync, and the grouped env sync (a worker thread) flushes it.
    const env = open<unknown, Key>({ path, compression: false, maxDbs: 4, overlappingSync: false });
    const db = new MetadataDb(path, env, options.durability ?? 'commit');
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
    return fn(this.readTx());
  }

  /** Updates committed and not yet known to be on disk (group durability; always 0 otherwise). */
  get unsynced(): number {
    return this.committed - this.synced;
  }

  /**
   * Resolves once every update made before the call is on disk: at once with commit durability
   * or when nothing is waiting to be synced; otherwise after one sync (on a worker thread, never
   * blocking this one) that covers it, shared with every caller waiting meanwhile. Rejects with
   * the sync's error.
   */
  durable(): Promise<void> {
    if (this.synced >= this.committed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo: this.committed, resolve, reject });
      this.syncSoon();
    });
  }

  /** Starts a sync unless one runs; when it ends, wakes the waiters it covered and starts the next. */
  private syncSoon(): void {
    if (this.syncing || this.waiters.length === 0) return;
    this.syncing = true;
    const upTo = this.committed;
    (this.env as unknown as { env: NativeEnv }).env.sync((err) => {
      this.syncing = false;
      if (!err) this.synced = Math.max(this.synced, upTo);
      for (const w of this.waiters.splice(0)) {
        if (err) w.reject(new DataLossError(`metadata database ${this.path}: sync failed`, { cause: err }));
        else if (w.upTo <= upTo) w.resolve();
        else this.waiters.push(w); // committed after this sync began: the next one covers it
      }
      this.syncSoon();
    });
  }

  /**
   * Runs `fn` in one synchronous write transaction: all of its writes commit together, or none
   * do if it throws; durable at once, or at the next {@link durable} with group durability.
   * Commit listeners run after the commit.
   */
  update<T>(fn: (tx: WriteTx) => T): T {
    let deletions = false;
    const env = this.env;
    const read = this.readTx();
    const tx: WriteTx = {
      ...read,
      put: (key, value) => void env.putSync(key, value),
      remove: (key) => env.removeSync(key),
      ensureNamespace: (ns) => {
        const k = namespaceKey(ns);
        if (env.get(k) === undefined) env.putSync(k, { labels: {}, createdAt: Date.now() } satisfies NamespaceRecord);
      },
      markDeletion: () => {
        deletions = true;
      },
    };
    const group = this.durability === 'group';
    const result = env.transactionSync(() => fn(tx), group ? TXN_SYNC_FLAGS | MDB_NOSYNC : undefined);
    if (group) {
      this.committed++;
      // Writes nobody awaits (a task's exit, a collection) reach the disk soon all the same.
      this.syncTimer ??= setTimeout(() => {
        this.syncTimer = undefined;
        this.durable().catch(() => undefined);
      }, BACKGROUND_SYNC_MS).unref();
    }
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
    clearTimeout(this.syncTimer);
    await this.durable().catch(() => undefined);
    await this.env.close();
  }

  private readTx(): ReadTx {
    const env = this.env;
    return {
      get: <T>(key: Key) => env.get(key) as T | undefined,
      has: (key) => env.get(key) !== undefined,
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
}
