import type { RootDatabase } from 'lmdb';
import { DataLossError } from '@berth/errdefs';

/** lmdb-js's flags for a synchronous write transaction (abortable, synchronous commit)... */
const TXN_SYNC_FLAGS = 3;
/** ... and LMDB's MDB_NOSYNC, which commits it without flushing. */
const MDB_NOSYNC = 0x10000;

/** The flags for `transactionSync` that commit without flushing (group durability). */
export const NOSYNC_TXN_FLAGS = TXN_SYNC_FLAGS | MDB_NOSYNC;

/**
 * lmdb-js options for an environment whose commits are flushed by a {@link GroupSync}: its
 * overlapping sync would make every commit wait on its own flush machinery, NOSYNC or not (about
 * 1 ms a commit against 0.1 ms without it, measured on this kind of machine).
 */
export const GROUP_SYNC_ENV_OPTIONS = { overlappingSync: false } as const;

/** With group durability, how long a commit waits at most for a sync nobody asked for. */
const BACKGROUND_SYNC_MS = 200;

/** The native environment's asynchronous sync (mdb_env_sync on a worker thread). */
interface NativeEnv {
  sync(callback: (err?: unknown) => void): void;
}

/**
 * Group durability for one lmdb environment whose writes commit with {@link NOSYNC_TXN_FLAGS}:
 * such a commit is visible at once and survives the process being killed (the pages are in the
 * kernel's cache), and reaches the disk at the next sync. {@link durable} resolves once every
 * commit counted before it is on disk, with one `mdb_env_sync` on a worker thread shared by every
 * caller waiting meanwhile; commits nobody awaits are synced within 200 ms.
 */
export class GroupSync {
  private committed = 0;
  private synced = 0;
  private syncing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly waiters: Array<{ upTo: number; resolve: () => void; reject: (err: unknown) => void }> = [];

  /** `what` names the environment in a sync failure (`<what>: sync failed`). */
  constructor(
    private readonly env: RootDatabase<unknown, any>,
    private readonly what: string,
  ) {}

  /** Counts a commit made with {@link NOSYNC_TXN_FLAGS}, and makes sure a sync follows soon. */
  committedOne(): void {
    this.committed++;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.durable().catch(() => undefined);
    }, BACKGROUND_SYNC_MS).unref();
  }

  /** Commits counted and not yet known to be on disk. */
  get unsynced(): number {
    return this.committed - this.synced;
  }

  /**
   * Resolves once every commit counted before the call is on disk (at once when none is waiting
   * for a sync); rejects with DataLoss when the sync fails.
   */
  durable(): Promise<void> {
    if (this.synced >= this.committed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo: this.committed, resolve, reject });
      this.syncSoon();
    });
  }

  /** Ends the background timer, after a last sync of what is pending. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.durable().catch(() => undefined);
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
        if (err) w.reject(new DataLossError(`${this.what}: sync failed`, { cause: err }));
        else if (w.upTo <= upTo) w.resolve();
        else this.waiters.push(w); // committed after this sync began: the next one covers it
      }
      this.syncSoon();
    });
  }
}
