import { EVENT_PLUGIN_TYPE, PublisherToken, SubscriberToken } from '@berth/events';
import { SkipPluginError, definePlugin, token } from '@berth/plugin';
import { RUNTIME_V2_PLUGIN_TYPE, TaskManagerToken } from '@berth/runtime';
import { context } from '@berth/context';
import type { Registry } from 'prom-client';
import { CgroupsMonitor } from './cgroups-monitor';

export const MONITOR_PLUGIN_TYPE = 'io.containerd.monitor.v1';

/** A plugin instance that adds collectors to the daemon's /v1/metrics registry. */
export interface MetricsContributor {
  registerMetrics(registry: Registry): void;
}

/** The cgroups monitor instance: task figures, OOM reports, and its metrics. */
export interface CgroupsMonitorPlugin extends MetricsContributor {
  readonly monitor: CgroupsMonitor;
}

export const CgroupsMonitorToken = token<CgroupsMonitorPlugin>(`${MONITOR_PLUGIN_TYPE}/cgroups`);

/** `[plugins."io.containerd.monitor.v1.cgroups"]`, containerd's key. */
export interface CgroupsMonitorConfig {
  /** Leaves the task metrics out of /v1/metrics. Default false. */
  no_prometheus: boolean;
}

/**
 * `io.containerd.monitor.v1 cgroups`: watches every task's cgroup for OOM kills (publishing
 * `/tasks/oom` when the shim does not) and provides containerd's `container_*` task metrics.
 * Skipped on a host without a cgroup hierarchy.
 */
export const cgroupsMonitorPlugin = definePlugin<CgroupsMonitorConfig, CgroupsMonitorPlugin>({
  type: MONITOR_PLUGIN_TYPE,
  id: 'cgroups',
  requires: [EVENT_PLUGIN_TYPE, RUNTIME_V2_PLUGIN_TYPE],
  config: { defaults: () => ({ no_prometheus: false }) },
  provides: [CgroupsMonitorToken],
  init: (ctx) => {
    const tasks = ctx.get(TaskManagerToken);
    const all = context();
    const monitor = new CgroupsMonitor({
      tasks: () => tasks.list(all, true),
      publisher: ctx.get(PublisherToken),
      subscriber: ctx.get(SubscriberToken),
      logger: ctx.logger,
    });
    const version = monitor.version;
    if (version === undefined) throw new SkipPluginError('no cgroup hierarchy is mounted');
    monitor.start();
    ctx.onClose(() => monitor.close());
    return {
      monitor,
      registerMetrics: (registry) => {
        if (ctx.config.no_prometheus) return;
        // Loaded here: prom-client is needed only by a daemon that serves metrics.
        const { registerTaskMetrics } = require('./task-metrics') as typeof import('./task-metrics');
        registerTaskMetrics(registry, monitor, version);
      },
    };
  },
});
