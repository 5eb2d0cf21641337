import { RUNTIME_SPEC_TYPE_URLS, containers, images, packJsonAny, snapshots, tasks, unpackJsonAny } from '@berth/api';
import { InvalidArgumentError, NotFoundError, isNotFound } from '@berth/errdefs';
import { ProcessIO, type StdioOptions } from './cio';
import { type Connection, type RequestOptions, type Scope, callOptions } from './connection';
import { type Platform, ensureUnpacked, resolveImage, withTemporaryLease } from './image-content';
import { type Spec, type SpecOptions, applyImageConfig, applySpecOptions, applyUser, defaultSpec, resolveUser, rootfsFileReader } from '@berth/oci-spec';
import { Task } from './tasks';

/** The runtime containers run with unless told otherwise. */
export const DEFAULT_RUNTIME = 'io.containerd.runc.v2';
/** The snapshotter containers use unless told otherwise. */
export const DEFAULT_SNAPSHOTTER = 'overlayfs';

/** Options of a container made from an image. */
export interface NewContainerOptions extends SpecOptions, RequestOptions {
  /** `uid`, `uid:gid`, `name` or `name:group`, looked up in the image's /etc/passwd and /etc/group. */
  user?: string;
  /** Labels of the container record. */
  labels?: Record<string, string>;
  /** The snapshotter; overlayfs by default. */
  snapshotter?: string;
  /** The container's snapshot key; the container id by default. */
  snapshotKey?: string;
  /** The runtime; io.containerd.runc.v2 by default. */
  runtime?: string;
  /** The image platform to run; the host's by default. */
  platform?: Platform;
  /** Changes the spec last, after every option. */
  customize?: (spec: Spec) => void;
}

/** A container record as the client returns it. */
export interface ContainerInfo {
  id: string;
  image: string;
  labels: Record<string, string>;
  runtime: string;
  snapshotter: string;
  snapshotKey: string;
  createdAt?: Date;
  updatedAt?: Date;
}

const info = (c: containers.Container): ContainerInfo => ({
  id: c.id,
  image: c.image,
  labels: c.labels,
  runtime: c.runtime?.name ?? '',
  snapshotter: c.snapshotter,
  snapshotKey: c.snapshotKey,
  ...(c.createdAt ? { createdAt: c.createdAt } : {}),
  ...(c.updatedAt ? { updatedAt: c.updatedAt } : {}),
});

/** A container: its record, its spec, and its task. */
export class Container {
  constructor(
    private readonly conn: Connection,
    private readonly scope: Scope,
    private record: containers.Container,
  ) {}

  get id(): string {
    return this.record.id;
  }
  get info(): ContainerInfo {
    return info(this.record);
  }
  /** The container's OCI spec. */
  get spec(): Spec {
    if (!this.record.spec) throw new NotFoundError(`container "${this.id}" has no spec`);
    return unpackJsonAny<Spec>(this.record.spec);
  }

  /**
   * Creates the container's task with its stdio: the rootfs is the container's snapshot
   * (mounted by the shim), stdio FIFOs are made in a temp dir unless a log file is named.
   */
  async newTask(stdio: StdioOptions = {}, o?: RequestOptions): Promise<Task> {
    const terminal = stdio.terminal ?? !!this.spec.process?.terminal;
    const io = await ProcessIO.create(this.id, { ...stdio, terminal });
    try {
      let rootfs: snapshots.MountsResponse['mounts'] = [];
      if (this.record.snapshotKey) {
        rootfs = (await this.conn.service(snapshots.SnapshotsService).mounts({ snapshotter: this.record.snapshotter, key: this.record.snapshotKey }, callOptions(this.scope, o))).mounts;
      }
      const r = await this.conn
        .service(tasks.TasksService)
        .create({ containerId: this.id, rootfs, stdin: io.paths.stdin, stdout: io.paths.stdout, stderr: io.paths.stderr, terminal: io.paths.terminal, runtimePath: '' }, callOptions(this.scope, o));
      return new Task(this.conn, this.scope, this.id, '', r.pid, io);
    } catch (err) {
      io.close();
      throw err;
    }
  }

  /** The container's existing task, without stdio (attach to its log file or FIFOs yourself). */
  async task(o?: RequestOptions): Promise<Task> {
    const r = await this.conn.service(tasks.TasksService).get({ containerId: this.id, execId: '' }, callOptions(this.scope, o));
    return new Task(this.conn, this.scope, this.id, '', r.process?.pid ?? 0);
  }

  /** Replaces the container's labels (all of them). */
  async setLabels(labels: Record<string, string>, o?: RequestOptions): Promise<ContainerInfo> {
    const r = await this.conn.service(containers.ContainersService).update({ container: { ...this.record, labels }, updateMask: ['labels'] }, callOptions(this.scope, o));
    this.record = r.container!;
    return this.info;
  }

