import { TaskOOM, unpackAnyAs } from '@berth/api/events';
import { context } from '@berth/context';
import type { Publisher, Subscriber, Subscription } from '@berth/events';
import type { Logger } from '@berth/log';
import { CgroupPaths, CgroupStats, cgroupMounts, cgroupPathsOf, readCgroupStats, readOomKills } from './cgroups';

/** A task as the monitor sees it: where it runs, and its init pid. */
export interface MonitoredTask {
  readonly namespace: string;
  readonly id: string;
  readonly pid: number;
}

/** One task's cgroup figures. */
export interface TaskStats {
  namespace: string;
  id: string;
  stats: CgroupStats;
}

export interface CgroupsMonitorOptions {
  /** The tasks to watch, listed afresh on every poll (all namespaces). */
  tasks: () => MonitoredTask[];
  publisher: Publisher;
  /** To hear the shims' own /tasks/oom events, so that an OOM is published once. */
  subscriber?: Subscriber;
  logger: Logger;
  /** How often the OOM counts are read (ms). Default 500. */
  pollMs?: number;
  /**
   * How long after seeing an OOM kill the monitor waits for the task's shim to report it before
   * reporting it itself (ms). Default 2000: the runc shim forwards its report over ttrpc within
   * milliseconds of the kill, and the monitor notices the kill up to `pollMs` later.
   */
  graceMs?: number;
  /** The cgroup mounts; /proc/self/mountinfo's by default. */
  mountinfo?: string;
}

interface Watched {
  pid: number;
  paths?: CgroupPaths;
  /** The OOM kill count last read, and when. */
  oomKills?: number;
  readAt: number;
}

/**
 * containerd's cgroups monitor: the figures of every task's cgroup (cgroup v1 controllers, or the
 * v2 unified directory), and `/tasks/oom` when a task's cgroup counts a new OOM kill.
 *
 * containerd watches v1's memory.oom_control with an eventfd; Node has no eventfd, so the
 * monitor polls the kill count (v1 memory.oom_control `oom_kill`, v2 memory.events `oom_kill`).
 * The runc shim reports OOM kills too (it holds the eventfd), and containerd forwards its event:
 * so an OOM is published here only when the shim has not reported it within `graceMs`, which
 * covers shims that do not watch cgroups, without printing each OOM twice.
 */
export class CgroupsMonitor {
  private readonly watched = new Map<string, Watched>();
  private readonly shimReported = new Map<string, number>();
  private readonly mounts;
  private timer?: NodeJS.Timeout;
  private subscription?: Subscription;
  private polling?: Promise<void>;
  private readonly pending = new Set<NodeJS.Timeout>();
  private closed = false;
  /** OOM events this monitor published itself (not the shims'). */
  published = 0;

  constructor(private readonly opts: CgroupsMonitorOptions) {
    this.mounts = cgroupMounts(opts.mountinfo);
  }

  /** The cgroup version of this host's hierarchy (1 when any v1 controller is mounted). */
  get version(): 1 | 2 | undefined {
    if (this.mounts.some((m) => !m.v2 && m.controllers.includes('memory'))) return 1;
    return this.mounts.some((m) => m.v2) ? 2 : undefined;
  }

  /** Starts polling and listening for the shims' OOM events. */
  start(): void {
    if (this.opts.subscriber) {
      const sub = this.opts.subscriber.subscribe(context(), ['topic=="/tasks/oom"']);
      this.subscription = sub;
      void (async () => {
        try {
          for await (const env of sub) {
            if (!env.event) continue;
            const oom = unpackAnyAs(env.event, TaskOOM);
            this.shimReported.set(`${env.namespace}/${oom.containerId}`, Date.now());
          }
        } catch (err) {
          if (!this.closed) this.opts.logger.warn('cgroups monitor stopped hearing OOM events', { error: (err as Error).message });
        }
      })();
    }
    const tick = () => {
      this.polling = this.poll().finally(() => {
        if (!this.closed) this.timer = setTimeout(tick, this.opts.pollMs ?? 500).unref();
      });
    };
    tick();
  }

  /** Stops polling and pending reports. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
    this.subscription?.close();
    await this.polling;
  }

  private async pathsOf(key: string, task: MonitoredTask): Promise<Watched> {
    let w = this.watched.get(key);
    if (!w || w.pid !== task.pid) {
      w = { pid: task.pid, readAt: 0 };
      this.watched.set(key, w);
    }
    if (!w.paths && task.pid > 0) w.paths = await cgroupPathsOf(task.pid, this.mounts);
    return w;
  }

  private async poll(): Promise<void> {
    const seen = new Set<string>();
    for (const task of this.opts.tasks()) {
      const key = `${task.namespace}/${task.id}`;
      seen.add(key);
      try {
        const w = await this.pathsOf(key, task);
        if (!w.paths) continue;
        // The time before the read: a count read as unchanged was read no earlier than this, so a
        // shim report after it may belong to the next kill (taking the time after the read made
        // such a report look older than the kill, and the OOM was published twice).
        const now = Date.now();
        const kills = await readOomKills(w.paths);
        if (kills === undefined) continue;
        // The first reading is the baseline: kills from before the monitor watched are not new.
        if (w.oomKills !== undefined && kills > w.oomKills) this.oomSeen(task, key, w.readAt);
        w.oomKills = kills;
        w.readAt = now;
      } catch (err) {
        this.opts.logger.debug('reading cgroup', { namespace: task.namespace, id: task.id, error: (err as Error).message });
      }
    }
    for (const key of this.watched.keys()) if (!seen.has(key)) this.watched.delete(key);
    for (const [key, at] of this.shimReported) if (!seen.has(key) && Date.now() - at > 60_000) this.shimReported.delete(key);
  }

  /** A new OOM kill since `since`: report it unless the shim does within the grace period. */
  private oomSeen(task: MonitoredTask, key: string, since: number): void {
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      if ((this.shimReported.get(key) ?? 0) >= since) return;
      this.published++;
      this.opts.logger.info('task OOM not reported by its shim: published by the cgroups monitor', { namespace: task.namespace, id: task.id });
      this.opts.publisher.publish(context({ namespace: task.namespace }), '/tasks/oom', TaskOOM, { containerId: task.id }).catch((err) => {
        this.opts.logger.warn('publishing OOM event', { id: task.id, namespace: task.namespace, error: (err as Error).message });
      });
    }, this.opts.graceMs ?? 2000);
    timer.unref();
    this.pending.add(timer);
  }

  /** Reads every task's cgroup figures. */
  async stats(): Promise<TaskStats[]> {
    const out: TaskStats[] = [];
    for (const task of this.opts.tasks()) {
      const w = await this.pathsOf(`${task.namespace}/${task.id}`, task);
      if (!w.paths) continue;
      const stats = await readCgroupStats(w.paths);
      if (stats) out.push({ namespace: task.namespace, id: task.id, stats });
    }
    return out;
  }
}
