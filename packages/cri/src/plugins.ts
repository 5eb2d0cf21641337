/**
 * The CRI plugin (`@berth/cri/plugins`): `io.containerd.grpc.v1 cri`, Kubernetes' runtime.v1
 * RuntimeService and ImageService on berthd's main socket, in the containerd namespace `k8s.io`.
 */
import { dirname, join } from 'node:path';
import { runcOptions } from '@berth/api';
import { CniNetworkPlugin } from '@berth/cni';
import { ContainersServiceToken } from '@berth/containers';
import { ContentServiceToken } from '@berth/content';
import { GRPC_PLUGIN_TYPE, type GrpcServicePlugin } from '@berth/grpc';
import { ImagesServiceToken } from '@berth/images';
import { LeasesServiceToken } from '@berth/leases';
import { definePlugin, hostPlatform } from '@berth/plugin';
import { SnapshotsServiceToken } from '@berth/snapshots';
import { TasksServiceToken } from '@berth/tasks';
import { TRANSFER_PLUGIN_TYPE, TransferrerToken } from '@berth/transfer/plugins';
import { type CriConfig, defaultCriConfig, parseCriConfig } from './config';
import { createImageGrpcService, createRuntimeGrpcService } from './cri-grpc';
import { ContainerEvents, type PodSnapshot } from './container-events';
import { CriImageService } from './image-service';
import { ContainerService } from './container-service';
import { RuntimeInfo } from './runtime-info';
import { SandboxService } from './sandbox-service';
import { CriStreamingRuntime } from './streaming-runtime';
import { StreamingServer } from '@berth/cri-streaming';

/** The CRI plugin's instance: its gRPC services, and the end of its event streams. */
export interface CriGrpcPlugin extends GrpcServicePlugin {
  /**
   * Ends every GetContainerEvents stream. The daemon calls it once it has stopped accepting
   * calls, so that the streams, which only end when their client leaves, do not hold up shutdown.
   */
  drain(): void;
}

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
 * 1.6's keys, see {@link CriConfig}). Serves the ImageService and the RuntimeService (pods,
 * containers, streaming through an HTTP server of its own, stats, GetContainerEvents as
 * containerd 2.x sends them); checkpoints and metrics descriptors answer UNIMPLEMENTED. The
 * generated runtime.v1 code loads on the first CRI call, not at start.
 */
