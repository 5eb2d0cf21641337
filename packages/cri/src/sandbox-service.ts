import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, promises as fsp, rmSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { basename, join } from 'node:path';
import type * as Cri from '@berth/api/cri';
import { type CniNetworkPlugin, NOT_INITIALIZED, type PortMapping, type SetupResult, bandwidthFromAnnotations, createNetns, isNetns, removeNetns } from '@berth/cni';
import { type Context, context, withNamespace } from '@berth/context';
import { InvalidArgumentError, NotFoundError, UnknownError, isNotFound, wrap } from '@berth/errdefs';
import type { Logger } from '@berth/log';
import { type Mount, isMountPoint, mount, unmount } from '@berth/mount';
import type { CriConfig, CriRuntimeConfig } from './config';
import type { ContainerEventSink } from './container-events';
import { fromGoJson, toGoJson } from './go-json';
import { KeyedSerial } from './serial';
import { CRI_NAMESPACE, type CriImage } from './image-service';
import { type NamespaceModeName, SANDBOX_OOM_SCORE_ADJ, restrictOomScoreAdj, sandboxCgroupsPath, sandboxSpec } from './sandbox-spec';

/** containerd's label saying what kind of CRI object a container record is. */
export const CRI_KIND_LABEL = 'io.cri-containerd.kind';
/** The extension holding a sandbox's metadata: the durable copy of what the CRI plugin knows. */
export const SANDBOX_METADATA_EXTENSION = 'io.cri-containerd.sandbox.metadata';
/** The type URL containerd registers its sandbox metadata under. */
export const SANDBOX_METADATA_TYPE_URL = 'github.com/containerd/cri/pkg/store/sandbox/Metadata';
const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const ANNOTATION = 'io.kubernetes.cri.';
/** The size of a sandbox's /dev/shm (containerd's defaultShmSize). */
const SHM_SIZE = '65536k';

const SIGKILL = 9;
/** containerd's task status numbers (containerd.v1.types.Status). */
const TASK_RUNNING = 2;

const MODES: NamespaceModeName[] = ['POD', 'CONTAINER', 'NODE', 'TARGET'];
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

/** A container record as the sandbox service writes and reads it. */
export interface SandboxContainer {
  id: string;
  labels: Record<string, string>;
  image: string;
  runtime: { name: string; options?: { typeUrl: string; value: Buffer } };
  spec?: { typeUrl: string; value: Buffer };
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, { typeUrl: string; value: Buffer }>;
  createdAt?: Date;
}

/** The services the sandbox service drives, each in the namespace `k8s.io`. */
export interface SandboxServiceOptions {
  config: CriConfig;
  /** The plugin's root (`<root>/io.containerd.grpc.v1.cri`): `sandboxes/<id>/{hostname,hosts,resolv.conf}`. */
  rootDir: string;
  /** The plugin's state dir: `sandboxes/<id>/shm`. */
  stateDir: string;
  /** Finds the sandbox image, pulling it when missing. */
  images: { get(ctx: Context, ref: string): Promise<CriImage>; pull(ctx: Context, ref: string): Promise<string> };
  containers: {
    get(ctx: Context, id: string): Promise<SandboxContainer>;
    list(ctx: Context, filters?: readonly string[]): Promise<SandboxContainer[]>;
    create(ctx: Context, c: SandboxContainer): Promise<SandboxContainer>;
    update(ctx: Context, c: Partial<SandboxContainer> & { id: string }, fieldpaths: string[]): Promise<SandboxContainer>;
    delete(ctx: Context, id: string): Promise<void>;
  };
  tasks: {
    create(ctx: Context, req: { containerId: string; rootfs: Mount[]; stdin: string; stdout: string; stderr: string; terminal: boolean; runtimePath: string }): Promise<{ pid: number }>;
    start(ctx: Context, req: { containerId: string; execId: string }): Promise<{ pid: number }>;
    get(ctx: Context, req: { containerId: string; execId: string }): Promise<{ process?: { pid: number; status: number } }>;
    kill(ctx: Context, req: { containerId: string; execId: string; signal: number; all: boolean }): Promise<void>;
    wait(ctx: Context, req: { containerId: string; execId: string }): Promise<unknown>;
    delete(ctx: Context, req: { containerId: string }): Promise<unknown>;
    /** Starts the task's shim ahead of its Create; never rejects (Create starts it on a failure). */
    prestart?(ctx: Context, containerId: string, opts: { spec: Buffer; runtime: string; runtimeOptions?: { typeUrl: string; value: Uint8Array } }): Promise<void>;
    /** Shuts down a prestarted shim no Create took. */
    abandonPrestart?(ctx: Context, containerId: string): Promise<void>;
  };
  snapshots: {
    prepare(ctx: Context, snapshotter: string, key: string, parent: string): Promise<Mount[]>;
    remove(ctx: Context, snapshotter: string, key: string): Promise<void>;
  };
  /** Leases hold the new snapshot until the container record references it, as containerd's client does. */
  leases: {
    create(ctx: Context, id: string, labels: Record<string, string>): Promise<{ id: string }>;
    delete(ctx: Context, id: string): Promise<void>;
  };
  /** The CNI network of a runtime handler (its `cni_conf_dir`, else `cni.conf_dir`). */
  network: (handler: CriRuntimeConfig) => CniNetworkPlugin;
  /** Packs a handler's runc options (`containerd.runc.v1.Options`); undefined for none. */
  runtimeOptions: (options: Record<string, unknown>) => { typeUrl: string; value: Buffer } | undefined;
  /** Told of every pod run (created, started), stopped (StopPodSandbox or its pause's own exit) and removed. */
  events?: ContainerEventSink;
  logger: Logger;
}

