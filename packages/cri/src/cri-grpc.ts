import type * as Cri from '@berth/api/cri';
import { isNotFound } from '@berth/errdefs';
import { type GrpcService, createService } from '@berth/grpc';
import type { Logger } from '@berth/log';
import { imageServiceDefinition, runtimeServiceDefinition } from './definitions';
import { ociImageSpecView } from './image-spec';
import type { CriImage, CriImageService } from './image-service';
import type { RuntimeInfo } from './runtime-info';

/** `CgroupDriver.CGROUPFS` (the enum's values are in the lazily loaded module). */
const CGROUPFS = 1 as Cri.CgroupDriver;

function toImage(i: CriImage): Cri.Image {
  return {
    id: i.id,
    repoTags: i.repoTags,
    repoDigests: i.repoDigests,
    size: i.size,
    ...(i.uid !== undefined ? { uid: { value: i.uid } } : {}),
    username: i.username,
    pinned: false,
  };
}

/**
 * runtime.v1.RuntimeService over gRPC: Version, Status and RuntimeConfig; every other method
 * (pods, containers, streaming, stats, events, checkpoints) answers UNIMPLEMENTED until Berth
 * has it.
 */
export function createRuntimeGrpcService(info: RuntimeInfo, logger: Logger): GrpcService {
  return createService(
    runtimeServiceDefinition(),
    {
      version: async () => info.version(),
      status: async (req) => {
        const s = await info.status(req.verbose);
        return {
          status: { conditions: s.conditions },
          info: s.info,
          runtimeHandlers: s.handlers.map((name) => ({ name, features: { recursiveReadOnlyMounts: false, userNamespaces: false } })),
          features: { supplementalGroupsPolicy: false, userNamespacesHostNetwork: false, mountOptions: false },
        };
      },
      // critest sends cgroup parent "" only when it reads CGROUPFS here; 0 would mean SYSTEMD.
      runtimeConfig: async () => ({ linux: { cgroupDriver: CGROUPFS } }),
    },
    logger,
  );
}

/** runtime.v1.ImageService over gRPC. */
export function createImageGrpcService(images: CriImageService, logger: Logger): GrpcService {
  return createService(
    imageServiceDefinition(),
    {
      listImages: async (req, call) => {
        const wanted = req.filter?.image?.image ?? '';
        if (wanted === '') return { images: (await images.list(call)).map(toImage) };
        const one = await images.get(call, wanted).catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
        return { images: one ? [toImage(one)] : [] };
      },
      imageStatus: async (req, call) => {
        // A missing image is not an error: the answer has no image (kubelet then pulls).
        const image = await images.get(call, req.image?.image ?? '').catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
        if (!image) return { info: {} };
        const info: Record<string, string> = req.verbose ? { info: JSON.stringify({ chainID: image.chainId, imageSpec: ociImageSpecView(image.spec) }) } : {};
        return { image: toImage(image), info };
      },
      pullImage: async (req, call) => {
        const imageRef = await images.pull(call, req.image?.image ?? '', req.auth);
        return { imageRef };
      },
      removeImage: async (req, call) => {
        await images.remove(call, req.image?.image ?? '');
        return {};
      },
      imageFsInfo: async (_req, call) => {
        const fs = await images.fsInfo(call);
        return {
          imageFilesystems: [
            {
              timestamp: Number(fs.timestampNs),
              fsId: { mountpoint: fs.mountpoint },
              usedBytes: { value: fs.usedBytes },
              inodesUsed: { value: fs.inodesUsed },
            },
          ],
          containerFilesystems: [],
        };
      },
    },
    logger,
  );
}
