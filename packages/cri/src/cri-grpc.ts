import type * as Cri from '@berth/api/cri';
import type { StreamingServer } from '@berth/cri-streaming';
import { context } from '@berth/context';
import { NotFoundError, isNotFound, wrap } from '@berth/errdefs';
import { cgroupUsage, interfaceUsage } from './pod-stats';
import { type GrpcService, createService } from '@berth/grpc';
import type { Logger } from '@berth/log';
import { PreEncoded, imageServiceDefinition, loadCri, runtimeServiceDefinition } from './definitions';
import { toGoJson } from './go-json';
import { ociImageSpecView } from './image-spec';
import type { CriImage, CriImageService } from './image-service';
import type { RuntimeInfo } from './runtime-info';
import { type Sandbox, type SandboxService, type SandboxView, goCniResult } from './sandbox-service';
import { CONTAINER_EXITED, type ContainerService, type ContainerStatsView, type CriContainer, stateOf } from './container-service';
import type { SandboxContainer } from './sandbox-service';
import type { CriStreamingRuntime } from './streaming-runtime';
import { CONTAINER_EVENT_TYPES, type ContainerEvent, type ContainerEvents } from './container-events';

/** The streaming server (started when first asked for) and the runtime behind it. */
export interface CriStreaming {
  server(): Promise<StreamingServer>;
  runtime: CriStreamingRuntime;
}

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
    createdAt: ns(s.createdAt),
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

/** A nanosecond time as the API carries it: a decimal string (the values pass 2^53). */
const ns = (t: bigint) => t.toString();
/** A UInt64Value: a decimal string, exact however large the counter. */
const u64 = (n: number | bigint) => ({ value: String(n) });

/** @internal Exported for its test. */
export function toContainer(c: CriContainer): Cri.Container {
  return {
    id: c.id,
    podSandboxId: c.sandboxId,
    metadata: c.config.metadata,
    image: c.config.image,
    imageRef: c.imageRef,
    state: stateOf(c.state) as Cri.ContainerState,
    createdAt: ns(c.state.createdAt),
    labels: c.config.labels,
    annotations: c.config.annotations,
    imageId: c.imageRef,
  };
}

/**
 * Each container's entry in a ListContainersResponse (field 1's tag and length, then the encoded
 * Container), and the state it was encoded in (the only field that changes).
 */
const encodedContainers = new WeakMap<CriContainer, { state: number; entry: Uint8Array }>();

/** A ListContainersResponse (field 1, repeated Container) made of each container's cached entry. */
/** @internal Exported for its test. */
export function encodeContainerList(list: readonly CriContainer[]): Buffer {
  const entries: Uint8Array[] = new Array(list.length);
  let length = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    const state = stateOf(c.state);
    let cached = encodedContainers.get(c);
    if (cached === undefined || cached.state !== state) {
      cached = { state, entry: lengthDelimited(1, loadCri().Container.encode(toContainer(c)).finish()) };
      encodedContainers.set(c, cached);
    }
    entries[i] = cached.entry;
    length += cached.entry.length;
  }
  // One copy into the reply: Buffer.concat would do the same, but cost a pass and an array more.
  const out = Buffer.allocUnsafe(length);
  let offset = 0;
  for (const e of entries) {
    out.set(e, offset);
    offset += e.length;
  }
  return out;
}

/** Field `field` (length-delimited) holding `bytes`: its tag, its length as a varint, the bytes. */
function lengthDelimited(field: number, bytes: Uint8Array): Uint8Array {
  const header = [(field << 3) | 2];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      header.push(n);
      break;
    }
    header.push((n & 0x7f) | 0x80);
  }
  const out = new Uint8Array(header.length + bytes.length);
  out.set(header);
  out.set(bytes, header.length);
  return out;
}

/** ContainerStatus's status, as containerd 1.6's toCRIContainerStatus (plus CRI 1.36's image_id). */
function toContainerStatus(c: CriContainer, image?: CriImage): Cri.ContainerStatus {
  const state = stateOf(c.state);
  let reason = c.state.reason;
  if (state === CONTAINER_EXITED && reason === '') reason = c.state.exitCode === 0 ? 'Completed' : 'Error';
  const imageSpec = image && image.repoTags.length > 0 ? { ...(c.config.image ?? {}), image: image.repoTags[0] } : c.config.image;
  const imageRef = image && image.repoDigests.length > 0 ? image.repoDigests[0] : c.imageRef;
  return {
    id: c.id,
    metadata: c.config.metadata,
    state: state as Cri.ContainerState,
    createdAt: ns(c.state.createdAt),
    startedAt: ns(c.state.startedAt),
    finishedAt: ns(c.state.finishedAt),
    exitCode: c.state.exitCode,
    image: imageSpec as Cri.ImageSpec,
    imageRef,
    reason,
    message: c.state.message,
    labels: c.config.labels,
    annotations: c.config.annotations,
    mounts: c.config.mounts,
    logPath: c.logPath,
    imageId: c.imageRef,
    stopSignal: 0 as Cri.Signal,
  };
}

