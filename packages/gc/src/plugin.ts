import { InvalidArgumentError } from '@berth/errdefs';
import { GarbageCollectorToken, GcHooksToken, METADATA_PLUGIN_TYPE, MetadataDbToken } from '@berth/metadata';
import { definePlugin, parseDuration, token } from '@berth/plugin';
import { type GcExplanation, type GcObject, MetadataCollector } from './collector';
import { GcScheduler } from './scheduler';

export const GC_PLUGIN_TYPE = 'io.containerd.gc.v1';

/** The scheduler itself (its statistics included), for in-process users and tests. */
export const GcSchedulerToken = token<GcScheduler>(`${GC_PLUGIN_TYPE}/scheduler`);

/** Says why an object is kept, from the collector's own marking (see `MetadataCollector.explain`). */
export interface GcExplainer {
  explain(namespace: string, target: GcObject): GcExplanation;
}

/** The scheduler plugin's collector as an explainer. */
export const GcExplainerToken = token<GcExplainer>(`${GC_PLUGIN_TYPE}/explainer`);

/** `[plugins."io.containerd.gc.v1.scheduler"]`, containerd's keys and defaults. */
export interface SchedulerConfig {
  /** Fraction of time collections may hold the database, at most 0.5. Default 0.02. */
  pause_threshold: number;
  /** Deletions that schedule a collection at once; 0 (default): any deletion when none is pending. */
  deletion_threshold: number;
  /** Mutations that schedule a collection when none is pending; 0 never. Default 100. */
  mutation_threshold: number;
  /** Delay from a trigger to its collection, a Go duration. Default "0s". */
  schedule_delay: string;
  /** Delay from startup to the first collection, a Go duration. Default "100ms". */
  startup_delay: string;
}

function number(section: Record<string, unknown>, key: string, fallback: number): number {
  const v = section[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`${key} must be a non-negative number, not ${JSON.stringify(v)}`);
  return v;
}

function duration(section: Record<string, unknown>, key: string, fallback: string): string {
  const v = section[key] ?? fallback;
  if (typeof v !== 'string') throw new InvalidArgumentError(`${key} must be a duration string such as "100ms", not ${JSON.stringify(v)}`);
  parseDuration(v);
  return v;
}

/**
 * `io.containerd.gc.v1 scheduler`: collects garbage in the metadata database (and then the
 * backends' unreferenced files) when deletions and mutations call for it, within the pause
 * budget; synchronous deletes wait for it through `GarbageCollectorToken` (images) and the
 * metadata plugin's `GcHooks` (leases). Exports the policy as containerd does.
 */
export const schedulerPlugin = definePlugin<SchedulerConfig, GcScheduler>({
  type: GC_PLUGIN_TYPE,
  id: 'scheduler',
  requires: [METADATA_PLUGIN_TYPE],
  config: {
    defaults: () => ({ pause_threshold: 0.02, deletion_threshold: 0, mutation_threshold: 100, schedule_delay: '0s', startup_delay: '100ms' }),
    parse: (section, d) => ({
      pause_threshold: number(section, 'pause_threshold', d.pause_threshold),
      deletion_threshold: number(section, 'deletion_threshold', d.deletion_threshold),
      mutation_threshold: number(section, 'mutation_threshold', d.mutation_threshold),
      schedule_delay: duration(section, 'schedule_delay', d.schedule_delay),
      startup_delay: duration(section, 'startup_delay', d.startup_delay),
    }),
  },
  provides: [GcSchedulerToken],
  init: (ctx) => {
    const c = ctx.config;
    const db = ctx.get(MetadataDbToken);
    const hooks = ctx.get(GcHooksToken);
    const collector = new MetadataCollector(db, hooks, { logger: ctx.logger });
    const scheduler = new GcScheduler(
      () => collector.collect(),
      {
        pauseThreshold: c.pause_threshold,
        deletionThreshold: c.deletion_threshold,
        mutationThreshold: c.mutation_threshold,
        scheduleDelayMs: parseDuration(c.schedule_delay),
        startupDelayMs: parseDuration(c.startup_delay),
      },
      ctx.logger,
    );
    const off = db.onCommit((m) => {
      if (!collector.sweeping) scheduler.mutation(m);
    });
    ctx.provide(GarbageCollectorToken, scheduler);
    ctx.provide(GcExplainerToken, collector);
    hooks.setCollector(scheduler);
    ctx.exports.PauseThreshold = String(c.pause_threshold);
    ctx.exports.DeletionThreshold = String(c.deletion_threshold);
    ctx.exports.MutationThreshold = String(c.mutation_threshold);
    ctx.exports.ScheduleDelay = c.schedule_delay;
    scheduler.start();
    ctx.onClose(async () => {
      off();
      hooks.setCollector(undefined);
      await scheduler.close();
    });
    return scheduler;
  },
});
