/**
 * CRI containers as containerd 1.6's CRI plugin runs them: a container record in the namespace
 * `k8s.io` per container (labels, spec, the metadata extension), its snapshot, its stdio FIFOs
 * copied into the CRI log file, its task started and watched until it exits. What the plugin
 * knows of a container is kept in memory, durably in the record's extension (the metadata) and
 * in `<root>/containers/<id>/status` (the state), from which a restarted daemon reads it back.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type * as Cri from '@berth/api/cri';
import { type Context, context, withNamespace } from '@berth/context';
import { DeadlineExceededError, NotFoundError, UnknownError, isNotFound, wrap } from '@berth/errdefs';
import { FifoPool } from '@berth/exec';
import type { Logger } from '@berth/log';
import type { Mount } from '@berth/mount';
import { rootfsFileReader } from '@berth/oci-spec';
import type { ContainerEventSink } from './container-events';
import { ContainerIO, nowNs } from './container-io';
import { checkMounts, containerSpec, specResources } from './container-spec';
import { type ExecHandle, type ExecTasks, execInTask } from './exec-process';
import { fromGoJson, toGoJson } from './go-json';
import { KeyedSerial } from './serial';
import { CRI_NAMESPACE, type CriImage } from './image-service';
import type { Sandbox, SandboxContainer } from './sandbox-service';
import { CRI_KIND_LABEL, EMPTY_PREFIX } from './sandbox-service';
import { signalNumber } from './signals';

/** The extension holding a container's metadata. */
export const CONTAINER_METADATA_EXTENSION = 'io.cri-containerd.container.metadata';
/** The type URL containerd registers its container metadata under. */
export const CONTAINER_METADATA_TYPE_URL = 'github.com/containerd/cri/pkg/store/container/Metadata';
const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const RESOURCES_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

/** CRI's ContainerState numbers. */
export const CONTAINER_CREATED = 0;
export const CONTAINER_RUNNING = 1;
export const CONTAINER_EXITED = 2;
export const CONTAINER_UNKNOWN = 3;

const SIGKILL = 9;
/** containerd's task status numbers. */
const TASK_RUNNING = 2;
const TASK_STOPPED = 3;
/** ExecSync's output cap per stream (containerd's). */
const EXEC_SYNC_MAX_OUTPUT = 16 * 1024 * 1024;
/** The exit code and reason of a container whose task was lost (containerd's unknownExitCode). */
const UNKNOWN_EXIT_CODE = 255;

/** The state of a container, as containerd's container status checkpoint keeps it. */
export interface ContainerState {
  pid: number;
  /** Nanoseconds since the epoch; 0 for not yet. */
  createdAt: bigint;
  startedAt: bigint;
  finishedAt: bigint;
  exitCode: number;
  reason: string;
  message: string;
  starting: boolean;
  removing: boolean;
  unknown: boolean;
}

/** What the CRI plugin knows of one container. */
export interface CriContainer {
  id: string;
  /** `name_podname_podnamespace_poduid_attempt`, reserved while the container exists. */
  name: string;
  sandboxId: string;
  config: Cri.ContainerConfig;
  /** The image id (config digest). */
  imageRef: string;
  /** The image record's name the container was created from. */
  imageName: string;
  /** `<log_directory>/<log_path>`; '' for none. */
  logPath: string;
  /** The image's StopSignal; '' for SIGTERM. */
  stopSignal: string;
  state: ContainerState;
  io?: ContainerIO;
  /** Resolves once the exit of a started task has been handled. */
  exited?: Promise<void>;
}

/** The sandbox service's part a container needs. */
export interface SandboxLookup {
  /** A sandbox by id or unique prefix; `what` words the lookup's error (`<what>: not found`). */
  get(ctx: Context, id: string, what?: string): Promise<Sandbox>;
  /** The pause task's pid, 0 when it does not run. */
  pausePid(ctx: Context, id: string): Promise<number>;
  /** The sandbox's files. */
  files(s: Sandbox): { hostname: string; hosts: string; resolvConf: string; shm: string };
}

/** The services the container service drives, each in the namespace `k8s.io`. */
export interface ContainerServiceOptions {
  rootDir: string;
  stateDir: string;
  snapshotter: string;
  /** ImageFsInfo's and ContainerStats's mountpoint. */
  imageFsPath: string;
  maxLogLineSize: number;
  restrictOomScoreAdj: boolean;
  /** Whether the sandbox's runtime handler gives privileged containers no host devices. */
  privilegedWithoutHostDevices: (runtimeHandler: string) => boolean;
  images: { get(ctx: Context, ref: string): Promise<CriImage> };
  sandboxes: SandboxLookup;
  containers: {
    get(ctx: Context, id: string): Promise<SandboxContainer>;
    list(ctx: Context, filters?: readonly string[]): Promise<SandboxContainer[]>;
    create(ctx: Context, c: SandboxContainer): Promise<SandboxContainer>;
    update(ctx: Context, c: SandboxContainer, fieldpaths?: readonly string[]): Promise<SandboxContainer>;
    delete(ctx: Context, id: string): Promise<void>;
  };
  tasks: ExecTasks & {
    create(ctx: Context, req: { containerId: string; rootfs: Mount[]; stdin: string; stdout: string; stderr: string; terminal: boolean; runtimePath: string }): Promise<{ pid: number }>;
    get(ctx: Context, req: { containerId: string; execId: string }): Promise<{ process?: { pid: number; status: number; exitStatus: number; exitedAt?: Date; stdin: string; stdout: string; stderr: string; terminal: boolean } }>;
    delete(ctx: Context, req: { containerId: string }): Promise<{ exitStatus: number; exitedAt?: Date }>;
    wait(ctx: Context, req: { containerId: string; execId: string }): Promise<{ exitStatus: number; exitedAt?: Date }>;
    update(ctx: Context, req: { containerId: string; resources?: { typeUrl: string; value: Buffer }; annotations: Record<string, string> }): Promise<void>;
    metrics(ctx: Context, req: { filters: string[] }): Promise<{ metrics: Array<{ id: string; timestamp?: Date; data?: { typeUrl: string; value: Buffer } }> }>;
  };
  /** Told of every container created, started, stopped (StopContainer or its own exit) and removed. */
  events?: ContainerEventSink;
  snapshots: {
    prepare(ctx: Context, snapshotter: string, key: string, parent: string): Promise<Mount[]>;
    mounts(ctx: Context, snapshotter: string, key: string): Promise<Mount[]>;
    remove(ctx: Context, snapshotter: string, key: string): Promise<void>;
    usage(ctx: Context, snapshotter: string, key: string): Promise<{ size: number; inodes: number }>;
  };
  leases: {
    create(ctx: Context, id: string, labels: Record<string, string>): Promise<{ id: string }>;
    delete(ctx: Context, id: string): Promise<void>;
  };
  logger: Logger;
}

