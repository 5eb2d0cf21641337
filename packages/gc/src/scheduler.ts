import { type Context, context } from '@berth/context';
import { UnknownError } from '@berth/errdefs';
import { type Logger, nullLogger } from '@berth/log';
import type { CollectionStats, GarbageCollector, Mutation } from '@berth/metadata';

/** The scheduling policy (containerd's `io.containerd.gc.v1 scheduler` settings). Times in ms. */
export interface SchedulerPolicy {
  /** Fraction of wall time collections may hold the database; clamped to (0, 0.5]. Default 0.02. */
  pauseThreshold: number;
  /** Deletions that schedule a collection at once (0: none; any deletion then schedules one when none is pending). Default 0. */
  deletionThreshold: number;
  /** Mutations that schedule a collection when none is pending (0: never). Default 100. */
  mutationThreshold: number;
  /** Delay between a trigger and the collection. Default 0. */
  scheduleDelayMs: number;
  /** Delay from start to the first collection (0: none until something schedules one). Default 100. */
  startupDelayMs: number;
}

export const DEFAULT_POLICY: SchedulerPolicy = {
  pauseThreshold: 0.02,
  deletionThreshold: 0,
  mutationThreshold: 100,
  scheduleDelayMs: 0,
  startupDelayMs: 100,
};

/** What the scheduler keeps about past collections. */
export interface SchedulerStats {
  collections: number;
  /** Sum of the collections' pauses (ms). */
  pauseMs: number;
  /** The interval the policy currently imposes between collections (ms). */
  intervalMs: number;
  /** The most recent collections, oldest first (at most 64). */
  recent: Array<CollectionStats & { endedAt: number; triggered: boolean }>;
  failures: number;
}

const HISTORY = 64;

/** Formats milliseconds as Go prints a time.Duration ("1.5ms", "250µs", "2.1s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 0.001) return `${Math.round(ms * 1e6)}ns`;
  if (ms < 1) return `${+(ms * 1000).toFixed(3)}µs`;
  if (ms < 1000) return `${+ms.toFixed(6)}ms`;
  return `${+(ms / 1000).toFixed(9)}s`;
}

/**
 * containerd's collection scheduler. Committed metadata writes are reported as mutations (with
 * `deletions` when they deleted something); synchronous deletes trigger a collection and wait
 * for it. Rules:
 *
 * - `startupDelayMs` after start, the first collection runs (it always runs, so orphans a
 *   crash left behind are removed).
 * - A trigger schedules a collection after `scheduleDelayMs` (sooner than any pending one).
 * - Reaching `deletionThreshold` (> 0) deletions does the same.
 * - When no collection is pending, any deletion (threshold 0) or `mutationThreshold` mutations
 *   schedule one after `scheduleDelayMs`.
 * - When a pending collection comes due with no trigger, no deletion and too few mutations, it is
 *   skipped and checked again one interval later.
 * - After each collection the next one is due after `interval = avg / pauseThreshold - avg`
 *   (avg: the mean pause so far), so collections hold the database at most `pauseThreshold` of
 *   the time unless a synchronous delete asks for one.
 *
 * Unlike containerd, a waiter is answered only by a collection whose sweep started after it
 * asked, and work reported during a collection's file phase counts towards the next one.
 */
export class GcScheduler implements GarbageCollector {
  private readonly policy: SchedulerPolicy;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private nextAt: number | undefined;
  private triggered = false;
  private deletions = 0;
  private mutations = 0;
  private collected = false;
  private intervalMs = 1000;
  private running: Promise<void> | undefined;
  private fireAfterRun = false;
  private closed = false;
  private waiters: Array<{ resolve: (s: CollectionStats) => void; reject: (e: Error) => void }> = [];
  private readonly kept: SchedulerStats = { collections: 0, pauseMs: 0, intervalMs: 1000, recent: [], failures: 0 };

  constructor(
    private readonly collect: () => Promise<CollectionStats>,
    policy: Partial<SchedulerPolicy> = {},
    logger: Logger = nullLogger,
  ) {
    const p = { ...DEFAULT_POLICY, ...policy };
    p.pauseThreshold = Math.min(p.pauseThreshold, 0.5);
    this.policy = p;
    this.logger = logger;
  }

