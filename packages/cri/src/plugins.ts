/**
 * The CRI plugin (`@berth/cri/plugins`): `io.containerd.grpc.v1 cri`, Kubernetes' runtime.v1
 * RuntimeService and ImageService on berthd's main socket, in the containerd namespace `k8s.io`.
 */
import { dirname, join } from 'node:path';
import { ContentServiceToken } from '@berth/content';
import { GRPC_PLUGIN_TYPE, type GrpcServicePlugin } from '@berth/grpc';
import { ImagesServiceToken } from '@berth/images';
import { definePlugin, hostPlatform } from '@berth/plugin';
import { SnapshotsServiceToken } from '@berth/snapshots';
import { TRANSFER_PLUGIN_TYPE, TransferrerToken } from '@berth/transfer/plugins';
import { type CriConfig, defaultCriConfig, parseCriConfig } from './config';
import { createImageGrpcService, createRuntimeGrpcService } from './cri-grpc';
import { CriImageService } from './image-service';
import { RuntimeInfo } from './runtime-info';

/** What the daemon tells the CRI plugin about itself. */
export interface CriPluginOptions {
  /**
   * The runtime version Version answers: the same version berthd's containerd Version service
   * gives, so that kubelet (`containerd://<version>`) and ctr see one daemon.
   */
  runtimeVersion: string;
}

/**
 * `io.containerd.grpc.v1 cri`, configured by `[plugins."io.containerd.grpc.v1.cri"]` (containerd
 * 1.6's keys, see {@link CriConfig}). Serves Version, Status, RuntimeConfig and the whole
 * ImageService; the other RuntimeService methods answer UNIMPLEMENTED. The generated runtime.v1
 * code loads on the first CRI call, not at start.
 */
export function createCriPlugin(options: CriPluginOptions) {
  return definePlugin<CriConfig, GrpcServicePlugin>({
    type: GRPC_PLUGIN_TYPE,
    id: 'cri',
    requires: ['io.containerd.service.v1', TRANSFER_PLUGIN_TYPE],
    // containerd lists it with the host's platform (`ctr plugins ls`).
    platforms: [hostPlatform()],
    config: { defaults: defaultCriConfig, parse: (section, d) => parseCriConfig(section, d) },
    init: (ctx) => {
      const config = ctx.config;
      const snapshots = ctx.get(SnapshotsServiceToken);
      // A missing snapshotter fails init, as in containerd.
      const snapshotter = snapshots.snapshotter(config.containerd.snapshotter);
      const containerdRoot = dirname(ctx.root);
      const imageFsPath = join(containerdRoot, `io.containerd.snapshotter.v1.${config.containerd.snapshotter}`);
      const content = ctx.get(ContentServiceToken).store;
      const images = new CriImageService({
        images: ctx.get(ImagesServiceToken),
        content: (c) => content.bind(c),
        snapshotter: { name: config.containerd.snapshotter, snapshotter },
        transferrer: ctx.get(TransferrerToken),
        registryConfigPath: config.registry.config_path,
        imageFsPath,
        logger: ctx.logger,
      });
      const info = new RuntimeInfo({
        config,
        runtimeVersion: options.runtimeVersion,
        paths: { rootDir: ctx.root, stateDir: ctx.state, containerdRootDir: containerdRoot, containerdEndpoint: ctx.address },
      });
      ctx.exports.imageFsPath = imageFsPath;
      return { services: [createRuntimeGrpcService(info, ctx.logger), createImageGrpcService(images, ctx.logger)] };
    },
  });
}