/** The filter of ListContainers. */
export interface ContainerFilter {
  id?: string;
  state?: number;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

/** A container's resource use, as ContainerStats reports it. */
export interface ContainerStatsView {
  container: CriContainer;
  cpu?: { timestampNs: bigint; usageCoreNanoSeconds: number };
  memory?: { timestampNs: bigint; workingSetBytes: number; usageBytes: number; rssBytes: number; pageFaults: number; majorPageFaults: number; availableBytes?: number };
  writableLayer?: { timestampNs: bigint; mountpoint: string; usedBytes: number; inodesUsed: number };
}

/** A container's name as containerd makes it: `name_podname_podnamespace_poduid_attempt`. */
export function containerName(c: Cri.ContainerMetadata, s: Cri.PodSandboxMetadata): string {
  return [c.name, s.name, s.namespace, s.uid, String(c.attempt)].join('_');
}

/** The CRI state of a container's status (containerd's Status.State). */
export function stateOf(s: ContainerState): number {
  if (s.unknown) return CONTAINER_UNKNOWN;
  if (s.finishedAt !== 0n) return CONTAINER_EXITED;
  if (s.startedAt !== 0n) return CONTAINER_RUNNING;
  if (s.createdAt !== 0n) return CONTAINER_CREATED;
  return CONTAINER_UNKNOWN;
}

const STATE_NAMES = ['CONTAINER_CREATED', 'CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_UNKNOWN'];

/**
 * The CRI containers of a daemon. Operations on one container run one after the other (a Stop
 * and a Remove kubelet retries, a Start racing a Remove).
 */
export class ContainerService {
  private readonly containers = new Map<string, CriContainer>();
  private readonly names = new Map<string, string>();
  private loaded?: Promise<void>;
  private readonly queues = new KeyedSerial();
  /** Work left running after a call answered (a removed container's directories); `close` waits for it. */
  private readonly trailing = new Set<Promise<unknown>>();

  constructor(private readonly o: ContainerServiceOptions) {}

  private ns(ctx: Context): Context {
    return withNamespace(ctx, CRI_NAMESPACE);
  }

  /** Waits for the work left running after its call answered, and for status writes in flight. */
  async close(): Promise<void> {
    await Promise.all([...this.trailing, ...this.statusWrites.values()]);
  }

  /** Runs `work` past the call's answer, logging its failure; `close` waits for it. */
  private afterAnswer(what: string, id: string, work: Promise<unknown>): void {
    const p = work.catch((err: Error) => this.o.logger.warn(what, { id, error: err.message }));
    this.trailing.add(p);
    void p.then(() => this.trailing.delete(p));
  }

  /**
   * Removes container directories no container owns any more, left by a removal the daemon died
   * in (or by a container whose record could not be read back), as containerd's CRI plugin
   * sweeps its id directories when it starts.
   */
  private async sweepOrphans(): Promise<void> {
    for (const base of [join(this.o.rootDir, 'containers'), join(this.o.stateDir, 'containers')]) {
      let names: string[];
      try {
        names = await fsp.readdir(base);
      } catch {
        continue;
      }
      const orphans = names.filter((n) => !this.containers.has(n));
      await Promise.all(
        orphans.map((n) =>
          fsp.rm(join(base, n), { recursive: true, force: true }).catch((err: Error) => this.o.logger.warn('removing an orphaned container directory', { path: join(base, n), error: err.message })),
        ),
      );
      if (orphans.length > 0) this.o.logger.info('removed orphaned container directories', { dir: base, count: orphans.length });
    }
  }

  /** A context for work that outlives the call (waiting for a task's exit). */
  private background(): Context {
    return context({ namespace: CRI_NAMESPACE });
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.queues.run(id, fn);
  }

  private rootOf(id: string): string {
    return join(this.o.rootDir, 'containers', id);
  }
  private stateDirOf(id: string): string {
    return join(this.o.stateDir, 'containers', id);
  }

  /** The containers' and execs' FIFOs, made ahead on the state dir's filesystem (from the first container on). */
  private fifoPool: FifoPool | undefined;
  private get fifos(): FifoPool {
    this.fifoPool ??= new FifoPool(join(this.o.stateDir, 'fifo-pool'));
    return this.fifoPool;
  }

  // ---- durable state ------------------------------------------------------------------------

  private metadataExtension(c: CriContainer): Buffer {
    const { loadCri } = require('./definitions') as typeof import('./definitions');
    const config = goContainerConfig(loadCri().ContainerConfig.fromPartial(c.config));
    return Buffer.from(
      JSON.stringify({
        Version: 'v1',
        Metadata: { ID: c.id, Name: c.name, SandboxID: c.sandboxId, Config: config, ImageRef: c.imageRef, LogPath: c.logPath, StopSignal: c.stopSignal, ProcessLabel: '' },
      }),
    );
  }

  /** Each container's status write in flight: writes follow one another, so the last state wins. */
  private readonly statusWrites = new Map<string, Promise<void>>();

