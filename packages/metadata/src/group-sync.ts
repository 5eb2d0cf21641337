import type { RootDatabase } from 'lmdb';
import { DataLossError } from '@berth/errdefs';

/** lmdb-js's flags for a synchronous write transaction (abortable, synchronous commit)... */
export const TXN_SYNC_FLAGS = 3;
/** ... and LMDB's MDB_NOSYNC, which commits it without flushing. */
export const MDB_NOSYNC = 0x10000;

/**
 * lmdb open options for an environment whose commits are synced in groups. lmdb-js's default
 * "overlapping sync" makes a commit flagged MDB_NOSYNC sync the file all the same, on the
 * committing thread once the write lock is released (lmdb's mdb_txn_commit): on a loaded disk
 * that held the event loop 10 to 100 ms per commit. Without it LMDB commits without a sync, and
 * {@link GroupSync.durable} flushes on a worker thread.
 */
export const GROUP_SYNC_OPEN_OPTIONS = { overlappingSync: false } as const;

/** The native environment's asynchronous sync (mdb_env_sync on a worker thread). */
interface NativeEnv {
  sync(callback: (err?: unknown) => void): void;
}

/** With group durability, how long a commit waits at most for a sync nobody asked for. */
const BACKGROUND_SYNC_MS = 200;

/**
 * Grouped syncs of one lmdb environment whose transactions commit with MDB_NOSYNC: `committed()`
 * after each commit, `durable()` by whoever acknowledges one. A commit is visible at once and
 * survives the process being killed; it is on disk once a `durable()` begun after it resolves.
 */
export class GroupSync {
  /** Commits so far, and how many of them the last sync covered. */
  private commits = 0;
  private synced = 0;
  private syncing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly waiters: Array<{ upTo: number; resolve: () => void; reject: (err: unknown) => void }> = [];

  constructor(
    private readonly env: RootDatabase<unknown, any>,
    private readonly path: string,
  ) {}

  /** Commits not yet known to be on disk. */
  get unsynced(): number {
    return this.commits - this.synced;
  }

  /** Counts a commit; one nobody awaits reaches the disk within 200 ms all the same. */
  committed(): void {
    this.commits++;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.durable().catch(() => undefined);
    }, BACKGROUND_SYNC_MS).unref();
  }

  /**
   * Resolves once every commit counted before the call is on disk: at once when none is waiting;
   * otherwise after one sync (on a worker thread, never blocking this one) that covers it, shared
   * with every caller waiting meanwhile. Rejects with the sync's error.
   */
  durable(): Promise<void> {
    if (this.synced >= this.commits) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo: this.commits, resolve, reject });
      this.syncSoon();
    });
  }

  /** Stops the background timer (the environment is closing). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Starts a sync unless one runs; when it ends, wakes the waiters it covered and starts the next. */
  private syncSoon(): void {
    if (this.syncing || this.waiters.length === 0) return;
    this.syncing = true;
    const upTo = this.commits;
    (this.env as unknown as { env: NativeEnv }).env.sync((err) => {
      this.syncing = false;
      if (!err) this.synced = Math.max(this.synced, upTo);
      for (const w of this.waiters.splice(0)) {
        if (err) w.reject(new DataLossError(`lmdb database ${this.path}: sync failed`, { cause: err }));
        else if (w.upTo <= upTo) w.resolve();
        else this.waiters.push(w); // committed after this sync began: the next one covers it
      }
      this.syncSoon();
    });
  }
}