  /** Starts the clock: the first collection runs `startupDelayMs` from now. */
  start(): void {
    if (this.policy.startupDelayMs > 0) this.schedule(this.policy.startupDelayMs);
  }

  /** Reports a committed write (what MetadataDb.onCommit delivers). */
  mutation(m: Mutation): void {
    this.event(m.deletions, false);
  }

  async scheduleAndWait(_ctx: Context = context()): Promise<CollectionStats> {
    if (this.closed) throw new UnknownError('garbage collector is closed');
    const done = new Promise<CollectionStats>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.event(false, true);
    return done;
  }

  async collectNow(_ctx: Context = context()): Promise<CollectionStats> {
    if (this.closed) throw new UnknownError('garbage collector is closed');
    const done = new Promise<CollectionStats>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.triggered = true;
    this.schedule(0);
    return done;
  }

  /** Statistics of past collections (a copy). */
  stats(): SchedulerStats {
    return { ...this.kept, intervalMs: this.intervalMs, recent: [...this.kept.recent] };
  }

  /** Stops scheduling, waits for a running collection; pending waiters get an error. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    for (const w of this.waiters.splice(0)) w.reject(new UnknownError('garbage collector closed before collecting'));
  }

  private event(dirty: boolean, trigger: boolean): void {
    if (this.closed) return;
    if (dirty) this.deletions++;
    if (trigger) this.triggered = true;
    else this.mutations++;
    const { deletionThreshold: dt, mutationThreshold: mt, scheduleDelayMs } = this.policy;
    // A running collection counts as pending: what happens meanwhile waits for its interval.
    const idle = this.nextAt === undefined && !this.running;
    if (this.triggered || (dt > 0 && this.deletions >= dt) || (idle && ((dt === 0 && this.deletions > 0) || (mt > 0 && this.mutations >= mt)))) {
      if (this.nextAt === undefined || this.nextAt > Date.now() + scheduleDelayMs) this.schedule(scheduleDelayMs);
    }
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, ms);
    this.nextAt = Date.now() + delay;
    this.timer = setTimeout(() => this.fire(), delay);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.nextAt = undefined;
    if (this.closed) return;
    if (this.running) {
      this.fireAfterRun = true;
      return;
    }
    const { mutationThreshold: mt } = this.policy;
    if (!this.triggered && this.collected && this.deletions === 0 && (mt === 0 || this.mutations < mt)) {
      this.schedule(this.intervalMs);
      return;
    }
    this.run();
  }

  private run(): void {
    const waiters = this.waiters.splice(0);
    const triggered = this.triggered;
    this.triggered = false;
    this.deletions = 0;
    this.mutations = 0;
    this.running = (async () => {
      let retryMs: number | undefined;
      try {
        const stats = await this.collect();
        // A collection that had to leave a namespace alone is no complete one: the next due
        // check collects again (at startup, the kinds' owners may not have registered yet).
        if (stats.skipped.length === 0) this.collected = true;
        this.kept.collections++;
        this.kept.pauseMs += stats.pauseMs;
        const { pauseThreshold } = this.policy;
        if (pauseThreshold > 0) {
          const avg = this.kept.pauseMs / this.kept.collections;
          this.intervalMs = avg / pauseThreshold - avg;
        }
        this.kept.recent.push({ ...stats, endedAt: Date.now(), triggered });
        if (this.kept.recent.length > HISTORY) this.kept.recent.shift();
        const { removed, backendRemoved } = stats;
        this.logger.debug('garbage collected', {
          d: formatDuration(stats.pauseMs),
          total: formatDuration(stats.totalMs),
          ...removed,
          ...(stats.skipped.length > 0 ? { skipped: stats.skipped.join(',') } : {}),
          files: Object.values(backendRemoved).reduce((a, b) => a + b, 0),
        });
        for (const w of waiters) w.resolve(stats);
      } catch (err) {
        this.kept.failures++;
        this.logger.error('garbage collection failed', { error: (err as Error).message });
        retryMs = this.intervalMs + 1000;
        for (const w of waiters) w.reject(new UnknownError('gc failed', { cause: err }));
      } finally {
        this.running = undefined;
      }
      if (this.fireAfterRun) {
        this.fireAfterRun = false;
        this.schedule(this.policy.scheduleDelayMs);
      } else {
        this.schedule(retryMs ?? this.intervalMs);
      }
    })();
  }
}