  /**
   * Saves the container's status (what a restarted daemon reads back) as it is now, replacing the
   * file in one rename; resolves once it is written. Off the event loop: creating a file can wait
   * for the disk's journal while others sync. A container whose directory is gone (removed) has
   * nothing to save.
   */
  private writeStatus(c: CriContainer): Promise<void> {
    const s = c.state;
    const doc = JSON.stringify({
      Version: 'v1',
      Status: {
        Pid: s.pid,
        CreatedAt: s.createdAt.toString(),
        StartedAt: s.startedAt.toString(),
        FinishedAt: s.finishedAt.toString(),
        ExitCode: s.exitCode,
        Reason: s.reason,
        Message: s.message,
        Removing: s.removing,
        Unknown: s.unknown,
        IO: c.io?.paths ?? null,
        ImageName: c.imageName,
      },
    });
    const dir = this.rootOf(c.id);
    const write = async () => {
      const tmp = join(dir, `.status-${randomBytes(4).toString('hex')}`);
      try {
        await fsp.writeFile(tmp, doc, { mode: 0o600 });
        await fsp.rename(tmp, join(dir, 'status'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        // Never rejects: the next write of this container chains on this one.
        await fsp.rm(tmp, { force: true }).catch(() => undefined);
        this.o.logger.warn('saving a container status', { id: c.id, error: (err as Error).message });
      }
    };
    const next = (this.statusWrites.get(c.id) ?? Promise.resolve()).then(write);
    this.statusWrites.set(c.id, next);
    void next.then(() => {
      if (this.statusWrites.get(c.id) === next) this.statusWrites.delete(c.id);
    });
    return next;
  }

  /** Reads the containers of earlier runs back from their records and status files, once. */
  private load(ctx: Context): Promise<void> {
    this.loaded ??= (async () => {
      const records = await this.o.containers.list(ctx, [`labels."${CRI_KIND_LABEL}"==container`]);
      for (const r of records) {
        const ext = r.extensions[CONTAINER_METADATA_EXTENSION];
        if (!ext) continue;
        try {
          await this.recover(r, ext.value);
        } catch (err) {
          this.o.logger.warn('container metadata left out', { id: r.id, error: (err as Error).message });
        }
      }
      await this.sweepOrphans();
    })().catch((err) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private async recover(record: SandboxContainer, ext: Buffer): Promise<void> {
    const { loadCri } = require('./definitions') as typeof import('./definitions');
    const doc = JSON.parse(ext.toString()) as { Version: string; Metadata: Record<string, any> };
    if (doc.Version !== 'v1') throw new UnknownError(`container metadata version ${JSON.stringify(doc.Version)}`);
    const m = doc.Metadata;
    const c: CriContainer = {
      id: m.ID,
      name: m.Name,
      sandboxId: m.SandboxID,
      config: loadCri().ContainerConfig.fromPartial(fromGoContainerConfig(m.Config ?? {}) as object),
      imageRef: m.ImageRef ?? '',
      imageName: record.image,
      logPath: m.LogPath ?? '',
      stopSignal: m.StopSignal ?? '',
      state: { pid: 0, createdAt: BigInt(record.createdAt?.getTime() ?? 0) * 1_000_000n, startedAt: 0n, finishedAt: 0n, exitCode: 0, reason: '', message: '', starting: false, removing: false, unknown: false },
    };
    let io: { stdin: string; stdout: string; stderr: string; terminal: boolean } | null = null;
    const statusFile = join(this.rootOf(c.id), 'status');
    if (existsSync(statusFile)) {
      const s = JSON.parse(readFileSync(statusFile, 'utf8')).Status as Record<string, any>;
      c.state = {
        pid: s.Pid ?? 0,
        createdAt: BigInt(s.CreatedAt ?? 0),
        startedAt: BigInt(s.StartedAt ?? 0),
        finishedAt: BigInt(s.FinishedAt ?? 0),
        exitCode: s.ExitCode ?? 0,
        reason: s.Reason ?? '',
        message: s.Message ?? '',
        starting: false,
        removing: !!s.Removing,
        unknown: !!s.Unknown,
      };
      io = s.IO ?? null;
    } else c.state.unknown = true;
    this.containers.set(c.id, c);
    this.names.set(c.name, c.id);
    if (record.spec) this.specs.set(c.id, JSON.parse(record.spec.value.toString()));
    if (io) c.io = this.newIO(c, io);
    const ctx = this.background();
    if (stateOf(c.state) === CONTAINER_RUNNING || stateOf(c.state) === CONTAINER_UNKNOWN) {
      let task: { pid: number; status: number; exitStatus: number; exitedAt?: Date } | undefined;
      try {
        task = (await this.o.tasks.get(ctx, { containerId: c.id, execId: '' })).process;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (task && task.status === TASK_RUNNING) {
        // Output keeps flowing into the log: the shim still holds the FIFOs' other ends.
        c.io?.connect(c.logPath);
        c.state.unknown = false;
        c.exited = this.watch(c);
      } else if (task && task.status === TASK_STOPPED) {
        // It exited while the daemon was down: its exit is known now; the rest (the output
        // still in the FIFOs, deleting the task) follows.
        const at = task.exitedAt && task.exitedAt.getTime() > 0 ? BigInt(task.exitedAt.getTime()) * 1_000_000n : nowNs();
        c.state = { ...c.state, pid: 0, finishedAt: at, exitCode: task.exitStatus, unknown: false };
        await this.writeStatus(c);
        c.io?.connect(c.logPath);
        // No CONTAINER_STOPPED_EVENT: containerd 2.x sends none for an exit it finds at restart.
        c.exited = this.watch(c, false);
      } else if (stateOf(c.state) === CONTAINER_RUNNING) {
        c.state = { ...c.state, pid: 0, finishedAt: nowNs(), exitCode: UNKNOWN_EXIT_CODE, reason: 'Unknown', unknown: false };
        await this.writeStatus(c);
      }
    }
  }

  private newIO(c: CriContainer, paths?: { stdin: string; stdout: string; stderr: string; terminal: boolean }): ContainerIO {
    const closeStdin = () => this.o.tasks.closeIO(this.background(), { containerId: c.id, execId: '', stdin: true });
    const opts = { maxLineSize: this.o.maxLogLineSize, stdinOnce: c.config.stdinOnce, closeStdin };
    return new ContainerIO(paths!, opts);
  }

  /**
   * Reads earlier runs' containers back now rather than at the first CRI call, so that running
   * containers' output keeps flowing into their logs (and their exits are recorded) after a
   * restart even before a client calls. Costs nothing when there are none.
   */
  restore(): Promise<void> {
    return this.load(this.background());
  }

  /**
   * A container by id or unique id prefix. `what` is the call's words before the lookup's error,
   * as containerd words them: NotFound `<what>: not found`, or for an empty id Unknown
   * `<what>: Prefix can't be empty`.
   */
  private find(id: string, what = `an error occurred when try to find container ${JSON.stringify(id)}`): CriContainer {
    if (id === '') throw new UnknownError(`${what}: ${EMPTY_PREFIX}`, { bare: true });
    const exact = this.containers.get(id);
    if (exact) return exact;
    const matches = [...this.containers.keys()].filter((k) => k.startsWith(id));
    if (matches.length !== 1) throw new NotFoundError(`${what}: not found`, { bare: true });
    return this.containers.get(matches[0])!;
  }

  /** A container by id or prefix, after earlier runs' containers were read back; `what` words the error (see `find`). */
  async get(callCtx: Context, id: string, what?: string): Promise<CriContainer> {
    await this.load(this.ns(callCtx));
    return this.find(id, what);
  }

  // ---- CreateContainer ---------------------------------------------------------------------

  /**
   * CreateContainer, in containerd 1.6's order: the sandbox and its pause pid, the name
   * reserved, the image (it must have been pulled), the FIFOs, the spec, the snapshot and the
   * container record with the metadata extension, the status file. Undone on failure.
   */
  async create(callCtx: Context, sandboxId: string, config: Cri.ContainerConfig, sandboxConfigIn?: Cri.PodSandboxConfig): Promise<string> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    let sandbox: Sandbox;
    const what = `failed to find sandbox id ${JSON.stringify(sandboxId)}`;
    try {
      sandbox = await this.o.sandboxes.get(ctx, sandboxId, what);
    } catch (err) {
      // The lookup's own errors are worded already.
      if (isNotFound(err) || sandboxId === '') throw err;
      throw wrap(err, what);
    }
    const sandboxConfig = sandbox.config ?? sandboxConfigIn;
    const pausePid = await this.o.sandboxes.pausePid(ctx, sandbox.id);
    if (pausePid === 0) throw new NotFoundError(`failed to get sandbox container task: no running task found: task ${sandbox.id} not found`, { bare: true });
    const metadata = config.metadata;
    if (!metadata) throw new UnknownError('container config must include metadata', { bare: true });
    const id = randomBytes(32).toString('hex');
    const name = containerName(metadata, sandboxConfig.metadata!);
    const undo: Array<[string, () => Promise<void> | void]> = [];
    try {
      const holder = this.names.get(name);
      if (holder !== undefined) throw new UnknownError(`failed to reserve container name ${JSON.stringify(name)}: name ${JSON.stringify(name)} is reserved for ${JSON.stringify(holder)}`, { bare: true });
      this.names.set(name, id);
      undo.push(['name', () => void this.names.delete(name)]);

      const imageRef = config.image?.image ?? '';
      let image: CriImage;
      try {
        image = await this.o.images.get(ctx, imageRef);
      } catch (err) {
        // containerd's words: the image store's NotFound is a bare `not found`.
        if (isNotFound(err)) throw new NotFoundError(`failed to resolve image ${JSON.stringify(imageRef)}: not found`, { bare: true, cause: err });
        throw wrap(err, `failed to resolve image ${JSON.stringify(imageRef)}`);
      }
      checkMounts(config);

      const root = this.rootOf(id);
      const volatile = this.stateDirOf(id);
      const made = await Promise.allSettled([fsp.mkdir(root, { recursive: true, mode: 0o755 }), fsp.mkdir(volatile, { recursive: true, mode: 0o755 })]);
      undo.push(['root dir', () => rmSync(root, { recursive: true, force: true })]);
      undo.push(['state dir', () => rmSync(volatile, { recursive: true, force: true })]);
      for (const m of made) if (m.status === 'rejected') throw m.reason;

      const logPath = sandboxConfig.logDirectory !== '' && config.logPath !== '' ? join(sandboxConfig.logDirectory, config.logPath) : '';
      const imageConfig = (image.spec.config ?? {}) as { User?: string; Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string; StopSignal?: string; Labels?: Record<string, string> };
      const c: CriContainer = {
        id,
        name,
        sandboxId: sandbox.id,
        config,
        imageRef: image.id,
        imageName: image.references[0] ?? imageRef,
        logPath,
        stopSignal: imageConfig.StopSignal ?? '',
        state: { pid: 0, createdAt: 0n, startedAt: 0n, finishedAt: 0n, exitCode: 0, reason: '', message: '', starting: false, removing: false, unknown: false },
      };

      // The container's stdio (its FIFOs and log) is made beside the snapshot.
      const io = ContainerIO.create(this.fifos, join(volatile, 'io'), id, {
        stdin: config.stdin,
        tty: config.tty,
        maxLineSize: this.o.maxLogLineSize,
        stdinOnce: config.stdinOnce,
        closeStdin: () => this.o.tasks.closeIO(this.background(), { containerId: id, execId: '', stdin: true }),
      });
      io.catch(() => undefined); // awaited below, or by the undo
      undo.push(['io', async () => (await io.catch(() => undefined))?.close(true)]);

      // The snapshot first: the user is looked up in its files.
      const snapshotter = this.o.snapshotter;
      const lease = await this.o.leases.create(ctx, '', { 'containerd.io/gc.expire': new Date(Date.now() + 3600_000).toISOString() });
      const dropLease = () =>
        this.o.leases.delete(ctx, lease.id).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      undo.push(['lease', dropLease]);
      let rootfs: Mount[];
      try {
        rootfs = await this.o.snapshots.prepare({ ...ctx, lease: lease.id }, snapshotter, id, image.chainId);
      } catch (err) {
        throw wrap(err, 'failed to create containerd container: failed to prepare snapshot');
      }
      undo.push(['snapshot', () => this.o.snapshots.remove(ctx, snapshotter, id)]);

      const sandboxRecord = await this.o.containers.get(ctx, sandbox.id);
      const targetId = config.linux?.securityContext?.namespaceOptions?.targetId ?? '';
      let targetPid: number | undefined;
      if (targetId !== '') {
        const target = this.containers.get(targetId);
        if (!target || stateOf(target.state) !== CONTAINER_RUNNING) throw new UnknownError(`failed to generate container ${JSON.stringify(id)} spec: container ${JSON.stringify(targetId)} does not run`, { bare: true });
        targetPid = target.state.pid;
      }
      let spec: Record<string, unknown>;
      try {
        spec = containerSpec({
          id,
          config,
          sandboxConfig,
          sandboxId: sandbox.id,
          sandboxPid: pausePid,
          ...(targetPid ? { targetPid } : {}),
          imageName: c.imageName,
          imageConfig,
          readRootfsFile: rootfsFileReader(rootfs),
          sandboxFiles: this.o.sandboxes.files(sandbox),
          hostname: sandboxConfig.hostname,
          restrictOomScoreAdj: this.o.restrictOomScoreAdj,
          privilegedWithoutHostDevices: this.o.privilegedWithoutHostDevices(sandbox.runtimeHandler),
        });
      } catch (err) {
        throw wrap(err, `failed to generate container ${JSON.stringify(id)} spec`);
      }
      this.specs.set(id, spec);

      c.io = await io;

      try {
        await this.o.containers.create(ctx, {
          id,
          labels: { ...(imageConfig.Labels ?? {}), ...config.labels, [CRI_KIND_LABEL]: 'container' },
          image: c.imageName,
          // containerd gives a runc container its handler's options, an empty message for none.
          runtime: sandboxRecord.runtime.options || !sandboxRecord.runtime.name.startsWith('io.containerd.runc.')
            ? sandboxRecord.runtime
            : { name: sandboxRecord.runtime.name, options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } },
          spec: { typeUrl: SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) },
          snapshotter,
          snapshotKey: id,
          extensions: { [CONTAINER_METADATA_EXTENSION]: { typeUrl: CONTAINER_METADATA_TYPE_URL, value: this.metadataExtension(c) } },
        });
      } catch (err) {
        throw wrap(err, 'failed to create containerd container');
      }
      undo.push(['container', () => this.o.containers.delete(ctx, id)]);
      await dropLease();
      c.state.createdAt = nowNs();
      await this.writeStatus(c);
      this.containers.set(id, c);
      void this.o.events?.emit('CONTAINER_CREATED_EVENT', id, c.sandboxId);
      return id;
    } catch (err) {
      for (const [what, fn] of undo.reverse()) {
        try {
          await fn();
        } catch (e) {
          this.o.logger.error(`undo ${what} of a failed container`, { id, error: (e as Error).message });
        }
      }
      throw err;
    }
  }

  // ---- StartContainer ----------------------------------------------------------------------

  /** StartContainer: opens the log, creates and starts the task, and watches it until it exits. */
  async start(callCtx: Context, id: string): Promise<void> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    const c = this.find(id);
    await this.serial(c.id, () => this.startContainer(ctx, c));
  }

  private async startContainer(ctx: Context, c: CriContainer): Promise<void> {
    const state = stateOf(c.state);
    if (c.state.removing) throw new UnknownError(`failed to set starting state for container ${JSON.stringify(c.id)}: container is in removing state`, { bare: true });
    if (state !== CONTAINER_CREATED) throw new UnknownError(`failed to set starting state for container ${JSON.stringify(c.id)}: container is in ${STATE_NAMES[state]} state`, { bare: true });
    c.state.starting = true;
    let taskCreated = false;
    try {
      let sandbox: Sandbox;
      try {
        sandbox = await this.o.sandboxes.get(ctx, c.sandboxId);
      } catch (err) {
        throw wrap(err, `sandbox ${JSON.stringify(c.sandboxId)} not found`);
      }
      if ((await this.o.sandboxes.pausePid(ctx, sandbox.id)) === 0) throw new UnknownError(`sandbox container ${JSON.stringify(c.sandboxId)} is not running`, { bare: true });
      if (!c.io) throw new UnknownError(`container ${JSON.stringify(c.id)} has no IO`);
      try {
        c.io.connect(c.logPath);
      } catch (err) {
        throw wrap(err, 'failed to create and open log file');
      }
      const rootfs = await this.o.snapshots.mounts(ctx, this.o.snapshotter, c.id);
      const p = c.io.paths;
      try {
        await this.o.tasks.create(ctx, { containerId: c.id, rootfs, stdin: p.stdin, stdout: p.stdout, stderr: p.stderr, terminal: p.terminal, runtimePath: '' });
      } catch (err) {
        throw wrap(err, 'failed to create containerd task');
      }
      taskCreated = true;
      let pid: number;
      try {
        pid = (await this.o.tasks.start(ctx, { containerId: c.id, execId: '' })).pid;
      } catch (err) {
        throw wrap(err, `failed to start containerd task ${JSON.stringify(c.id)}`);
      }
      c.state = { ...c.state, pid, startedAt: nowNs(), starting: false };
      await this.writeStatus(c);
      c.exited = this.watch(c);
      // Emitted before the watch can see an exit: STARTED always comes before its STOPPED. Not
      // waited for (nor are the other calls' events): the hub publishes in emit order, and the
      // event's pod status (a shim round trip) stays off the call's time.
      void this.o.events?.emit('CONTAINER_STARTED_EVENT', c.id, c.sandboxId);
    } catch (err) {
      if (taskCreated) {
        await this.o.tasks.kill(ctx, { containerId: c.id, execId: '', signal: SIGKILL, all: true }).catch(() => undefined);
        await this.o.tasks.delete(ctx, { containerId: c.id }).catch(() => undefined);
      }
      c.io?.close(false);
      c.state = { ...c.state, pid: 0, starting: false, finishedAt: nowNs(), exitCode: 128, reason: 'StartError', message: (err as Error).message };
      await this.writeStatus(c);
      throw err;
    }
  }

  /**
   * Waits for the task's exit, then records it (OOMKilled when the cgroup saw an OOM kill), drains
   * the output, deletes the task and (with `announce`) emits CONTAINER_STOPPED_EVENT.
   */
  private watch(c: CriContainer, announce = true): Promise<void> {
    const ctx = this.background();
    const run = (async () => {
      let exitStatus = UNKNOWN_EXIT_CODE;
      let exitedAt: Date | undefined;
      try {
        const w = await this.o.tasks.wait(ctx, { containerId: c.id, execId: '' });
        exitStatus = w.exitStatus;
        exitedAt = w.exitedAt;
      } catch (err) {
        if (!isNotFound(err)) this.o.logger.warn('waiting for a container task', { id: c.id, error: (err as Error).message });
      }
      const oom = this.oomKilled(c);
      const at = exitedAt && exitedAt.getTime() > 0 ? BigInt(exitedAt.getTime()) * 1_000_000n : nowNs();
      c.state = { ...c.state, pid: 0, finishedAt: at, exitCode: exitStatus, reason: oom ? 'OOMKilled' : c.state.reason, unknown: false };
      await this.writeStatus(c);
      await c.io?.drained();
      try {
        await this.o.tasks.delete(ctx, { containerId: c.id });
      } catch (err) {
        if (!isNotFound(err)) this.o.logger.warn('deleting an exited container task', { id: c.id, error: (err as Error).message });
      }
      c.io?.close(false);
      if (announce) await this.o.events?.emit('CONTAINER_STOPPED_EVENT', c.id, c.sandboxId);
    })();
    return run.catch((err) => this.o.logger.error('container exit handling', { id: c.id, error: (err as Error).message }));
  }

  /** Whether the container's memory cgroup recorded an OOM kill (read before the task is deleted). */
  private oomKilled(c: CriContainer): boolean {
    try {
      const record = this.specOf(c);
      const path = record?.linux?.cgroupsPath as string | undefined;
      if (!path || path.includes(':')) return false;
      for (const file of [join('/sys/fs/cgroup/memory', path, 'memory.oom_control'), join('/sys/fs/cgroup', path, 'memory.events')]) {
        if (!existsSync(file)) continue;
        const m = /oom_kill (\d+)/.exec(readFileSync(file, 'utf8'));
        if (m && Number(m[1]) > 0) return true;
      }
    } catch {
      /* no cgroup to read */
    }
    return false;
  }

  private readonly specs = new Map<string, Record<string, any>>();
  private specOf(c: CriContainer): Record<string, any> | undefined {
    return this.specs.get(c.id);
  }

  // ---- StopContainer / RemoveContainer -------------------------------------------------------

  /** StopContainer: the stop signal, `timeout` seconds, then SIGKILL; waits for the exit. Missing or not running: done. */
  async stop(callCtx: Context, id: string, timeoutSec: number): Promise<void> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    let c: CriContainer;
    try {
      c = this.find(id);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await this.serial(c.id, () => this.stopContainer(ctx, c, timeoutSec));
  }

  private async stopContainer(ctx: Context, c: CriContainer, timeoutSec: number): Promise<void> {
    const state = stateOf(c.state);
    if (state !== CONTAINER_RUNNING && state !== CONTAINER_UNKNOWN) return;
    if (!c.exited) {
      // Unknown and no task watched: nothing runs. containerd handles it as an exit, event included.
      c.state = { ...c.state, finishedAt: nowNs(), exitCode: UNKNOWN_EXIT_CODE, reason: 'Unknown', unknown: false, pid: 0 };
      await this.writeStatus(c);
      await this.o.events?.emit('CONTAINER_STOPPED_EVENT', c.id, c.sandboxId);
      return;
    }
    const kill = async (signal: number) => {
      try {
        await this.o.tasks.kill(ctx, { containerId: c.id, execId: '', signal, all: false });
      } catch (err) {
        if (!isNotFound(err)) throw wrap(err, `failed to stop container ${JSON.stringify(c.id)}`);
      }
    };
    if (timeoutSec > 0) {
      const signal = signalNumber(c.stopSignal || 'SIGTERM');
      await kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([c.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutSec * 1000)))]);
      clearTimeout(timer);
      if (done) return;
    }
    await kill(SIGKILL);
    await c.exited;
  }

  /** RemoveContainer: kills a running container, then deletes its record, snapshot, dirs and name. Missing: done. */
  async remove(callCtx: Context, id: string): Promise<void> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    let c: CriContainer;
    try {
      c = this.find(id);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await this.serial(c.id, () => this.removeContainer(ctx, c));
  }

  private async removeContainer(ctx: Context, c: CriContainer): Promise<void> {
    if (!this.containers.has(c.id)) return;
    const state = stateOf(c.state);
    if (state === CONTAINER_RUNNING || state === CONTAINER_UNKNOWN) {
      try {
        await this.stopContainer(ctx, c, 0);
      } catch (err) {
        throw wrap(err, `failed to forcibly stop container ${JSON.stringify(c.id)}`);
      }
    }
    c.state.removing = true;
    // Saved beside the deletions below (its directory goes only after it).
    const saved = this.writeStatus(c);
    // A task that is still there (a start that failed halfway, a lost exit) goes first.
    await this.o.tasks.delete(ctx, { containerId: c.id }).catch(() => undefined);
    try {
      await this.o.containers.delete(ctx, c.id);
    } catch (err) {
      if (!isNotFound(err)) {
        c.state.removing = false;
        await saved;
        throw wrap(err, `failed to delete containerd container ${JSON.stringify(c.id)}`);
      }
    }
    try {
      await this.o.snapshots.remove(ctx, this.o.snapshotter, c.id);
    } catch (err) {
      if (!isNotFound(err)) this.o.logger.warn('removing a container snapshot', { id: c.id, error: (err as Error).message });
    }
    c.io?.close(true);
    // Its directories go after the answer: no call can reach them once it has left the list (a new
    // container gets a new id), and a daemon that dies first sweeps them at its next start.
    const dirs = [this.rootOf(c.id), this.stateDirOf(c.id)];
    this.afterAnswer(
      'removing a removed container directory',
      c.id,
      saved.then(() => Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })))),
    );
    this.containers.delete(c.id);
    this.specs.delete(c.id);
    if (this.names.get(c.name) === c.id) this.names.delete(c.name);
    // After it left the list, as containerd: the event's statuses are the pod's other containers.
    void this.o.events?.emit('CONTAINER_DELETED_EVENT', c.id, c.sandboxId);
  }

  /** Stops every container of a sandbox at once (SIGKILL), as StopPodSandbox does first. */
  async stopAll(callCtx: Context, sandboxId: string): Promise<void> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    const mine = [...this.containers.values()].filter((c) => c.sandboxId === sandboxId);
    await Promise.all(mine.map((c) => this.serial(c.id, () => this.stopContainer(ctx, c, 0)).catch((err: unknown) => {
      throw wrap(err, `failed to stop container ${JSON.stringify(c.id)}`);
    })));
  }

  /** Removes every container of a sandbox, as RemovePodSandbox does first. */
  async removeAll(callCtx: Context, sandboxId: string): Promise<void> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    const mine = [...this.containers.values()].filter((c) => c.sandboxId === sandboxId);
    for (const c of mine) {
      try {
        await this.serial(c.id, () => this.removeContainer(ctx, c));
      } catch (err) {
        throw wrap(err, `failed to remove container ${JSON.stringify(c.id)}`);
      }
    }
  }

  // ---- ContainerStatus / ListContainers ----------------------------------------------------

  /**
   * The statuses of a pod's containers for an event (what ListContainers and ContainerStatus
   * would answer), their state copied at the call, before its first await, so that an event
   * shows the state it announces.
   */
  async eventStatuses(sandboxId: string): Promise<Array<{ container: CriContainer; image?: CriImage }>> {
    const copies = [...this.containers.values()]
      .filter((c) => c.sandboxId === sandboxId)
      .sort((a, b) => (a.state.createdAt < b.state.createdAt ? -1 : 1))
      .map((c) => ({ ...c, state: { ...c.state } }));
    const ctx = this.background();
    return Promise.all(copies.map(async (container) => {
      const image = await this.o.images.get(ctx, container.imageRef).catch(() => undefined);
      return image ? { container, image } : { container };
    }));
  }

  /** ContainerStatus: one container with its record (for verbose info). NotFound when missing. */
  async status(callCtx: Context, id: string): Promise<{ container: CriContainer; record?: SandboxContainer; image?: CriImage }> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    const c = this.find(id);
    const record = await this.o.containers.get(ctx, c.id).catch(() => undefined);
    const image = await this.o.images.get(ctx, c.imageRef).catch(() => undefined);
    return { container: c, ...(record ? { record } : {}), ...(image ? { image } : {}) };
  }

  /** ListContainers: id prefix, state, sandbox id prefix, every selector label. */
  async list(callCtx: Context, filter: ContainerFilter = {}): Promise<CriContainer[]> {
    const ctx = this.ns(callCtx);
    await this.load(ctx);
    let id = filter.id ?? '';
    if (id !== '') {
      try {
        id = this.find(id).id;
      } catch {
        /* no match: the exact comparison below leaves everything out */
      }
    }
    let sandboxId = filter.podSandboxId ?? '';
    if (sandboxId !== '') {
      try {
        sandboxId = (await this.o.sandboxes.get(ctx, sandboxId)).id;
      } catch {
        /* as above */
      }
    }
    return selectContainers(this.containers.values(), { id, sandboxId, state: filter.state, labelSelector: filter.labelSelector ?? {} });
  }

  // ---- logs, exec, resources, stats -----------------------------------------------------------

  /** ReopenContainerLog: a new log file at the path for a running container. */
  async reopenLog(callCtx: Context, id: string): Promise<void> {
    const c = await this.get(callCtx, id);
    if (stateOf(c.state) !== CONTAINER_RUNNING) throw new UnknownError('container is not running', { bare: true });
    try {
      c.io?.reopen();
    } catch (err) {
      throw wrap(err, 'failed to create and open log file');
    }
  }

  /** Joins a client to a running container's stdio (the streaming server's Attach). */
  /**
   * The full id of container `id` (an id or a unique prefix) if it runs; otherwise containerd's
   * Unknown "container is in <STATE> state". Exec and Attach ask before they hand out a URL.
   */
  async requireRunning(callCtx: Context, id: string, what?: string): Promise<string> {
    const c = await this.get(callCtx, id, what);
    if (stateOf(c.state) !== CONTAINER_RUNNING) throw new UnknownError(`container is in ${STATE_NAMES[stateOf(c.state)]} state`, { bare: true });
    return c.id;
  }

  /** Resizes the terminal of a running container's own process (an attach with a tty). */
  async resizeTerminal(callCtx: Context, id: string, width: number, height: number): Promise<void> {
    const ctx = this.ns(callCtx);
    const c = await this.get(ctx, id);
    await this.o.tasks.resizePty(ctx, { containerId: c.id, execId: '', width, height });
  }

  async attach(callCtx: Context, id: string, streams: { stdin?: Readable; stdout?: Writable; stderr?: Writable }): Promise<void> {
    const c = await this.get(callCtx, id, 'failed to find container in store');
    if (stateOf(c.state) !== CONTAINER_RUNNING) throw new UnknownError(`container is in ${STATE_NAMES[stateOf(c.state)]} state`, { bare: true });
    if (!c.io) throw new UnknownError(`container ${JSON.stringify(c.id)} has no IO`);
    await c.io.attach(streams);
  }

  /**
   * Runs a command in a running container (the container's process spec with these args) with
   * its stdio on Node streams: ExecSync uses it, and the streaming server's Exec.
   */
  async exec(callCtx: Context, id: string, o: { cmd: string[]; tty: boolean; stdin?: Readable; stdout?: Writable; stderr?: Writable }): Promise<ExecHandle> {
    const ctx = this.ns(callCtx);
    const c = await this.get(ctx, id, `failed to find container ${JSON.stringify(id)} in store`);
    if (stateOf(c.state) !== CONTAINER_RUNNING) throw new UnknownError(`container is in ${STATE_NAMES[stateOf(c.state)]} state`, { bare: true });
    const record = await this.o.containers.get(ctx, c.id);
    const spec = JSON.parse(record.spec!.value.toString()) as { process: Record<string, any> };
    const env: string[] = [...(spec.process.env ?? [])];
    if (o.tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
    const processSpec = { ...spec.process, args: o.cmd, terminal: o.tty, env };
    return execInTask(this.o.tasks, this.background(), {
      containerId: c.id,
      process: processSpec,
      tty: o.tty,
      fifoDir: join(this.stateDirOf(c.id), 'exec'),
      fifos: this.fifos,
      ...(o.stdin ? { stdin: o.stdin } : {}),
      ...(o.stdout ? { stdout: o.stdout } : {}),
      ...(o.stderr ? { stderr: o.stderr } : {}),
    });
  }

  /** ExecSync: output capped at 16 MiB per stream; on timeout the exec is SIGKILLed and DeadlineExceeded returned. */
  async execSync(callCtx: Context, id: string, cmd: string[], timeoutSec: number): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
    const capped = () => {
      const chunks: Buffer[] = [];
      let size = 0;
      const w = {
        write(b: Buffer) {
          if (size >= EXEC_SYNC_MAX_OUTPUT) return true;
          const take = b.subarray(0, EXEC_SYNC_MAX_OUTPUT - size);
          chunks.push(Buffer.from(take));
          size += take.length;
          return true;
        },
      } as unknown as Writable;
      return { w, data: () => Buffer.concat(chunks) };
    };
    const out = capped();
    const err = capped();
    let handle: ExecHandle;
    try {
      handle = await this.exec(callCtx, id, { cmd, tty: false, stdout: out.w, stderr: err.w });
    } catch (e) {
      throw wrap(e, `failed to exec in container`);
    }
    if (timeoutSec > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([handle.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutSec * 1000)))]);
      clearTimeout(timer);
      if (timedOut) {
        await handle.kill(SIGKILL).catch(() => undefined);
        await handle.exited.catch(() => undefined);
        throw new DeadlineExceededError(`failed to exec in container: timeout ${timeoutSec}s exceeded: context deadline exceeded`, { bare: true });
      }
    }
    const exitCode = await handle.exited;
    return { stdout: out.data(), stderr: err.data(), exitCode };
  }

  /** UpdateContainerResources: the stored spec updated, and the running task's cgroup. */
  async updateResources(callCtx: Context, id: string, r: Cri.LinuxContainerResources | undefined, annotations: Record<string, string>): Promise<void> {
    const ctx = this.ns(callCtx);
    const c = await this.get(ctx, id, 'failed to find container');
    await this.serial(c.id, async () => {
      if (c.state.removing) throw new UnknownError(`failed to update resources: container ${JSON.stringify(c.id)} is in removing state`, { bare: true });
      if (!r) return;
      const record = await this.o.containers.get(ctx, c.id);
      const spec = JSON.parse(record.spec!.value.toString()) as Record<string, any>;
      const old = spec.linux?.resources ?? {};
      const merged = { ...old, ...specResources(r, old.devices ?? [{ allow: false, access: 'rwm' }]) };
      spec.linux = { ...(spec.linux ?? {}), resources: merged };
      if (r.oomScoreAdj) spec.process = { ...spec.process, oomScoreAdj: r.oomScoreAdj };
      await this.o.containers.update(ctx, { ...record, spec: { typeUrl: SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) } }, ['spec']);
      c.config = { ...c.config, linux: { ...(c.config.linux ?? {}), resources: r } as Cri.LinuxContainerConfig };
      if (stateOf(c.state) !== CONTAINER_RUNNING) return;
      try {
        await this.o.tasks.update(ctx, { containerId: c.id, resources: { typeUrl: RESOURCES_TYPE_URL, value: Buffer.from(JSON.stringify(merged)) }, annotations });
      } catch (err) {
        if (!isNotFound(err)) throw wrap(err, 'failed to update resources');
      }
    });
  }

  /** The resource use of containers (a task's cgroup metrics, the writable layer's usage). */
  async stats(callCtx: Context, filter: { id?: string; podSandboxId?: string; labelSelector?: Record<string, string> }): Promise<ContainerStatsView[]> {
    const ctx = this.ns(callCtx);
    const list = await this.list(ctx, { ...(filter.id ? { id: filter.id } : {}), ...(filter.podSandboxId ? { podSandboxId: filter.podSandboxId } : {}), labelSelector: filter.labelSelector ?? {} });
    if (filter.id && list.length === 0) return [];
    const metrics = list.length > 0 ? (await this.o.tasks.metrics(ctx, { filters: list.map((c) => `id==${c.id}`) })).metrics : [];
    const out: ContainerStatsView[] = [];
    for (const c of list) {
      const view: ContainerStatsView = { container: c };
      try {
        const u = await this.o.snapshots.usage(ctx, this.o.snapshotter, c.id);
        view.writableLayer = { timestampNs: nowNs(), mountpoint: this.o.imageFsPath, usedBytes: u.size, inodesUsed: u.inodes };
      } catch {
        /* no snapshot */
      }
      const m = metrics.find((x) => x.id === c.id);
      if (m?.data) Object.assign(view, decodeMetrics(m.data, m.timestamp));
      out.push(view);
    }
    return out;
  }
}