/** What the CRI plugin knows of one sandbox (its metadata extension holds the same). */
export interface Sandbox {
  id: string;
  /** `name_namespace_uid_attempt`, reserved while the sandbox exists. */
  name: string;
  config: Cri.PodSandboxConfig;
  /** '' for host network. */
  netnsPath: string;
  ip: string;
  additionalIps: string[];
  runtimeHandler: string;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
  cniResult?: SetupResult;
}

/** A sandbox with its live state. */
export interface SandboxView {
  sandbox: Sandbox;
  ready: boolean;
  pid: number;
  /** containerd's name of the task status: `running`, `stopped`, `deleted`... */
  processStatus: string;
  netnsClosed: boolean;
  container?: SandboxContainer;
}

/** The filter of ListPodSandbox. */
export interface SandboxFilter {
  id?: string;
  state?: 'ready' | 'notready';
  labelSelector?: Record<string, string>;
}

const modeName = (m: number | undefined): NamespaceModeName => MODES[m ?? 0] ?? 'POD';

/** The pod's namespace modes (absent options: all POD). */
export function namespaceModes(config: Cri.PodSandboxConfig): { network: NamespaceModeName; pid: NamespaceModeName; ipc: NamespaceModeName } {
  const o = config.linux?.securityContext?.namespaceOptions;
  return { network: modeName(o?.network), pid: modeName(o?.pid), ipc: modeName(o?.ipc) };
}

/** A CNI setup result as go-cni's `Result` marshals (containerd's `CNIResult`). */
export function goCniResult(r: SetupResult): Record<string, unknown> {
  // Go's encoding: nil slices are null, a nil net.IP is "", and CNI's DNS fields are omitempty.
  const list = <T>(v: T[]) => (v.length > 0 ? v : null);
  return {
    Interfaces: Object.fromEntries(
      Object.entries(r.interfaces).map(([name, i]) => [name, { IPConfigs: list(i.ipConfigs.map((c) => ({ IP: c.ip, Gateway: c.gateway ?? '' }))), Mac: i.mac ?? '', Sandbox: i.sandbox ?? '' }]),
    ),
    DNS: list(
      r.dns.map((d) => ({
        ...(d.nameservers.length > 0 ? { nameservers: d.nameservers } : {}),
        ...(d.domain ? { domain: d.domain } : {}),
        ...(d.search.length > 0 ? { search: d.search } : {}),
        ...(d.options.length > 0 ? { options: d.options } : {}),
      })),
    ),
    Routes: list(r.routes),
  };
}

/** The reverse of {@link goCniResult}, with the pod IPs. */
function fromGoCniResult(v: Record<string, any>, ip: string, additionalIps: string[]): SetupResult {
  const interfaces: SetupResult['interfaces'] = {};
  for (const [name, i] of Object.entries<any>(v.Interfaces ?? {})) {
    interfaces[name] = {
      ...(i.Mac ? { mac: i.Mac } : {}),
      ...(i.Sandbox ? { sandbox: i.Sandbox } : {}),
      ipConfigs: (i.IPConfigs ?? []).map((c: any) => ({ ip: c.IP, ...(c.Gateway ? { gateway: c.Gateway } : {}) })),
    };
  }
  const dns = (v.DNS ?? []).map((d: any) => ({ nameservers: d.nameservers ?? [], ...(d.domain ? { domain: d.domain } : {}), search: d.search ?? [], options: d.options ?? [] }));
  return { ip, additionalIps, interfaces, dns, routes: v.Routes ?? [], results: {} };
}

/** containerd's id index's words for an empty id (prefix). */
export const EMPTY_PREFIX = "Prefix can't be empty";

/** containerd's sandbox name: `name_namespace_uid_attempt`. */
export function sandboxName(m: Cri.PodSandboxMetadata): string {
  return [m.name, m.namespace, m.uid, String(m.attempt)].join('_');
}

/** resolv.conf from a pod's DNS config, as containerd writes it. */
export function resolvConf(dns: Cri.DNSConfig): string {
  let out = '';
  if (dns.searches.length > 0) out += `search ${dns.searches.join(' ')}\n`;
  for (const s of dns.servers) out += `nameserver ${s}\n`;
  if (dns.options.length > 0) out += `options ${dns.options.join(' ')}\n`;
  return out;
}

