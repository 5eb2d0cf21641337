import { Empty, leases as api } from '@berth/api';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { GcHooksToken, Lease, LeaseManagerToken, LeaseResource, METADATA_PLUGIN_TYPE } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { LeasesService, LeasesServiceToken } from './leases-service';

/**
 * `io.containerd.service.v1 leases-service`: the in-process service. A sync delete waits for the
 * collector through the metadata plugin's hooks (containerd's leases service requires only the
 * metadata plugin type, so the collector's type is not in `requires`).
 */
export const leasesServicePlugin = definePlugin<undefined, LeasesService>({
  type: 'io.containerd.service.v1',
  id: 'leases-service',
  requires: [METADATA_PLUGIN_TYPE],
  provides: [LeasesServiceToken],
  init: (ctx) => {
    const hooks = ctx.get(GcHooksToken);
    return new LeasesService(ctx.get(LeaseManagerToken), { collectGarbage: (c) => hooks.collectGarbage(c) });
  },
});

/** `io.containerd.grpc.v1 leases`: containerd.services.leases.v1.Leases. */
export const leasesGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'leases',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(LeasesServiceToken);
    const done = (_: void): Empty => ({});
    const service = createService(
      api.LeasesService,
      {
        create: async (req, call) => ({ lease: toApi(await svc.create(call, req.id, { ...req.labels })) }),
        delete: async (req, call) => done(await svc.delete(call, req.id, { sync: req.sync })),
        list: async (req, call) => ({ leases: (await svc.list(call, req.filters)).map(toApi) }),
        addResource: async (req, call) => done(await svc.addResource(call, req.id, resourceOf(req.resource))),
        deleteResource: async (req, call) => done(await svc.deleteResource(call, req.id, resourceOf(req.resource))),
        listResources: async (req, call) => ({ resources: await svc.listResources(call, req.id) }),
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});

const resourceOf = (r: api.Resource | undefined): LeaseResource => ({ type: r?.type ?? '', id: r?.id ?? '' });

const toApi = (lease: Lease): api.Lease => ({ id: lease.id, createdAt: lease.createdAt, labels: lease.labels });