/** cgroups v1/v2 metrics as CRI's cpu and memory usage (working set = usage − inactive file). */
function decodeMetrics(data: { typeUrl: string; value: Buffer }, timestamp?: Date): Pick<ContainerStatsView, 'cpu' | 'memory'> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { cgroupsV1, cgroupsV2 } = require('@berth/api') as typeof import('@berth/api');
  const ts = BigInt((timestamp ?? new Date()).getTime()) * 1_000_000n;
  const n = (v: unknown) => Number(v ?? 0);
  if (data.typeUrl.endsWith('cgroups.v2.Metrics')) {
    const m = cgroupsV2.Metrics.decode(data.value);
    const usage = n(m.memory?.usage);
    const inactive = n(m.memory?.inactiveFile);
    return {
      cpu: { timestampNs: ts, usageCoreNanoSeconds: n(m.cpu?.usageUsec) * 1000 },
      memory: { timestampNs: ts, workingSetBytes: inactive < usage ? usage - inactive : 0, usageBytes: usage, rssBytes: n(m.memory?.anon), pageFaults: n(m.memory?.pgfault), majorPageFaults: n(m.memory?.pgmajfault) },
    };
  }
  const m = cgroupsV1.Metrics.decode(data.value);
  const usage = n(m.memory?.usage?.usage);
  const inactive = n(m.memory?.totalInactiveFile);
  return {
    cpu: { timestampNs: ts, usageCoreNanoSeconds: n(m.cpu?.usage?.total) },
    memory: { timestampNs: ts, workingSetBytes: inactive < usage ? usage - inactive : 0, usageBytes: usage, rssBytes: n(m.memory?.totalRss), pageFaults: n(m.memory?.totalPgFault), majorPageFaults: n(m.memory?.totalPgMajFault) },
  };
}

