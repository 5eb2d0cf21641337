import * as grpc from '@grpc/grpc-js';
import { health, introspection as api } from '@berth/api';
import { NotFoundError } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { definePlugin } from '@berth/plugin';
import { IntrospectionService, IntrospectionServiceToken } from './introspection-service';

/** `io.containerd.service.v1 introspection-service`. */
export const introspectionServicePlugin = definePlugin<undefined, IntrospectionService>({
  type: 'io.containerd.service.v1',
  id: 'introspection-service',
  provides: [IntrospectionServiceToken],
  // The uuid lives where containerd keeps it: <root>/io.containerd.grpc.v1.introspection/uuid.
  init: (ctx) => new IntrospectionService(ctx.plugins, ctx.root.replace(/io\.containerd\.service\.v1\.introspection-service$/, 'io.containerd.grpc.v1.introspection')),
});

/** containerd reports skipped and failed plugins alike with code 2 (Unknown); ctr tells them apart by "skip plugin". */
const INIT_ERROR_CODE = grpc.status.UNKNOWN;

/** `io.containerd.grpc.v1 introspection`: containerd.services.introspection.v1.Introspection. */
export const introspectionGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'introspection',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(IntrospectionServiceToken);
    // The uuid file is made by the first Server call, as containerd does: not at every start on a
    // new root, where its fsync took 5-30 ms of the start here.
    const service = createService(
      api.IntrospectionService,
      {
        plugins: async (req) => ({
          plugins: svc.listPlugins(req.filters).map((r) => ({
            type: r.type,
            id: r.id,
            requires: [...r.requires],
            platforms: r.platforms.map((p) => ({ os: p.os, architecture: p.architecture, variant: p.variant ?? '', osVersion: '', osFeatures: [] })),
            exports: { ...r.exports },
            capabilities: [...r.capabilities],
            initErr: r.status === 'ok' ? undefined : { code: INIT_ERROR_CODE, message: r.error ?? '', details: [] },
          })),
        }),
        // containerd 1.6 sends only the uuid; the 2.x fields (pid, pidns, deprecations) stay unset.
        server: async () => ({ uuid: svc.uuid(), pid: 0, pidns: 0, deprecations: [] }),
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});

/**
 * `io.containerd.grpc.v1 healthcheck`: grpc.health.v1.Health. As containerd's, only the server as
 * a whole (service "") has a status, SERVING while berthd runs; other names are NotFound.
 */
export const healthGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'healthcheck',
  init: (ctx) => {
    const serving = (name: string) => {
      if (name !== '') throw new NotFoundError('unknown service', { bare: true });
      return { status: health.HealthCheckResponse_ServingStatus.SERVING };
    };
    const service = createService(
      health.HealthService,
      {
        check: async (req) => serving(req.service),
        watch: async function* (req, call) {
          yield serving(req.service);
          await new Promise<void>((resolve) => call.signal.addEventListener('abort', () => resolve(), { once: true }));
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
