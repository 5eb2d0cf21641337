import { context } from '@berth/context';
import { ContentServiceToken } from '@berth/content';
import { GcSchedulerToken } from '@berth/gc';
import { NamespaceStoreToken } from '@berth/metadata';
import { DaemonMetricsSources, MONITOR_PLUGIN_TYPE, MetricsContributor, Registry, registerDaemonMetrics } from '@berth/metrics';
import type { LoadedPlugins } from '@berth/plugin/loader';
import type { Token } from '@berth/plugin';
import { SnapshotsServiceToken } from '@berth/snapshots';
import type { GrpcServerMetrics } from '@berth/metrics';

/** Resolves a token of a plugin that loaded; undefined otherwise. */
function loaded<T>(plugins: LoadedPlugins, t: Token<T>): T | undefined {
  return plugins.container.isRegistered(t, true) ? plugins.container.resolve(t) : undefined;
}

/** Wires the daemon's figures (gc, content, snapshots) to the services of the plugins that loaded. */
export function daemonMetricsSources(plugins: LoadedPlugins): DaemonMetricsSources {
  const gc = loaded(plugins, GcSchedulerToken);
  const namespaces = loaded(plugins, NamespaceStoreToken);
  const content = loaded(plugins, ContentServiceToken);
  const snapshots = loaded(plugins, SnapshotsServiceToken);
  return {
    gc: gc && (() => gc.stats()),
    namespaces: namespaces && (() => namespaces.list()),
    content:
      content &&
      (async (namespace) => {
        const infos = await content.list(context({ namespace }));
        return { blobs: infos.length, bytes: infos.reduce((n, i) => n + i.size, 0) };
      }),
    snapshots:
      snapshots &&
      (async (namespace) => {
        const out: Record<string, number> = {};
        for (const name of snapshots.names()) out[name] = (await snapshots.list(context({ namespace }), name)).length;
        return out;
      }),
  };
}

/**
 * Builds the /v1/metrics registry: gRPC, the daemon's figures, and what monitor plugins add;
 * `dispose` stops its samplers.
 */
export function buildRegistry(plugins: LoadedPlugins, grpc: GrpcServerMetrics): { registry: Registry; dispose: () => void } {
  const registry = new Registry();
  grpc.register(registry);
  const dispose = registerDaemonMetrics(registry, daemonMetricsSources(plugins));
  for (const instance of plugins.ofType<Partial<MetricsContributor>>(MONITOR_PLUGIN_TYPE).values()) instance.registerMetrics?.(registry);
  return { registry, dispose };
}
