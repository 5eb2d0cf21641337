import { berthGc, berthNamespaces } from '@berth/api';
import { ContainersServiceToken } from '@berth/containers';
import { ContentServiceToken } from '@berth/content';
import { GC_PLUGIN_TYPE, GcExplainerToken } from '@berth/gc';
import { GRPC_PLUGIN_TYPE, type GrpcServicePlugin, createService } from '@berth/grpc';
import { ImagesServiceToken } from '@berth/images';
import { LeasesServiceToken } from '@berth/leases';
import { GarbageCollectorToken } from '@berth/metadata';
import { NamespacesServiceToken } from '@berth/namespaces';
import { InvalidArgumentError } from '@berth/errdefs';
import { definePlugin, parseDuration } from '@berth/plugin';
import { SnapshotsServiceToken } from '@berth/snapshots';
import { TasksServiceToken } from '@berth/tasks';
import { type GcAdmin, GcAdminService, GcAdminServiceToken, explainTarget } from './gc-admin';
import { type NamespaceAdmin, NamespaceAdminService, NamespaceAdminServiceToken, type SharedSize } from './namespace-admin';

const SERVICE_PLUGIN_TYPE = 'io.containerd.service.v1';

/** `[plugins."io.containerd.service.v1.berth-namespaces-service"]`. */
export interface NamespaceAdminConfig {
  /**
   * How long a cascading delete waits for a task to exit once it sent SIGKILL (resuming a paused
   * task included) before it stops with DeadlineExceeded naming the task; a Go duration. Default "10s".
   */
  kill_timeout: string;
}

/**
 * `io.containerd.service.v1 berth-namespaces-service`: namespace delete with cascade and usage,
 * over the other services (it requires its own type, so it loads after the services registered
 * before it: register it after them).
 */
export const namespaceAdminServicePlugin = definePlugin<NamespaceAdminConfig, NamespaceAdmin>({
  type: SERVICE_PLUGIN_TYPE,
  id: 'berth-namespaces-service',
  requires: [SERVICE_PLUGIN_TYPE],
  provides: [NamespaceAdminServiceToken],
  config: {
    defaults: () => ({ kill_timeout: '10s' }),
    parse: (section, d) => {
      const v = section.kill_timeout ?? d.kill_timeout;
      if (typeof v !== 'string' || parseDuration(v) <= 0) throw new InvalidArgumentError(`kill_timeout must be a positive duration such as "10s", not ${JSON.stringify(v)}`);
      return { kill_timeout: v };
    },
  },
  init: (ctx) =>
    new NamespaceAdminService({
      killTimeoutMs: parseDuration(ctx.config.kill_timeout),
      namespaces: ctx.get(NamespacesServiceToken),
      tasks: ctx.get(TasksServiceToken),
      containers: ctx.get(ContainersServiceToken),
      images: ctx.get(ImagesServiceToken),
      leases: ctx.get(LeasesServiceToken),
      snapshots: ctx.get(SnapshotsServiceToken),
      content: ctx.get(ContentServiceToken),
      logger: ctx.logger,
    }),
});

/** `io.containerd.service.v1 berth-gc-service`: collect now and explain, over the gc scheduler. */
export const gcAdminServicePlugin = definePlugin<undefined, GcAdmin>({
  type: SERVICE_PLUGIN_TYPE,
  id: 'berth-gc-service',
  requires: [SERVICE_PLUGIN_TYPE, GC_PLUGIN_TYPE],
  provides: [GcAdminServiceToken],
  init: (ctx) =>
    new GcAdminService({
      collector: ctx.get(GarbageCollectorToken),
      explainer: ctx.get(GcExplainerToken),
      namespaces: ctx.get(NamespacesServiceToken),
      snapshots: ctx.get(SnapshotsServiceToken),
    }),
});

/** `io.containerd.grpc.v1 berth-namespaces`: berth.services.namespaces.v1.Namespaces. */
export const namespaceAdminGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'berth-namespaces',
  requires: [SERVICE_PLUGIN_TYPE],
  init: (ctx) => {
    const svc = ctx.get(NamespaceAdminServiceToken);
    const service = createService(
      berthNamespaces.NamespacesService,
      {
        delete: (req, call) => svc.delete(call, req.name, { cascade: req.cascade }),
        usage: async (req, call) => {
          const report = await svc.usage(call, req.name);
          return {
            namespaces: report.namespaces.map((ns) => ({ ...ns, snapshots: shared(ns.snapshots), content: shared(ns.content), snapshotters: ns.snapshotters.map((s) => ({ snapshotter: s.snapshotter, snapshots: shared(s.snapshots) })) })),
            snapshots: report.snapshots,
            content: report.content,
            ingests: report.ingests,
          };
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});

const shared = (s: SharedSize): berthNamespaces.SharedSize => ({ total: s.total, shared: s.shared, exclusive: s.exclusive });

/** `io.containerd.grpc.v1 berth-gc`: berth.services.gc.v1.GC. */
export const gcAdminGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'berth-gc',
  requires: [SERVICE_PLUGIN_TYPE],
  init: (ctx) => {
    const svc = ctx.get(GcAdminServiceToken);
    const service = createService(
      berthGc.GCService,
      {
        collect: async (_req, call) => {
          const stats = await svc.collect(call);
          return {
            startedAt: new Date(stats.startedAt),
            pauseMs: stats.pauseMs,
            backendMs: stats.backendMs,
            totalMs: stats.totalMs,
            removed: { ...stats.removed },
            skipped: stats.skipped,
            backendRemoved: stats.backendRemoved,
          };
        },
        explain: async (req, call) => {
          const e = await svc.explain(call, explainTarget(req));
          return {
            referenced: e.referenced,
            skipped: e.skipped,
            chain: e.chain.map((l) => ({ kind: l.kind, id: [...l.id], via: l.via })),
            keptBy: e.keptBy.map((r) => ({ kind: r.kind, id: [...r.id], via: 'root' })),
          };
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