/** Resolves when every promise has, rejecting with the first of them (in order) that failed. */
async function settled(promises: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const failures = await Promise.all(promises.map((p) => p.then(() => undefined, (e: unknown) => ({ e }))));
  const failed = failures.find((f) => f !== undefined);
  if (failed) throw failed.e;
}

/**
 * Pod sandboxes as containerd 1.6's CRI plugin runs them: a pause container per pod in the
 * namespace `k8s.io`, its network namespace set up through CNI, its files (hostname, hosts,
 * resolv.conf, a /dev/shm tmpfs) under the plugin's dirs. What the plugin knows of a sandbox is
 * kept in memory and, durably, in the container record's metadata extension, from which a
 * restarted daemon reads it back. Whether a sandbox is ready is asked of its task each time.
 */
export class SandboxService {
  /**
   * The pod's containers, stopped by StopPodSandbox and removed by RemovePodSandbox before the
   * sandbox itself (set by the plugin once the container service exists).
   */
  podContainers?: { stopAll(ctx: Context, sandboxId: string): Promise<void>; removeAll(ctx: Context, sandboxId: string): Promise<void> };
  private readonly sandboxes = new Map<string, Sandbox>();
  /** Reserved names -> sandbox id. */
  private readonly names = new Map<string, string>();
  private loaded?: Promise<void>;
  /** The tail of each sandbox's queue of Stop and Remove calls (kubelet repeats a Stop that timed out). */
  private readonly queues = new KeyedSerial();
  /** The CONTAINER_STOPPED_EVENT of each sandbox whose pause exit was seen: one per sandbox, whoever sees it first. */
  private readonly stopEvents = new Map<string, Promise<void>>();

  constructor(private readonly o: SandboxServiceOptions) {}