/** A ContainerConfig in Go's JSON (env values as strings, as cri-api v0.25's). */
function goContainerConfig(config: Cri.ContainerConfig): unknown {
  const envs = config.envs.map((e) => ({ key: e.key, value: Buffer.isBuffer(e.value) ? e.value.toString('utf8') : String(e.value ?? '') }));
  return toGoJson({ ...config, envs });
}

function fromGoContainerConfig(v: Record<string, any>): unknown {
  const out = fromGoJson(v) as Record<string, any>;
  if (Array.isArray(out.envs)) out.envs = out.envs.map((e: any) => ({ key: e.key ?? '', value: Buffer.from(String(e.value ?? '')) }));
  return out;
}

/**
 * Picks the containers that match every given criterion (an empty id or sandbox id matches all,
 * as does an absent state), oldest first, as ListContainers answers.
 * @internal Exported for its test.
 */
export function selectContainers(
  all: Iterable<CriContainer>,
  filter: { id: string; sandboxId: string; state?: number | undefined; labelSelector: Record<string, string> },
): CriContainer[] {
  const { id, sandboxId, state } = filter;
  const selector = Object.entries(filter.labelSelector);
  const out: CriContainer[] = [];
  next: for (const c of all) {
    if (id !== '' && c.id !== id) continue;
    if (sandboxId !== '' && c.sandboxId !== sandboxId) continue;
    if (state !== undefined && stateOf(c.state) !== state) continue;
    for (const [k, v] of selector) if (c.config.labels[k] !== v) continue next;
    out.push(c);
  }
  // Containers are mostly held in creation order already (kubelet lists every second): a pass
  // that finds them in order costs less than a sort.
  for (let i = 1; i < out.length; i++) {
    if (out[i - 1].state.createdAt > out[i].state.createdAt) return out.sort((a, b) => (a.state.createdAt < b.state.createdAt ? -1 : 1));
  }
  return out;
}
