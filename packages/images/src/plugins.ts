import { images as api, Empty } from '@berth/api';
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { ImageInput, ImageStoreToken, METADATA_PLUGIN_TYPE, type Image } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { ImagesService, ImagesServiceToken } from './service';

/**
 * `io.containerd.service.v1 images-service`: the in-process service. containerd lists the
 * garbage collector's type too (a sync delete waits for it); requiring a type with no plugin
 * only orders the load, so it is declared now and used once a collector exists.
 */
export const imagesServicePlugin = definePlugin<undefined, ImagesService>({
  type: 'io.containerd.service.v1',
  id: 'images-service',
  requires: [METADATA_PLUGIN_TYPE, 'io.containerd.gc.v1', EVENT_PLUGIN_TYPE],
  provides: [ImagesServiceToken],
  init: (ctx) => new ImagesService(ctx.get(ImageStoreToken), ctx.get(PublisherToken), ctx.logger),
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