  /** Runs `fn` after every earlier Stop or Remove of the same sandbox has finished. */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.queues.run(id, fn);
  }

  private ns(ctx: Context): Context {
    return withNamespace(ctx, CRI_NAMESPACE);
  }

  /** Reads the sandboxes of earlier runs from their container records, once. */
  private load(ctx: Context): Promise<void> {
    this.loaded ??= (async () => {
      const records = await this.o.containers.list(ctx, [`labels."${CRI_KIND_LABEL}"==sandbox`]);
      for (const c of records) {
        const ext = c.extensions[SANDBOX_METADATA_EXTENSION];
        if (!ext) continue;
        try {
          const s = this.fromExtension(ext.value, c.createdAt);
          this.sandboxes.set(s.id, s);
          this.names.set(s.name, s.id);
        } catch (err) {
          this.o.logger.warn('sandbox metadata left out', { id: c.id, error: (err as Error).message });
        }
      }
    })().catch((err) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private toExtension(s: Sandbox): Buffer {
    const { loadCri } = require('./definitions') as typeof import('./definitions');
    const cri = loadCri();
    return Buffer.from(
      JSON.stringify({
        Version: 'v1',
        Metadata: {
          ID: s.id,
          Name: s.name,
          Config: toGoJson(cri.PodSandboxConfig.fromPartial(s.config)),
          NetNSPath: s.netnsPath,
          IP: s.ip,
          AdditionalIPs: s.additionalIps.length > 0 ? s.additionalIps : null,
          RuntimeHandler: s.runtimeHandler,
          CNIResult: s.cniResult ? goCniResult(s.cniResult) : null,
          ProcessLabel: '',
        },
      }),
    );
  }

  private fromExtension(value: Buffer, createdAt?: Date): Sandbox {
    const { loadCri } = require('./definitions') as typeof import('./definitions');
    const doc = JSON.parse(value.toString()) as { Version: string; Metadata: Record<string, any> };
    if (doc.Version !== 'v1') throw new UnknownError(`sandbox metadata version ${JSON.stringify(doc.Version)}`);
    const m = doc.Metadata;
    return {
      id: m.ID,
      name: m.Name,
      config: loadCri().PodSandboxConfig.fromPartial(fromGoJson(m.Config ?? {}) as object),
      netnsPath: m.NetNSPath ?? '',
      ip: m.IP ?? '',
      additionalIps: m.AdditionalIPs ?? [],
      runtimeHandler: m.RuntimeHandler ?? '',
      createdAt: BigInt(createdAt?.getTime() ?? 0) * 1_000_000n,
      ...(m.CNIResult ? { cniResult: fromGoCniResult(m.CNIResult, m.IP ?? '', m.AdditionalIPs ?? []) } : {}),
    };
  }

  /**
   * A sandbox by id or unique id prefix. `what` is the call's words before the lookup's error, as
   * containerd words them: NotFound `<what>: not found`, or for an empty id Unknown
   * `<what>: Prefix can't be empty` (its id index refuses an empty prefix).
   */
  private find(id: string, what = 'an error occurred when try to find sandbox'): Sandbox {
    if (id === '') throw new UnknownError(`${what}: ${EMPTY_PREFIX}`, { bare: true });
    const exact = this.sandboxes.get(id);
    if (exact) return exact;
    const matches = [...this.sandboxes.keys()].filter((k) => k.startsWith(id));
    if (matches.length > 1) throw new InvalidArgumentError(`ambiguous sandbox id prefix ${JSON.stringify(id)}`);
    if (matches.length === 0) throw new NotFoundError(`${what}: not found`, { bare: true });
    return this.sandboxes.get(matches[0])!;
  }

  private handler(name: string): CriRuntimeConfig {
    const runtimes = this.o.config.containerd.runtimes;
    const key = name === '' ? this.o.config.containerd.default_runtime_name : name;
    const r = Object.prototype.hasOwnProperty.call(runtimes, key) ? runtimes[key] : undefined;
    if (!r) throw new UnknownError(`failed to get sandbox runtime: no runtime for ${JSON.stringify(name)} is configured`, { bare: true });
    return r;
  }

  private sandboxDir(id: string): string {
    return join(this.o.rootDir, 'sandboxes', id);
  }
  private shmDir(id: string): string {
    return join(this.o.stateDir, 'sandboxes', id, 'shm');
  }

  private async ensureImage(ctx: Context, ref: string): Promise<CriImage> {
    try {
      return await this.o.images.get(ctx, ref);
    } catch (err) {
      if (!isNotFound(err)) throw wrap(err, `failed to get sandbox image ${JSON.stringify(ref)}`);
    }
    try {
      await this.o.images.pull(ctx, ref);
      return await this.o.images.get(ctx, ref);
    } catch (err) {
      throw wrap(wrap(err, `failed to pull image ${JSON.stringify(ref)}`), `failed to get sandbox image ${JSON.stringify(ref)}`);
    }
  }

  private cniOptions(s: Pick<Sandbox, 'config'>) {
    const c = s.config;
    const m = c.metadata!;
    const portMappings: PortMapping[] = c.portMappings.map((p) => ({
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: (PROTOCOLS[p.protocol] ?? String(p.protocol)).toLowerCase(),
      hostIP: p.hostIp,
    }));
    const dns = c.dnsConfig ? { servers: c.dnsConfig.servers, searches: c.dnsConfig.searches, options: c.dnsConfig.options } : undefined;
    const bandwidth = bandwidthFromAnnotations(c.annotations);
    return {
      pod: { namespace: m.namespace, name: m.name, uid: m.uid },
      portMappings,
      ...(dns ? { dns } : {}),
      ...(bandwidth ? { bandwidth } : {}),
      podAnnotations: c.annotations,
    };
  }

  /**
   * RunPodSandbox. Reserves the name, ensures the sandbox image and resolves the runtime handler;
   * then makes, side by side, what the pause task needs and containerd 1.6 makes one after the
   * other: the network namespace (and CNI ADD after it, which goes on while the task starts: the
   * task needs the namespace, not its interfaces), the sandbox files and /dev/shm, and the snapshot
   * and container record (with the spec and the metadata extension); then the pause task, started,
   * and the record updated with the IP. A failure undoes every step done, once every branch has
   * settled, and reports the error of the step containerd would have failed first. Returns the
   * sandbox id.
   */
  async run(callCtx: Context, config: Cri.PodSandboxConfig, runtimeHandler: string): Promise<string> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    const metadata = config.metadata;
    if (!metadata) throw new UnknownError('sandbox config must include metadata', { bare: true });
    const id = randomBytes(32).toString('hex');
    const name = sandboxName(metadata);
    const undo: Array<[string, () => Promise<void> | void]> = [];
    // The branches below, in containerd's order of their steps: the first failure in that order is reported.
    const branches: Array<Promise<void>> = [];
    try {
      const holder = this.names.get(name);
      if (holder !== undefined) throw new UnknownError(`failed to reserve sandbox name ${JSON.stringify(name)}: name ${JSON.stringify(name)} is reserved for ${JSON.stringify(holder)}`, { bare: true });
      this.names.set(name, id);
      undo.push(['name', () => void this.names.delete(name)]);

      const imageRef = this.o.config.sandbox_image;
      const image = await this.ensureImage(ctx, imageRef);
      const handler = this.handler(runtimeHandler);
      const modes = namespaceModes(config);
      const sandbox: Sandbox = { id, name, config, netnsPath: '', ip: '', additionalIps: [], runtimeHandler, createdAt: 0n };
      const network = modes.network !== 'NODE' ? this.o.network(handler) : undefined;
      // go-cni's "not initialized" is a plain error in containerd: Unknown, without the load error.
      if (network && !network.status().ready) throw new UnknownError(`failed to setup network for sandbox ${JSON.stringify(id)}: ${NOT_INITIALIZED}`, { bare: true });
      // Named now, made in its branch: the spec takes the path.
      const netnsRoot = this.o.config.netns_mounts_under;
      if (network) sandbox.netnsPath = join(netnsRoot, `cni-${randomUUID()}`);
      const dir = this.sandboxDir(id);
      const resolvPath = join(dir, 'resolv.conf');
      const shm = modes.ipc !== 'NODE' ? this.shmDir(id) : '';

      // The pause container's spec, and its shim started now, beside every branch below: containerd
      // starts it after them, in the task's create, which then finds it running here.
      const sc = config.linux?.securityContext;
      // As containerd 1.6.20 (seen side by side): the user's gid is its one additional gid; the
      // pod's supplemental groups are for its containers, not for the pause process.
      const gid = sc?.runAsGroup ? Number(sc.runAsGroup.value) : 0;
      const user = sc?.runAsUser ? { uid: Number(sc.runAsUser.value), gid, additionalGids: [gid] } : undefined;
      const spec = sandboxSpec({
        id,
        imageConfig: (image.spec.config ?? {}) as never,
        hostname: modes.network === 'NODE' ? '' : config.hostname,
        netnsPath: sandbox.netnsPath,
        namespaces: modes,
        cgroupsPath: sandboxCgroupsPath(config.linux?.cgroupParent ?? '', id),
        sysctls: config.linux?.sysctls ?? {},
        shmPath: shm !== '' ? shm : '/dev/shm',
        resolvConfPath: resolvPath,
        ...(user ? { user } : {}),
        oomScoreAdj: this.o.config.restrict_oom_score_adj ? restrictOomScoreAdj(SANDBOX_OOM_SCORE_ADJ) : SANDBOX_OOM_SCORE_ADJ,
        annotations: {
          [`${ANNOTATION}container-type`]: 'sandbox',
          [`${ANNOTATION}sandbox-id`]: id,
          [`${ANNOTATION}sandbox-name`]: metadata.name,
          [`${ANNOTATION}sandbox-namespace`]: metadata.namespace,
          [`${ANNOTATION}sandbox-uid`]: metadata.uid,
          [`${ANNOTATION}sandbox-log-directory`]: config.logDirectory,
        },
      });
      const specValue = Buffer.from(JSON.stringify(spec));
      const options = this.o.runtimeOptions(handler.options);
      const shim = this.o.tasks.prestart?.(ctx, id, { spec: specValue, runtime: handler.runtime_type, ...(options ? { runtimeOptions: options } : {}) });
      if (shim) undo.push(['shim', () => this.o.tasks.abandonPrestart?.(ctx, id)]);

      // 1. The network namespace, then CNI ADD (awaited after the task's start).
      let networking: Promise<void> | undefined;
      const netns = network
        ? (async () => {
            const path = sandbox.netnsPath;
            try {
              await createNetns({ root: netnsRoot, name: basename(path) });
            } catch (err) {
              throw wrap(err, `failed to create network namespace for sandbox ${JSON.stringify(id)}`);
            }
            undo.push(['netns', () => removeNetns(path)]);
            const opts = this.cniOptions(sandbox);
            // @berth/cni words its failure as containerd: `failed to setup network for sandbox "<id>": ...`.
            // The plugins start once the shim has: its start is on the pod's critical path, CNI
            // (done by the time the task has started) is not, and on two cores the three plugins'
            // starts had slowed the shim's from 16 ms alone to 36.
            networking = (shim ?? Promise.resolve()).then(() => network.setup(id, path, opts)).then((result) => {
              undo.push(['network', () => network.teardown(id, path, opts)]);
              sandbox.ip = result.ip;
              sandbox.additionalIps = result.additionalIps;
              sandbox.cniResult = result;
            });
            networking.catch(() => undefined); // awaited below, on success and on failure alike
          })()
        : Promise.resolve();
      branches.push(netns, netns.then(() => networking));

      // 2. The sandbox's files: hostname, hosts, resolv.conf; a /dev/shm of its own unless host IPC.
      const files = (async () => {
        // Off the event loop and side by side: creating a file can wait for the disk's journal
        // while others sync. The /dev/shm mount (under the state dir) does not wait for the files.
        const shmMount =
          shm === ''
            ? undefined
            : (async () => {
                await fsp.mkdir(shm, { recursive: true, mode: 0o700 });
                undo.push(['shm dir', () => rmSync(join(this.o.stateDir, 'sandboxes', id), { recursive: true, force: true })]);
                try {
                  await mount({ type: 'tmpfs', source: 'shm', options: ['nodev', 'noexec', 'nosuid', 'mode=1777', `size=${SHM_SIZE}`] }, shm);
                } catch (err) {
                  throw wrap(err, 'failed to mount sandbox shm');
                }
                undo.push(['shm', () => unmount(shm, { lazyFallback: true })]);
              })();
        const sandboxFiles = (async () => {
          await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
          undo.push(['files', () => rmSync(dir, { recursive: true, force: true })]);
          const hostname = config.hostname !== '' ? config.hostname : osHostname();
          const dns = config.dnsConfig;
          const ownResolv = dns && (dns.servers.length > 0 || dns.searches.length > 0 || dns.options.length > 0);
          await settled([
            fsp.writeFile(join(dir, 'hostname'), `${hostname}\n`, { mode: 0o644 }),
            fsp.copyFile('/etc/hosts', join(dir, 'hosts')),
            ownResolv ? fsp.writeFile(resolvPath, resolvConf(dns), { mode: 0o644 }) : fsp.copyFile('/etc/resolv.conf', resolvPath),
          ]);
        })();
        // The files' failure first (containerd writes them before it mounts /dev/shm).
        await settled(shmMount ? [sandboxFiles, shmMount] : [sandboxFiles]);
      })();
      branches.push(files);

      // 3. The pause container: snapshot, record.
      const snapshotter = this.o.config.containerd.snapshotter;
      let rootfs: Mount[] = [];
      const container = (async () => {
        // Until the record references the snapshot, a lease (expiring in an hour should berthd
        // die meanwhile) keeps a garbage collection from taking it.
        const lease = await this.o.leases.create(ctx, '', { 'containerd.io/gc.expire': new Date(Date.now() + 3600_000).toISOString() });
        undo.push([
          'lease',
          () =>
            this.o.leases.delete(ctx, lease.id).catch((err: unknown) => {
              if (!isNotFound(err)) throw err;
            }),
        ]);
        try {
          rootfs = await this.o.snapshots.prepare({ ...ctx, lease: lease.id }, snapshotter, id, image.chainId);
        } catch (err) {
          throw wrap(err, 'failed to create containerd container: failed to prepare snapshot');
        }
        undo.push(['snapshot', () => this.o.snapshots.remove(ctx, snapshotter, id)]);
        const imageLabels = (image.spec.config as { Labels?: Record<string, string> } | undefined)?.Labels ?? {};
        sandbox.createdAt = BigInt(Date.now()) * 1_000_000n;
        try {
          await this.o.containers.create(ctx, {
            id,
            labels: { ...imageLabels, ...config.labels, [CRI_KIND_LABEL]: 'sandbox' },
            image: image.repoTags[0] ?? imageRef,
            runtime: { name: handler.runtime_type, ...(options ? { options } : {}) },
            spec: { typeUrl: SPEC_TYPE_URL, value: specValue },
            snapshotter,
            snapshotKey: id,
            extensions: { [SANDBOX_METADATA_EXTENSION]: { typeUrl: SANDBOX_METADATA_TYPE_URL, value: this.toExtension(sandbox) } },
          });
        } catch (err) {
          throw wrap(err, 'failed to create containerd container');
        }
        undo.push(['container', () => this.o.containers.delete(ctx, id)]);
        await this.o.leases.delete(ctx, lease.id).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      })();
      branches.push(container);

      for (const b of branches) b.catch(() => undefined); // all awaited, on success and on failure alike
      // The pause task needs the namespace, the files and the record (CNI may still run).
      await settled([netns, files, container]);

      try {
        await this.o.tasks.create(ctx, { containerId: id, rootfs, stdin: '', stdout: '', stderr: '', terminal: false, runtimePath: '' });
      } catch (err) {
        throw wrap(err, 'failed to create containerd task');
      }
      undo.push(['task', async () => void (await this.killTask(ctx, id, true))]);
      try {
        await this.o.tasks.start(ctx, { containerId: id, execId: '' });
      } catch (err) {
        throw wrap(err, `failed to start sandbox container task ${JSON.stringify(id)}`);
      }
      if (network) {
        await networking;
        try {
          await this.o.containers.update(ctx, { id, extensions: { [SANDBOX_METADATA_EXTENSION]: { typeUrl: SANDBOX_METADATA_TYPE_URL, value: this.toExtension(sandbox) } } }, [`extensions.${SANDBOX_METADATA_EXTENSION}`]);
        } catch (err) {
          throw wrap(err, 'failed to update sandbox container');
        }
      }
      this.sandboxes.set(id, sandbox);
      // As containerd 2.x: both once the pod is in the list (and ready), CREATED first.
      void this.o.events?.emit('CONTAINER_CREATED_EVENT', id, id);
      this.watchPause(sandbox);
      void this.o.events?.emit('CONTAINER_STARTED_EVENT', id, id);
      return id;
    } catch (err) {
      // Every branch ends first (what it made is then in the undo list); the error reported is
      // the first in containerd's order of steps, which ran them one after the other.
      const failures = await Promise.all(branches.map((b) => b.then(() => undefined, (e: unknown) => e)));
      for (const [what, fn] of undo.reverse()) {
        try {
          await fn();
        } catch (e) {
          this.o.logger.error(`undo ${what} of a failed sandbox`, { id, error: (e as Error).message });
        }
      }
      throw failures.find((e) => e !== undefined) ?? err;
    }
  }

  /**
   * Waits, in the background, for the pause task of a running sandbox to exit, and then emits its
   * CONTAINER_STOPPED_EVENT: a pause that dies on its own makes the pod NOTREADY, and containerd
   * says so. A wait that fails (the task is gone, the daemon stops) emits nothing.
   */
  private watchPause(s: Sandbox): void {
    if (!this.o.events) return;
    this.o.tasks.wait(this.ns(context()), { containerId: s.id, execId: '' }).then(
      () => void this.pauseExited(s.id),
      () => undefined,
    );
  }

  /** Emits the sandbox's CONTAINER_STOPPED_EVENT once (resolving when it is published); nothing for a removed sandbox. */
  private pauseExited(id: string): Promise<void> {
    let done = this.stopEvents.get(id);
    if (!done) {
      if (!this.sandboxes.has(id) || !this.o.events) return Promise.resolve();
      done = this.o.events.emit('CONTAINER_STOPPED_EVENT', id, id);
      this.stopEvents.set(id, done);
    }
    return done;
  }

  /**
   * SIGKILLs the pause task (all its processes) and waits for it; with `remove`, deletes it too.
   * Returns whether it was running (a missing task is done).
   */
  private async killTask(ctx: Context, id: string, remove: boolean): Promise<boolean> {
    let status: number | undefined;
    try {
      status = (await this.o.tasks.get(ctx, { containerId: id, execId: '' })).process?.status;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    if (status === TASK_RUNNING) {
      const waited = this.o.tasks.wait(ctx, { containerId: id, execId: '' });
      waited.catch(() => undefined);
      try {
        await this.o.tasks.kill(ctx, { containerId: id, execId: '', signal: SIGKILL, all: true });
        await waited;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (remove) await this.deleteTask(ctx, id);
    return status === TASK_RUNNING;
  }

  /** Deletes the sandbox's (stopped) task; a missing one is done. */
  private async deleteTask(ctx: Context, id: string): Promise<void> {
    try {
      await this.o.tasks.delete(ctx, { containerId: id });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * StopPodSandbox: SIGKILLs the pause process, unmounts /dev/shm, runs CNI DEL and removes the
   * network namespace. Repeatable; a missing sandbox is fine.
   */
  async stop(callCtx: Context, id: string): Promise<void> {
    await this.ifFound(callCtx, id, (ctx, s) => this.stopSandbox(ctx, s));
  }

  /**
   * Runs `fn` on sandbox `id` (an id or a unique prefix) after the operations already queued on
   * it; does nothing when there is no such sandbox (Stop and Remove are idempotent in CRI).
   */
  private async ifFound(callCtx: Context, id: string, fn: (ctx: Context, s: Sandbox) => Promise<void>): Promise<void> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    let s: Sandbox;
    try {
      s = this.find(id, `an error occurred when try to find sandbox ${JSON.stringify(id)}`);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await this.serial(s.id, () => fn(ctx, s));
  }

  private async stopSandbox(ctx: Context, s: Sandbox): Promise<void> {
    await this.podContainers?.stopAll(ctx, s.id);
    let killed: boolean;
    try {
      killed = await this.killTask(ctx, s.id, false);
    } catch (err) {
      throw wrap(err, `failed to stop sandbox container ${JSON.stringify(s.id)}`);
    }
    // With the pause process gone, the task's deletion (the shim's, tens of ms), the /dev/shm
    // unmount and the network's teardown are independent: they run side by side (containerd too
    // deletes the task from its exit handler while StopPodSandbox goes on). The first failure in
    // containerd's order is reported, once all have ended.
    const deleted = this.deleteTask(ctx, s.id).catch((err: unknown) => {
      throw wrap(err, `failed to stop sandbox container ${JSON.stringify(s.id)}`);
    });
    // The pod is NOTREADY now, its network not yet torn down: containerd's event comes from the
    // pause's exit, which it handles while StopPodSandbox goes on to CNI DEL, and shows the IP.
    const event = killed ? this.pauseExited(s.id) : Promise.resolve();
    const shm = this.shmDir(s.id);
    const unmounted = existsSync(shm) && isMountPoint(shm) ? unmount(shm, { lazyFallback: true }) : Promise.resolve();
    const network = (async () => {
      await event;
      if (s.netnsPath === '' || !existsSync(s.netnsPath)) return;
      const plugin = this.o.network(this.handlerOrDefault(s.runtimeHandler));
      const path = isNetns(s.netnsPath) ? s.netnsPath : '';
      // Worded as containerd's: `failed to destroy network for sandbox "<id>": ...`.
      await plugin.teardown(s.id, path, this.cniOptions(s));
      await removeNetns(s.netnsPath);
    })();
    await settled([deleted, unmounted, network]);
  }

  private handlerOrDefault(name: string): CriRuntimeConfig {
    try {
      return this.handler(name);
    } catch {
      return this.handler('');
    }
  }

  /** RemovePodSandbox: stops the sandbox, then deletes its record, snapshot and files, and frees its name. Missing: fine. */
  async remove(callCtx: Context, id: string): Promise<void> {
    await this.ifFound(callCtx, id, (ctx, s) => this.removeSandbox(ctx, s));
  }

  private async removeSandbox(ctx: Context, s: Sandbox): Promise<void> {
    if (!this.sandboxes.has(s.id)) return; // an earlier Remove in the queue did it
    await this.stopSandbox(ctx, s);
    await this.podContainers?.removeAll(ctx, s.id);
    // After its containers' (each one's DELETED came with their removal), while the pod is still
    // listed: containerd sends it before deleting the records.
    void this.o.events?.emit('CONTAINER_DELETED_EVENT', s.id, s.id);
    try {
      await this.o.containers.delete(ctx, s.id);
    } catch (err) {
      if (!isNotFound(err)) throw wrap(err, `failed to delete sandbox container ${JSON.stringify(s.id)}`);
    }
    try {
      await this.o.snapshots.remove(ctx, this.o.config.containerd.snapshotter, s.id);
    } catch (err) {
      if (!isNotFound(err)) throw wrap(err, `failed to remove sandbox snapshot ${JSON.stringify(s.id)}`);
    }
    rmSync(this.sandboxDir(s.id), { recursive: true, force: true });
    rmSync(join(this.o.stateDir, 'sandboxes', s.id), { recursive: true, force: true });
    this.sandboxes.delete(s.id);
    this.stopEvents.delete(s.id);
    if (this.names.get(s.name) === s.id) this.names.delete(s.name);
  }

  private async view(ctx: Context, s: Sandbox, withContainer: boolean): Promise<SandboxView> {
    let pid = 0;
    let status: number | undefined;
    try {
      const p = (await this.o.tasks.get(ctx, { containerId: s.id, execId: '' })).process;
      pid = p?.pid ?? 0;
      status = p?.status;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const names = ['unknown', 'created', 'running', 'stopped', 'paused', 'pausing'];
    const netnsClosed = s.netnsPath === '' ? false : !isNetns(s.netnsPath);
    let container: SandboxContainer | undefined;
    if (withContainer) {
      container = await this.o.containers.get(ctx, s.id).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
    }
    return {
      sandbox: s,
      ready: status === TASK_RUNNING,
      pid,
      processStatus: status === undefined ? 'deleted' : (names[status] ?? 'unknown'),
      netnsClosed,
      ...(container ? { container } : {}),
    };
  }

  /**
   * Reads earlier runs' sandboxes back now, and watches the pause tasks of the ready ones (for
   * their CONTAINER_STOPPED_EVENT). A sandbox found not ready gets no event, as in containerd.
   */
  async restore(): Promise<void> {
    const ctx = this.ns(context());
    await this.load(ctx);
    for (const s of this.sandboxes.values()) if ((await this.pausePid(ctx, s.id)) > 0) this.watchPause(s);
  }

  /** The sandbox as PodSandboxStatus sees it, for an event; undefined when it is gone. */
  async eventView(id: string): Promise<SandboxView | undefined> {
    const s = this.sandboxes.get(id);
    return s ? this.view(this.ns(context()), s, false) : undefined;
  }

  /** A sandbox by id or unique id prefix (NotFound when missing); `what` words the error (see `find`). */
  async get(callCtx: Context, id: string, what?: string): Promise<Sandbox> {
    await this.load(this.ns(callCtx));
    return this.find(id, what);
  }

  /** The pid of a sandbox's pause task while it runs; 0 otherwise. */
  async pausePid(callCtx: Context, id: string): Promise<number> {
    const ctx = this.ns(callCtx);
    try {
      const p = (await this.o.tasks.get(ctx, { containerId: id, execId: '' })).process;
      return p && p.status === TASK_RUNNING ? p.pid : 0;
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
  }

  /** The sandbox's files a container binds: hostname, hosts, resolv.conf, /dev/shm (the host's for host IPC). */
  files(s: Sandbox): { hostname: string; hosts: string; resolvConf: string; shm: string } {
    const dir = this.sandboxDir(s.id);
    return {
      hostname: join(dir, 'hostname'),
      hosts: join(dir, 'hosts'),
      resolvConf: join(dir, 'resolv.conf'),
      shm: this.shmDir(s.id),
    };
  }

  /** PodSandboxStatus: one sandbox (by id or unique prefix) with its state; NotFound when missing. */
  async status(callCtx: Context, id: string): Promise<SandboxView> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    return this.view(ctx, this.find(id), true);
  }

  /** ListPodSandbox: the sandboxes matching the filter (id prefix, state, every selector label). */
  async list(callCtx: Context, filter: SandboxFilter = {}): Promise<SandboxView[]> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    const out: SandboxView[] = [];
    for (const s of this.sandboxes.values()) {
      if (filter.id && !s.id.startsWith(filter.id)) continue;
      const selector = filter.labelSelector ?? {};
      if (Object.entries(selector).some(([k, v]) => s.config.labels[k] !== v)) continue;
      const v = await this.view(ctx, s, false);
      if (filter.state === 'ready' && !v.ready) continue;
      if (filter.state === 'notready' && v.ready) continue;
      out.push(v);
    }
    return out.sort((a, b) => (a.sandbox.createdAt < b.sandbox.createdAt ? -1 : 1));
  }
}
