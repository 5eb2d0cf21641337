import type * as Cri from '@berth/api/cri';
import { isNotFound } from '@berth/errdefs';
import { type GrpcService, createService } from '@berth/grpc';
import type { Logger } from '@berth/log';
import { imageServiceDefinition, loadCri, runtimeServiceDefinition } from './definitions';
import { toGoJson } from './go-json';
import { ociImageSpecView } from './image-spec';
import type { CriImage, CriImageService } from './image-service';
import type { RuntimeInfo } from './runtime-info';
import { type SandboxService, type SandboxView, goCniResult } from './sandbox-service';

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

const SANDBOX_READY = 0 as Cri.PodSandboxState;
const SANDBOX_NOTREADY = 1 as Cri.PodSandboxState;

function toPodSandbox(v: SandboxView): Cri.PodSandbox {
  const s = v.sandbox;
  return {
    id: s.id,
    metadata: s.config.metadata,
    state: v.ready ? SANDBOX_READY : SANDBOX_NOTREADY,
    createdAt: Number(s.createdAt),
    labels: s.config.labels,
    annotations: s.config.annotations,
    runtimeHandler: s.runtimeHandler,
  };
}

/** PodSandboxStatus's status; the IPs only while the network namespace is open, as containerd. */
function toPodSandboxStatus(v: SandboxView): Cri.PodSandboxStatus {
  const s = v.sandbox;
  const open = s.netnsPath !== '' && !v.netnsClosed;
  const o = s.config.linux?.securityContext?.namespaceOptions;
  return {
    ...toPodSandbox(v),
    network: { ip: open ? s.ip : '', additionalIps: open ? s.additionalIps.map((ip) => ({ ip })) : [] },
    linux: { namespaces: { options: { network: o?.network ?? (0 as Cri.NamespaceMode), pid: o?.pid ?? (0 as Cri.NamespaceMode), ipc: o?.ipc ?? (0 as Cri.NamespaceMode), targetId: o?.targetId ?? '' } } },
  };
}

/** The verbose `info` of PodSandboxStatus, with containerd 1.6's keys. */
function sandboxInfo(v: SandboxView): Record<string, string> {
  const c = v.container;
  const s = v.sandbox;
  let runtimeSpec: unknown = null;
  try {
    runtimeSpec = c?.spec ? JSON.parse(c.spec.value.toString()) : null;
  } catch {
    runtimeSpec = null;
  }
  const info = {
    pid: v.pid,
    processStatus: v.processStatus,
    netNamespaceClosed: v.netnsClosed,
    image: c?.image ?? '',
    snapshotKey: c?.snapshotKey ?? '',
    snapshotter: c?.snapshotter ?? '',
    runtimeHandler: s.runtimeHandler,
    runtimeType: c?.runtime.name ?? '',
    runtimeOptions: null,
    config: toGoJson(loadCri().PodSandboxConfig.fromPartial(s.config)),
    runtimeSpec,
    cniResult: s.cniResult ? goCniResult(s.cniResult) : null,
  };
  return { info: JSON.stringify(info) };
}

/**
 * runtime.v1.RuntimeService over gRPC: Version, Status, RuntimeConfig and the pod sandboxes;
 * every other method (containers, streaming, stats, events, checkpoints) answers UNIMPLEMENTED
 * until Berth has it.
 */
export function createRuntimeGrpcService(info: RuntimeInfo, sandboxes: SandboxService, logger: Logger): GrpcService {
  return createService(
    runtimeServiceDefinition(),
    {
      version: async () => info.version(),
      runPodSandbox: async (req, call) => ({ podSandboxId: await sandboxes.run(call, loadCri().PodSandboxConfig.fromPartial(req.config ?? {}), req.runtimeHandler) }),
      stopPodSandbox: async (req, call) => {
        await sandboxes.stop(call, req.podSandboxId);
        return {};
      },
      removePodSandbox: async (req, call) => {
        await sandboxes.remove(call, req.podSandboxId);
        return {};
      },
      podSandboxStatus: async (req, call) => {
        const v = await sandboxes.status(call, req.podSandboxId);
        return { status: toPodSandboxStatus(v), info: req.verbose ? sandboxInfo(v) : {}, containersStatuses: [], timestamp: 0 };
      },
      listPodSandbox: async (req, call) => {
        const f = req.filter;
        const state = f?.state === undefined ? undefined : f.state.state === SANDBOX_READY ? 'ready' : 'notready';
        const views = await sandboxes.list(call, { id: f?.id ?? '', ...(state ? { state } : {}), labelSelector: f?.labelSelector ?? {} });
        return { items: views.map(toPodSandbox) };
      },
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