/** The verbose `info` of ContainerStatus, with containerd 1.6's keys. */
function containerInfo(c: CriContainer, record?: SandboxContainer): Record<string, string> {
  let runtimeSpec: unknown = null;
  try {
    runtimeSpec = record?.spec ? JSON.parse(record.spec.value.toString()) : null;
  } catch {
    runtimeSpec = null;
  }
  const cri = loadCri();
  const envs = c.config.envs.map((e) => ({ key: e.key, value: Buffer.isBuffer(e.value) ? e.value.toString('utf8') : String(e.value) }));
  const info = {
    sandboxID: c.sandboxId,
    pid: c.state.pid,
    removing: c.state.removing,
    snapshotKey: record?.snapshotKey ?? '',
    snapshotter: record?.snapshotter ?? '',
    runtimeType: record?.runtime.name ?? '',
    // containerd 1.6.20 shows the runc options decoded, `{}` for none (seen side by side).
    runtimeOptions: {},
    config: { ...(toGoJson(cri.ContainerConfig.fromPartial({ ...c.config, envs: [] })) as object), ...(envs.length > 0 ? { envs } : {}) },
    runtimeSpec,
  };
  return { info: JSON.stringify(info) };
}

function toContainerStats(v: ContainerStatsView): Cri.ContainerStats {
  const c = v.container;
  return {
    attributes: { id: c.id, metadata: c.config.metadata, labels: c.config.labels, annotations: c.config.annotations },
    ...(v.cpu ? { cpu: { timestamp: ns(v.cpu.timestampNs), usageCoreNanoSeconds: u64(v.cpu.usageCoreNanoSeconds), usageNanoCores: u64(0) } } : {}),
    ...(v.memory
      ? {
          memory: {
            timestamp: ns(v.memory.timestampNs),
            workingSetBytes: u64(v.memory.workingSetBytes),
            availableBytes: u64(0),
            usageBytes: u64(v.memory.usageBytes),
            rssBytes: u64(v.memory.rssBytes),
            pageFaults: u64(v.memory.pageFaults),
            majorPageFaults: u64(v.memory.majorPageFaults),
          },
        }
      : {}),
    ...(v.writableLayer
      ? { writableLayer: { timestamp: ns(v.writableLayer.timestampNs), fsId: { mountpoint: v.writableLayer.mountpoint }, usedBytes: u64(v.writableLayer.usedBytes), inodesUsed: u64(v.writableLayer.inodesUsed) } }
      : {}),
  } as Cri.ContainerStats;
}

/** GetContainerEvents' message: the pod and its containers as PodSandboxStatus and ContainerStatus answer. */
function toContainerEventResponse(e: ContainerEvent): Cri.ContainerEventResponse {
  return {
    containerId: e.containerId,
    containerEventType: CONTAINER_EVENT_TYPES.indexOf(e.type) as Cri.ContainerEventType,
    createdAt: ns(e.createdAt),
    ...(e.sandbox ? { podSandboxStatus: toPodSandboxStatus(e.sandbox) } : {}),
    containersStatuses: e.containers.map((c) => toContainerStatus(c.container, c.image)),
  };
}

/**
 * runtime.v1.RuntimeService over gRPC: Version, Status, RuntimeConfig, the pod sandboxes and
 * their containers (with ExecSync, logs and stats), Exec, Attach and PortForward, which hand
 * out URLs on the streaming server (started on the first of them), and GetContainerEvents;
 * checkpoints and metrics descriptors answer UNIMPLEMENTED until Berth has them.
 */
