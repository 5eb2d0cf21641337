import { Any, Empty, containers as api } from '@berth/api';
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { AnyValue, Container, ContainerInput, ContainerStoreToken, METADATA_PLUGIN_TYPE } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { RUNTIME_V2_PLUGIN_TYPE, TaskManagerToken } from '@berth/runtime';
import { ContainersService, ContainersServiceToken } from './containers-service';

/** `io.containerd.service.v1 containers-service`: the in-process service. */
export const containersServicePlugin = definePlugin<undefined, ContainersService>({
  type: 'io.containerd.service.v1',
  id: 'containers-service',
  requires: [EVENT_PLUGIN_TYPE, METADATA_PLUGIN_TYPE, RUNTIME_V2_PLUGIN_TYPE],
  provides: [ContainersServiceToken],
  init: (ctx) => new ContainersService(ctx.get(ContainerStoreToken), ctx.get(PublisherToken), ctx.logger, ctx.getAllOf(TaskManagerToken)),
});

/** `io.containerd.grpc.v1 containers`: containerd.services.containers.v1.Containers. */
export const containersGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'containers',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(ContainersServiceToken);
    const service = createService(
      api.ContainersService,
      {
        get: async (req, call) => ({ container: toApi(await svc.get(call, req.id)) }),
        list: async (req, call) => ({ containers: (await svc.list(call, req.filters)).map(toApi) }),
        listStream: async function* (req, call) {
          // One message per container, as containerd streams them.
          for (const c of await svc.list(call, req.filters)) yield { container: toApi(c) };
        },
        create: async (req, call) => ({ container: toApi(await svc.create(call, fromApi(req.container))) }),
        update: async (req, call) => ({ container: toApi(await svc.update(call, fromApi(req.container), req.updateMask ?? [])) }),
        delete: async (req, call): Promise<Empty> => {
          await svc.delete(call, req.id);
          return {};
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});

const anyIn = (a: Any): AnyValue => ({ typeUrl: a.typeUrl, value: Buffer.from(a.value) });
const anyOut = (a: AnyValue): Any => ({ typeUrl: a.typeUrl, value: a.value });

/** A request's container; absent parts are Go's zero values, as containerd sees them. */
function fromApi(c: api.Container | undefined): ContainerInput {
  const options = c?.runtime?.options;
  return {
    id: c?.id ?? '',
    labels: { ...(c?.labels ?? {}) },
    image: c?.image ?? '',
    runtime: options ? { name: c?.runtime?.name ?? '', options: anyIn(options) } : { name: c?.runtime?.name ?? '' },
    spec: c?.spec ? anyIn(c.spec) : undefined,
    snapshotter: c?.snapshotter ?? '',
    snapshotKey: c?.snapshotKey ?? '',
    extensions: Object.fromEntries(Object.entries(c?.extensions ?? {}).map(([k, v]) => [k, anyIn(v)])),
  };
}

function toApi(c: Container): api.Container {
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    runtime: { name: c.runtime.name, options: c.runtime.options ? anyOut(c.runtime.options) : undefined },
    spec: c.spec ? anyOut(c.spec) : undefined,
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    extensions: Object.fromEntries(Object.entries(c.extensions).map(([k, v]) => [k, anyOut(v)])),
  };
}