  /**
   * Deletes the container record, and its snapshot unless `keepSnapshot`. With `force`, a task
   * is first killed (SIGKILL, every process) and deleted; without, a task makes it fail.
   */
  async delete(o: RequestOptions & { keepSnapshot?: boolean; force?: boolean } = {}): Promise<void> {
    if (o.force) {
      const task = await this.task(o).catch((err) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (task) {
        const exited = task.wait(o);
        await task.kill('SIGKILL', { ...o, all: true }).catch((err) => {
          if (!isNotFound(err)) throw err;
        });
        await exited.catch(() => undefined);
        await task.delete(o);
      }
    }
    await this.conn.service(containers.ContainersService).delete({ id: this.id }, callOptions(this.scope, o));
    if (!o.keepSnapshot && this.record.snapshotKey) {
      await this.conn
        .service(snapshots.SnapshotsService)
        .remove({ snapshotter: this.record.snapshotter, key: this.record.snapshotKey }, callOptions(this.scope, o))
        .catch((err) => {
          if (!isNotFound(err)) throw err;
        });
    }
  }
}

/**
 * Creates a container from an image, as `ctr run` does: resolves the image for the platform,
 * unpacks it when its top snapshot is missing, prepares the container's snapshot on it, builds
 * the spec (containerd's default, the image's config, the user looked up in the snapshot's
 * /etc/passwd, then the options), and stores the container record. The snapshot is removed
 * again when a later step fails.
 */
export async function createContainer(conn: Connection, scope: Scope, id: string, imageName: string, o: NewContainerOptions = {}): Promise<Container> {
  if (id === '') throw new InvalidArgumentError('container id must not be empty');
  // Under a lease until the record exists: a collection in between would take the snapshot.
  const record = await withTemporaryLease(conn, scope, async (leased) => {
    const image = (await conn.service(images.ImagesService).get({ name: imageName }, callOptions(leased, o))).image!;
    const target = image.target!;
    const resolved = await resolveImage(conn, leased, { mediaType: target.mediaType, digest: target.digest, size: target.size }, o.platform);
    const snapshotter = o.snapshotter ?? DEFAULT_SNAPSHOTTER;
    await ensureUnpacked(conn, leased, resolved, snapshotter);
    const key = o.snapshotKey ?? id;
    const snaps = conn.service(snapshots.SnapshotsService);
    const prepared = await snaps.prepare({ snapshotter, key, parent: resolved.chainIds[resolved.chainIds.length - 1] ?? '', labels: {} }, callOptions(leased, o));
    try {
      const spec = applyImageConfig(defaultSpec(scope.namespace, id), resolved.runtime);
      const user = o.user ?? resolved.runtime.User ?? '';
      if (user !== '') applyUser(spec, resolveUser(user, rootfsFileReader(prepared.mounts)));
      applySpecOptions(spec, o, resolved.runtime);
      o.customize?.(spec);
      const r = await conn.service(containers.ContainersService).create(
        {
          container: {
            id,
            labels: o.labels ?? {},
            image: imageName,
            runtime: { name: o.runtime ?? DEFAULT_RUNTIME },
            spec: packJsonAny(RUNTIME_SPEC_TYPE_URLS.spec, spec),
            snapshotter,
            snapshotKey: key,
            extensions: {},
          },
        },
        callOptions(leased, o),
      );
      return r.container!;
    } catch (err) {
      await snaps.remove({ snapshotter, key }, callOptions(leased)).catch(() => undefined);
      throw err;
    }
  });
  return new Container(conn, scope, record);
}

/** Containers of a namespace. */
export class ContainersApi {
  constructor(
    private readonly conn: Connection,
    private readonly scope: Scope,
  ) {}

  private get svc() {
    return this.conn.service(containers.ContainersService);
  }

  /** Creates a container from an image (see {@link createContainer}). */
  create(id: string, image: string, o?: NewContainerOptions): Promise<Container> {
    return createContainer(this.conn, this.scope, id, image, o);
  }

  /** Loads a container by id. */
  async get(id: string, o?: RequestOptions): Promise<Container> {
    const r = await this.svc.get({ id }, callOptions(this.scope, o));
    return new Container(this.conn, this.scope, r.container!);
  }

  /** Lists containers, optionally with containerd filters (`labels."a"==b`, `image==x`). */
  async list(filters: string[] = [], o?: RequestOptions): Promise<ContainerInfo[]> {
    return (await this.svc.list({ filters }, callOptions(this.scope, o))).containers.map(info);
  }
}