export function createRuntimeGrpcService(
  info: RuntimeInfo,
  sandboxes: SandboxService,
  containers: ContainerService,
  streaming: CriStreaming,
  events: ContainerEvents,
  logger: Logger,
): GrpcService {
  /** One pod's stats: its cgroup parent's CPU, memory and processes, eth0 of its netns, its containers'. */
  const podStats = async (s: Sandbox): Promise<Cri.PodSandboxStats> => {
    const ctx = context({ namespace: 'k8s.io' });
    const now = ns(BigInt(Date.now()) * 1_000_000n);
    const parent = s.config.linux?.cgroupParent ?? '';
    const cg = parent !== '' && !parent.endsWith('.slice') ? cgroupUsage(parent) : undefined;
    const pid = await sandboxes.pausePid(ctx, s.id);
    const eth0 = pid > 0 && s.netnsPath !== '' ? interfaceUsage(pid, 'eth0') : undefined;
    const containerStats = (await containers.stats(ctx, { podSandboxId: s.id })).map(toContainerStats);
    return {
      attributes: { id: s.id, metadata: s.config.metadata, labels: s.config.labels, annotations: s.config.annotations },
      linux: {
        ...(cg
          ? {
              cpu: { timestamp: now, usageCoreNanoSeconds: u64(cg.cpuNs), usageNanoCores: u64(0) },
              memory: {
                timestamp: now,
                workingSetBytes: u64(cg.memory.workingSet),
                availableBytes: u64(0),
                usageBytes: u64(cg.memory.usage),
                rssBytes: u64(cg.memory.rss),
                pageFaults: u64(cg.memory.pageFaults),
                majorPageFaults: u64(cg.memory.majorPageFaults),
              },
              process: { timestamp: now, processCount: u64(cg.processes) },
            }
          : {}),
        ...(eth0
          ? { network: { timestamp: now, defaultInterface: { name: 'eth0', rxBytes: u64(eth0.rxBytes), rxErrors: u64(eth0.rxErrors), txBytes: u64(eth0.txBytes), txErrors: u64(eth0.txErrors) }, interfaces: [] } }
          : {}),
        containers: containerStats,
      },
    } as Cri.PodSandboxStats;
  };
  return createService(
    runtimeServiceDefinition(),
    {
      createContainer: async (req, call) => {
        const cri = loadCri();
        const config = cri.ContainerConfig.fromPartial(req.config ?? {});
        const containerId = await containers.create(call, req.podSandboxId, config, req.sandboxConfig ? cri.PodSandboxConfig.fromPartial(req.sandboxConfig) : undefined);
        return { containerId };
      },
      startContainer: async (req, call) => {
        await containers.start(call, req.containerId);
        return {};
      },
      stopContainer: async (req, call) => {
        await containers.stop(call, req.containerId, Number(req.timeout));
        return {};
      },
      removeContainer: async (req, call) => {
        await containers.remove(call, req.containerId);
        return {};
      },
      containerStatus: async (req, call) => {
        const s = await containers.status(call, req.containerId);
        return { status: toContainerStatus(s.container, s.image), info: req.verbose ? containerInfo(s.container, s.record) : {} };
      },
      listContainers: async (req, call) => {
        const f = req.filter;
        const list = await containers.list(call, {
          id: f?.id ?? '',
          podSandboxId: f?.podSandboxId ?? '',
          labelSelector: f?.labelSelector ?? {},
          ...(f?.state !== undefined ? { state: f.state.state as number } : {}),
        });
        // Each container's message is encoded once per state it is in, and the reply joined from
        // those: a list of 100 spent most of its time encoding the same unchanged messages.
        return new PreEncoded(encodeContainerList(list)) as unknown as Cri.ListContainersResponse;
      },
      reopenContainerLog: async (req, call) => {
        await containers.reopenLog(call, req.containerId);
        return {};
      },
      exec: async (req, call) => {
        const containerId = await containers.requireRunning(call, req.containerId, `failed to find container ${JSON.stringify(req.containerId)} in store`);
        return (await streaming.server()).getExec({ ...req, containerId });
      },
      attach: async (req, call) => {
        const containerId = await containers.requireRunning(call, req.containerId, 'failed to find container in store');
        return (await streaming.server()).getAttach({ ...req, containerId });
      },
      portForward: async (req) => {
        const podSandboxId = await streaming.runtime.requireReady(req.podSandboxId);
        return (await streaming.server()).getPortForward({ podSandboxId });
      },
      execSync: async (req, call) => {
        const r = await containers.execSync(call, req.containerId, req.cmd, Number(req.timeout));
        return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
      },
      updateContainerResources: async (req, call) => {
        await containers.updateResources(call, req.containerId, req.linux, req.annotations ?? {});
        return {};
      },
      podSandboxStats: async (req, call) => {
        let s: Sandbox;
        try {
          s = await sandboxes.get(call, req.podSandboxId);
        } catch (err) {
          throw wrap(err, `an error occurred when trying to find sandbox ${JSON.stringify(req.podSandboxId)}`);
        }
        return { stats: await podStats(s) };
      },
      listPodSandboxStats: async (req, call) => {
        const f = req.filter;
        const views = await sandboxes.list(call, { id: f?.id ?? '', labelSelector: f?.labelSelector ?? {}, state: 'ready' });
        const stats: Cri.PodSandboxStats[] = [];
        for (const v of views) stats.push(await podStats(v.sandbox));
        return { stats };
      },
      containerStats: async (req, call) => {
        // The one container by id or prefix first (an empty id would list them all).
        const { id } = await containers.get(call, req.containerId, 'failed to find container');
        const list = await containers.stats(call, { id });
        if (list.length === 0) throw new NotFoundError('failed to find container: not found', { bare: true });
        return { stats: toContainerStats(list[0]) };
      },
      listContainerStats: async (req, call) => {
        const f = req.filter;
        const list = await containers.stats(call, { id: f?.id ?? '', podSandboxId: f?.podSandboxId ?? '', labelSelector: f?.labelSelector ?? {} });
        return { stats: list.map(toContainerStats) };
      },
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
        return { status: toPodSandboxStatus(v), info: req.verbose ? sandboxInfo(v) : {}, containersStatuses: [], timestamp: '0' };
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
      // Every event from now on (and those kept while nobody listened), until the client leaves
      // (the call's signal ends the subscription at once) or falls 100 events behind.
      getContainerEvents: async function* (_req, call) {
        for await (const e of events.subscribe(call.signal)) yield toContainerEventResponse(e);
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
              timestamp: ns(fs.timestampNs),
              fsId: { mountpoint: fs.mountpoint },
              usedBytes: u64(fs.usedBytes),
              inodesUsed: u64(fs.inodesUsed),
            },
          ],
          containerFilesystems: [],
        };
      },
    },
    logger,
  );
}