export function createCriPlugin(options: CriPluginOptions) {
  return definePlugin<CriConfig, CriGrpcPlugin>({
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
      const networks = new Map<string, CniNetworkPlugin>();
      const network = (confDir: string) => {
        let n = networks.get(confDir);
        if (!n) {
          const { cni } = config;
          n = new CniNetworkPlugin({ binDir: cni.bin_dir, confDir, maxConfNum: cni.max_conf_num, cacheDir: cni.cache_dir, logger: ctx.logger, ...(cni.ip_pref ? { ipPreference: cni.ip_pref as 'ipv4' } : {}) });
          networks.set(confDir, n);
        }
        return n;
      };
      // An event's pod and containers, read as PodSandboxStatus and ContainerStatus would answer.
      // The containers' state is copied at once (eventStatuses reads it before its first await).
      const events: ContainerEvents = new ContainerEvents({
        snapshot: (sandboxId): Promise<PodSnapshot> => {
          const statuses = containers.eventStatuses(sandboxId);
          const sandbox = sandboxes.eventView(sandboxId);
          return Promise.all([sandbox, statuses]).then(([s, c]): PodSnapshot => ({ ...(s ? { sandbox: s } : {}), containers: c }));
        },
        logger: ctx.logger,
      });
      const sandboxes: SandboxService = new SandboxService({
        config,
        rootDir: ctx.root,
        stateDir: ctx.state,
        images: { get: (c, ref) => images.get(c, ref), pull: (c, ref) => images.pull(c, ref) },
        containers: ctx.get(ContainersServiceToken),
        tasks: ctx.get(TasksServiceToken),
        snapshots: ctx.get(SnapshotsServiceToken),
        leases: ctx.get(LeasesServiceToken),
        network: (handler) => network(handler.cni_conf_dir || config.cni.conf_dir),
        runtimeOptions: (options) => (Object.keys(options).length === 0 ? undefined : packRuncOptions(options)),
        events,
        logger: ctx.logger,
      });
      const tasks = ctx.get(TasksServiceToken);
      const containers: ContainerService = new ContainerService({
        rootDir: ctx.root,
        stateDir: ctx.state,
        snapshotter: config.containerd.snapshotter,
        imageFsPath,
        maxLogLineSize: config.max_container_log_line_size,
        restrictOomScoreAdj: config.restrict_oom_score_adj,
        privilegedWithoutHostDevices: (handler) => {
          const runtimes = config.containerd.runtimes;
          const key = handler === '' ? config.containerd.default_runtime_name : handler;
          return Object.prototype.hasOwnProperty.call(runtimes, key) ? runtimes[key].privileged_without_host_devices : false;
        },
        images: { get: (c, ref) => images.get(c, ref) },
        sandboxes: { get: (c, id, what) => sandboxes.get(c, id, what), pausePid: (c, id) => sandboxes.pausePid(c, id), files: (s) => sandboxes.files(s) },
        containers: ctx.get(ContainersServiceToken),
        tasks: {
          create: (c, r) => tasks.create(c, r as never),
          start: (c, r) => tasks.start(c, r as never),
          get: (c, r) => tasks.get(c, r as never) as never,
          kill: (c, r) => tasks.kill(c, r as never),
          wait: (c, r) => tasks.wait(c, r as never),
          delete: (c, r) => tasks.delete(c, r as never),
          exec: (c, r) => tasks.exec(c, r as never),
          deleteProcess: (c, r) => tasks.deleteProcess(c, r as never),
          resizePty: (c, r) => tasks.resizePty(c, r as never),
          closeIO: (c, r) => tasks.closeIO(c, r as never),
          update: (c, r) => tasks.update(c, r as never),
          metrics: (c, r) => tasks.metrics(c, r as never) as never,
        },
        snapshots: {
          prepare: (c, sn, key, parent) => snapshots.prepare(c, sn, key, parent),
          mounts: (c, sn, key) => snapshots.mounts(c, sn, key),
          remove: (c, sn, key) => snapshots.remove(c, sn, key),
          usage: (c, sn, key) => snapshots.usage(c, sn, key),
        },
        leases: ctx.get(LeasesServiceToken),
        events,
        logger: ctx.logger,
      });
      sandboxes.podContainers = containers;
      // Once the daemon serves (the tasks service has reconnected the shims by then).
      setImmediate(() => {
        void containers.restore().catch((err: unknown) => ctx.logger.warn('restoring CRI containers', { error: (err as Error).message }));
        void sandboxes.restore().catch((err: unknown) => ctx.logger.warn('restoring CRI sandboxes', { error: (err as Error).message }));
      });
      // The streaming server listens from the first Exec, Attach or PortForward on (containerd
      // starts it with the plugin): a daemon nobody asks for a stream opens no TCP port.
      const runtime = new CriStreamingRuntime(containers, sandboxes);
      let server: Promise<StreamingServer> | undefined;
      const streaming = {
        runtime,
        server: () => (server ??= StreamingServer.start({ runtime, address: config.stream_server_address, port: config.stream_server_port, logger: ctx.logger })),
      };
      // GetContainerEvents streams last until their client leaves: end them when berthd stops.
      const drain = () => events.close();
      ctx.onClose(async () => {
        drain();
        await (await server?.catch(() => undefined))?.close();
        await containers.close();
      });
      ctx.exports.imageFsPath = imageFsPath;
      return { services: [createRuntimeGrpcService(info, sandboxes, containers, streaming, events, ctx.logger), createImageGrpcService(images, ctx.logger)], drain };
    },
  });
}

/** A handler's `options` table (containerd's TOML names, `BinaryName`...) as `containerd.runc.v1.Options`. */
function packRuncOptions(options: Record<string, unknown>): { typeUrl: string; value: Buffer } {
  const camel = Object.fromEntries(Object.entries(options).map(([k, v]) => [k.charAt(0).toLowerCase() + k.slice(1), v]));
  const message = runcOptions.Options.fromPartial(camel as Parameters<typeof runcOptions.Options.fromPartial>[0]);
  return { typeUrl: 'containerd.runc.v1.Options', value: Buffer.from(runcOptions.Options.encode(message).finish()) };
}
