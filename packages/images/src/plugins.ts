import { images as api, Empty } from '@berth/api';
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { GarbageCollectorToken, ImageInput, ImageStoreToken, METADATA_PLUGIN_TYPE, type GarbageCollector, type Image } from '@berth/metadata';
import { SkipPluginError, definePlugin } from '@berth/plugin';
import { ImagesService, ImagesServiceToken } from './service';

/**
 * `io.containerd.service.v1 images-service`: the in-process service. A sync delete waits for the
 * garbage collector (`io.containerd.gc.v1 scheduler`); with that plugin disabled it returns once
 * the delete has committed.
 */
export const imagesServicePlugin = definePlugin<undefined, ImagesService>({
  type: 'io.containerd.service.v1',
  id: 'images-service',
  requires: [METADATA_PLUGIN_TYPE, 'io.containerd.gc.v1', EVENT_PLUGIN_TYPE],
  provides: [ImagesServiceToken],
  init: (ctx) => {
    let collector: GarbageCollector | undefined;
    try {
      collector = ctx.get(GarbageCollectorToken);
    } catch (err) {
      if (!(err instanceof SkipPluginError)) throw err;
    }
    return new ImagesService(ctx.get(ImageStoreToken), ctx.get(PublisherToken), ctx.logger, {
      collectGarbage: collector ? async (c) => void (await collector.scheduleAndWait(c)) : undefined,
    });
  },
});

/** `io.containerd.grpc.v1 images`: containerd.services.images.v1.Images. */
export const imagesGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'images',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(ImagesServiceToken);
    const service = createService(
      api.ImagesService,
      {
        get: async (req, call) => ({ image: toApi(await svc.get(call, req.name)) }),
        list: async (req, call) => ({ images: (await svc.list(call, req.filters)).map(toApi) }),
        create: async (req, call) => ({ image: toApi(await svc.create(call, fromApi(req.image))) }),
        update: async (req, call) => ({ image: toApi(await svc.update(call, fromApi(req.image), req.updateMask ?? [])) }),
        delete: async (req, call): Promise<Empty> => {
          await svc.delete(call, req.name, { sync: req.sync });
          return {};
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});

/** A request's image; absent parts are Go's zero values, as containerd sees them. */
function fromApi(image: api.Image | undefined): ImageInput {
  const t = image?.target;
  return {
    name: image?.name ?? '',
    labels: { ...(image?.labels ?? {}) },
    target: { mediaType: t?.mediaType ?? '', digest: t?.digest ?? '', size: t?.size ?? 0, annotations: { ...(t?.annotations ?? {}) } },
  };
}

function toApi(image: Image): api.Image {
  return {
    name: image.name,
    labels: image.labels,
    target: { ...image.target },
    createdAt: image.createdAt,
    updatedAt: image.updatedAt,
  };
}
