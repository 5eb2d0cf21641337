import { namespaces as api } from '@berth/api';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { METADATA_PLUGIN_TYPE, NamespaceStoreToken } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { NamespacesService, NamespacesServiceToken } from './namespaces-service';

/** `io.containerd.service.v1 namespaces-service`: the in-process service. */
export const namespacesServicePlugin = definePlugin<undefined, NamespacesService>({
  type: 'io.containerd.service.v1',
  id: 'namespaces-service',
  requires: [EVENT_PLUGIN_TYPE, METADATA_PLUGIN_TYPE],
  provides: [NamespacesServiceToken],
  init: (ctx) => new NamespacesService(ctx.get(NamespaceStoreToken), ctx.get(PublisherToken), ctx.logger),
});

/** `io.containerd.grpc.v1 namespaces`: containerd.services.namespaces.v1.Namespaces. */
export const namespacesGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'namespaces',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(NamespacesServiceToken);
    const service = createService(
      api.NamespacesService,
      {
        get: async (req) => ({ namespace: await svc.get(req.name) }),
        list: async () => ({ namespaces: await svc.list() }),
        create: async (req, call) => ({ namespace: await svc.create(call, toNamespace(req.namespace)) }),
        update: async (req, call) => {
          await svc.update(call, toNamespace(req.namespace), req.updateMask ?? []);
          return { namespace: { name: '', labels: {} } };
        },
        delete: async (req, call) => {
          await svc.delete(call, req.name);
          return {};
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});

function toNamespace(ns: api.Namespace | undefined): { name: string; labels: Record<string, string> } {
  return { name: ns?.name ?? '', labels: { ...(ns?.labels ?? {}) } };
}
