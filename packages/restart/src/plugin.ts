import { ContainersServiceToken } from '@berth/containers';
import { InvalidArgumentError } from '@berth/errdefs';
import { EVENT_PLUGIN_TYPE } from '@berth/events';
import { NamespacesServiceToken } from '@berth/namespaces';
import { definePlugin, parseDuration } from '@berth/plugin';
import { SnapshotsServiceToken } from '@berth/snapshots';
import { TasksServiceToken } from '@berth/tasks';
import { RestartMonitor } from './restart-monitor';

export const INTERNAL_PLUGIN_TYPE = 'io.containerd.internal.v1';

/** `[plugins."io.containerd.internal.v1.restart"]`, containerd's key. */
export interface RestartConfig {
  /** Time between passes, a Go duration. Default "10s"; "0s" means the default. */
  interval: string;
}

/**
 * `io.containerd.internal.v1 restart`: containerd's restart monitor, over the in-process
 * services (containerd's plugin builds a client over them too). Reports the policies it knows
 * as capabilities, as containerd.
 */
export const restartPlugin = definePlugin<RestartConfig, RestartMonitor>({
  type: INTERNAL_PLUGIN_TYPE,
  id: 'restart',
  requires: [EVENT_PLUGIN_TYPE, 'io.containerd.service.v1'],
  capabilities: ['no', 'always', 'on-failure', 'unless-stopped'],
  config: {
    defaults: () => ({ interval: '10s' }),
    parse: (section, d) => {
      const v = section.interval ?? d.interval;
      if (typeof v !== 'string') throw new InvalidArgumentError(`interval must be a duration string such as "10s", not ${JSON.stringify(v)}`);
      if (parseDuration(v) < 0) throw new InvalidArgumentError(`interval must not be negative, not ${JSON.stringify(v)}`);
      return { interval: v };
    },
  },
  init: (ctx) => {
    const namespaces = ctx.get(NamespacesServiceToken);
    const snapshots = ctx.get(SnapshotsServiceToken);
    const ms = parseDuration(ctx.config.interval);
    const monitor = new RestartMonitor({
      namespaces: async () => (await namespaces.list()).map((n) => n.name),
      containers: ctx.get(ContainersServiceToken),
      tasks: ctx.get(TasksServiceToken),
      mounts: (c, snapshotter, key) => snapshots.mounts(c, snapshotter, key),
      intervalMs: ms === 0 ? 10_000 : ms,
      logger: ctx.logger,
    });
    monitor.start();
    ctx.onClose(() => monitor.close());
    return monitor;
  },
});
