import { content, eventsService, images, introspection, leases, namespaces, snapshots, unpackAny, version } from '@berth/api';
import { NotFoundError, isNotFound } from '@berth/errdefs';
import { Connection, type RequestOptions, type Scope, callOptions } from './connection';
import { ContainersApi } from './containers';
import { systemApi } from './system';
import type { Descriptor } from './image-content';
import { type PullOptions, type PushOptions, type TransferOperation, pull, push } from './transfer';

/** Options of {@link BerthClient.connect}. */
export interface ConnectOptions {
  /** The daemon's unix socket path (berthd's or containerd's gRPC address). */
  address: string;
  /** The namespace every call is made in; `default` when absent. */
  namespace?: string;
  /** Milliseconds to wait for the socket to accept the connection; 10 000 by default. */
  timeout?: number;
}

/** An image record. */
export interface Image {
  name: string;
  labels: Record<string, string>;
  target: Descriptor;
  createdAt?: Date;
  updatedAt?: Date;
}

/** A snapshot's record. */
export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: 'unknown' | 'view' | 'active' | 'committed';
  labels: Record<string, string>;
  createdAt?: Date;
  updatedAt?: Date;
}

/** A content blob's record. */
export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt?: Date;
  updatedAt?: Date;
}

/** One event from the daemon's exchange, with its payload decoded. */
export interface DaemonEvent {
  timestamp?: Date;
  namespace: string;
  /** `/tasks/exit`, `/containers/create`, ... */
  topic: string;
  /** The payload (a TaskExit, ContainerCreate...), or undefined when its type is unknown here. */
  event: Record<string, unknown> | undefined;
  /** The payload's type URL, e.g. `containerd.events.TaskExit`. */
  typeUrl: string;
}

const dates = (o: { createdAt?: Date; updatedAt?: Date }) => ({ ...(o.createdAt ? { createdAt: o.createdAt } : {}), ...(o.updatedAt ? { updatedAt: o.updatedAt } : {}) });

const image = (i: images.Image): Image => ({
  name: i.name,
  labels: i.labels,
  target: { mediaType: i.target?.mediaType ?? '', digest: i.target?.digest ?? '', size: Number(i.target?.size ?? 0), ...(i.target?.annotations && Object.keys(i.target.annotations).length > 0 ? { annotations: i.target.annotations } : {}) },
  ...dates(i),
});

const KINDS = ['unknown', 'view', 'active', 'committed'] as const;

/**
 * A client of a containerd-compatible daemon (berthd, containerd 1.6 and 2.x) over its unix
 * socket. Every call is made in the client's namespace (sent as the `containerd-namespace`
 * header) and, for a view made by {@link withLease}, under a lease. Errors are Berth errors
 * (`NotFoundError`, `AlreadyExistsError`...), mapped back from the gRPC status.
 */
export class BerthClient {
  private constructor(
    private readonly conn: Connection,
    private readonly scope: Scope,
    private readonly owner: boolean,
  ) {}

  /** Connects to a daemon's socket; see {@link ConnectOptions}. */
  static async connect(o: ConnectOptions): Promise<BerthClient> {
    const conn = await Connection.open(o.address, o.timeout ?? 10_000);
    return new BerthClient(conn, { namespace: o.namespace || 'default' }, true);
  }

  /** The namespace this client's calls are made in. */
  get namespace(): string {
    return this.scope.namespace;
  }
  /** The lease this client's calls are made under, if any. */
  get lease(): string | undefined {
    return this.scope.lease;
  }
  /** The daemon's socket. */
  get address(): string {
    return this.conn.address;
  }

  /** The same connection, in another namespace (closing the view leaves the connection open). */
  withNamespace(namespace: string): BerthClient {
    return new BerthClient(this.conn, { namespace }, false);
  }

  /** The same connection, every call under lease `id` (what it creates is kept until the lease ends). */
  withLease(id: string): BerthClient {
    return new BerthClient(this.conn, { ...this.scope, lease: id }, false);
  }

  /** Closes the connection (a view made by withNamespace or withLease closes nothing). */
  close(): void {
    if (this.owner) this.conn.close();
  }

  private opts(o?: RequestOptions) {
    return callOptions(this.scope, o);
  }

  /** The daemon's version and revision. */
  async version(o?: RequestOptions): Promise<{ version: string; revision: string }> {
    const r = await this.conn.service(version.VersionService).version({}, this.opts(o));
    return { version: r.version, revision: r.revision };
  }

  /** The daemon's plugins and server identity. */
  get introspection() {
    const svc = () => this.conn.service(introspection.IntrospectionService);
    return {
      /** Plugins, optionally filtered (`type==io.containerd.snapshotter.v1`); `error` is set for a plugin that failed. */
      plugins: async (filters: string[] = [], o?: RequestOptions) =>
        (await svc().plugins({ filters }, this.opts(o))).plugins.map((p) => ({
          type: p.type,
          id: p.id,
          requires: p.requires,
          platforms: p.platforms.map((x) => ({ os: x.os, architecture: x.architecture, ...(x.variant ? { variant: x.variant } : {}) })),
          exports: p.exports,
          capabilities: p.capabilities,
          ...(p.initErr && p.initErr.code !== 0 ? { error: p.initErr.message } : {}),
        })),
      /** The server's uuid (and, from 2.x daemons, its pid and pid namespace). */
      server: async (o?: RequestOptions) => {
        const r = await svc().server({}, this.opts(o));
        return { uuid: r.uuid, pid: Number(r.pid), pidns: Number(r.pidns), deprecations: r.deprecations.map((d) => ({ id: d.id, message: d.message })) };
      },
    };
  }

  /** Namespaces (the client's own namespace does not matter to these calls). */
  get namespaces() {
    const svc = () => this.conn.service(namespaces.NamespacesService);
    return {
      list: async (o?: RequestOptions) => (await svc().list({ filter: '' }, this.opts(o))).namespaces.map((n) => ({ name: n.name, labels: n.labels })),
      /**
       * Gets a namespace, NotFound when it does not exist. containerd's Get answers any name
       * (with no labels), so this looks the name up in the list.
       */
      get: async (name: string, o?: RequestOptions) => {
        const n = (await svc().list({ filter: '' }, this.opts(o))).namespaces.find((x) => x.name === name);
        if (!n) throw new NotFoundError(`namespace "${name}"`);
        return { name: n.name, labels: n.labels };
      },
      create: async (name: string, labels: Record<string, string> = {}, o?: RequestOptions) => {
        const n = (await svc().create({ namespace: { name, labels } }, this.opts(o))).namespace!;
        return { name: n.name, labels: n.labels };
      },
      /** Sets labels; an empty value removes the label. */
      setLabels: async (name: string, labels: Record<string, string>, o?: RequestOptions) => {
        await svc().update({ namespace: { name, labels }, updateMask: Object.keys(labels).map((k) => `labels.${k}`) }, this.opts(o));
        // containerd 1.6 answers an empty namespace: read it back.
        const n = (await svc().get({ name }, this.opts(o))).namespace!;
        return { name, labels: n.labels };
      },
      /** Deletes an empty namespace (FailedPrecondition when it holds anything). */
      delete: async (name: string, o?: RequestOptions) => void (await svc().delete({ name }, this.opts(o))),
    };
  }

  /** Leases: what is created under a lease is kept from garbage collection until it ends. */
  get leases() {
    const svc = () => this.conn.service(leases.LeasesService);
    return {
      /** Creates a lease; `expire` sets `containerd.io/gc.expire` (ms from now or a Date). */
      create: async (o: RequestOptions & { id?: string; labels?: Record<string, string>; expire?: number | Date } = {}) => {
        const labels = { ...o.labels };
        if (o.expire !== undefined) labels['containerd.io/gc.expire'] = new Date(typeof o.expire === 'number' ? Date.now() + o.expire : o.expire).toISOString().replace(/\.\d+Z$/, 'Z');
        const id = o.id ?? `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
        const l = (await svc().create({ id, labels }, this.opts(o))).lease!;
        return { id: l.id, labels: l.labels, ...(l.createdAt ? { createdAt: l.createdAt } : {}) };
      },
      list: async (filters: string[] = [], o?: RequestOptions) => (await svc().list({ filters }, this.opts(o))).leases.map((l) => ({ id: l.id, labels: l.labels, ...(l.createdAt ? { createdAt: l.createdAt } : {}) })),
      /** Deletes a lease; `sync` waits for the garbage collection it allows. */
      delete: async (id: string, o: RequestOptions & { sync?: boolean } = {}) => void (await svc().delete({ id, sync: !!o.sync }, this.opts(o))),
      resources: async (id: string, o?: RequestOptions) => (await svc().listResources({ id }, this.opts(o))).resources.map((r) => ({ id: r.id, type: r.type })),
    };
  }

  /** Content blobs. */
  get content() {
    const svc = () => this.conn.service(content.ContentService);
    const toInfo = (i: content.Info): ContentInfo => ({ digest: i.digest, size: Number(i.size), labels: i.labels, ...dates(i) });
    return {
      info: async (digest: string, o?: RequestOptions) => toInfo((await svc().info({ digest }, this.opts(o))).info!),
      list: async (filters: string[] = [], o?: RequestOptions) => {
        const out: ContentInfo[] = [];
        for await (const r of svc().list({ filters }, this.opts(o))) out.push(...r.info.map(toInfo));
        return out;
      },
      /** Reads a blob as a stream of chunks, from `offset` for `size` bytes (all when 0). */
      read: (digest: string, o: RequestOptions & { offset?: number; size?: number } = {}): AsyncIterable<Buffer> => {
        const stream = svc().read({ digest, offset: o.offset ?? 0, size: o.size ?? 0 }, this.opts(o));
        return {
          async *[Symbol.asyncIterator]() {
            for await (const r of stream) yield r.data;
          },
        };
      },
      delete: async (digest: string, o?: RequestOptions) => void (await svc().delete({ digest }, this.opts(o))),
    };
  }

  /** A snapshotter's snapshots (overlayfs by default). */
  snapshots(snapshotter = 'overlayfs') {
    const svc = () => this.conn.service(snapshots.SnapshotsService);
    const toInfo = (i: snapshots.Info): SnapshotInfo => ({ name: i.name, parent: i.parent, kind: (KINDS[i.kind as 0 | 1 | 2 | 3] as SnapshotInfo['kind'] | undefined) ?? 'unknown', labels: i.labels, ...dates(i) });
    return {
      list: async (filters: string[] = [], o?: RequestOptions) => {
        const out: SnapshotInfo[] = [];
        for await (const r of svc().list({ snapshotter, filters }, this.opts(o))) out.push(...r.info.map(toInfo));
        return out;
      },
      stat: async (key: string, o?: RequestOptions) => toInfo((await svc().stat({ snapshotter, key }, this.opts(o))).info!),
      /** Disk use of a snapshot: bytes and inodes. */
      usage: async (key: string, o?: RequestOptions) => {
        const r = await svc().usage({ snapshotter, key }, this.opts(o));
        return { size: Number(r.size), inodes: Number(r.inodes) };
      },
      mounts: async (key: string, o?: RequestOptions) => (await svc().mounts({ snapshotter, key }, this.opts(o))).mounts,
      remove: async (key: string, o?: RequestOptions) => void (await svc().remove({ snapshotter, key }, this.opts(o))),
    };
  }

  /** Image records. */
  get images() {
    const svc = () => this.conn.service(images.ImagesService);
    const record = (i: Omit<Image, 'createdAt' | 'updatedAt'>) => ({ name: i.name, labels: i.labels, target: { ...i.target, annotations: i.target.annotations ?? {}, urls: [] } });
    return {
      list: async (filters: string[] = [], o?: RequestOptions) => (await svc().list({ filters }, this.opts(o))).images.map(image),
      get: async (name: string, o?: RequestOptions) => image((await svc().get({ name }, this.opts(o))).image!),
      /** Creates an image record pointing at a blob already in content. */
      create: async (i: { name: string; target: Descriptor; labels?: Record<string, string> }, o?: RequestOptions) =>
        image((await svc().create({ image: record({ labels: {}, ...i }) }, this.opts(o))).image!),
      /** Updates a record: the fields named (`target`, `labels`, `labels.<key>`), all when none are. */
      update: async (i: { name: string; target?: Descriptor; labels?: Record<string, string> }, fields: string[] = [], o?: RequestOptions) => {
        const current = await svc().get({ name: i.name }, this.opts(o));
        const cur = image(current.image!);
        return image((await svc().update({ image: record({ ...cur, ...i, labels: i.labels ?? cur.labels, target: i.target ?? cur.target }), updateMask: fields }, this.opts(o))).image!);
      },
      /** Deletes a record; `sync` waits for the garbage collection it allows. */
      delete: async (name: string, o: RequestOptions & { sync?: boolean } = {}) => void (await svc().delete({ name, sync: !!o.sync }, this.opts(o))),
      /** Whether an image record exists. */
      exists: async (name: string, o?: RequestOptions) =>
        svc()
          .get({ name }, this.opts(o))
          .then(
            () => true,
            (err) => {
              if (isNotFound(err)) return false;
              throw err;
            },
          ),
    };
  }

  /**
   * Pulls an image through the Transfer API (containerd 2.x, berthd): iterate the result for
   * progress, await `done`. Unpacks for the host platform unless `unpack: false`.
   */
  pull(reference: string, o?: PullOptions): TransferOperation {
    return pull(this.conn, this.scope, reference, o);
  }

  /** Pushes a local image through the Transfer API; iterate for progress, await `done`. */
  push(reference: string, o?: PushOptions): TransferOperation {
    return push(this.conn, this.scope, reference, o);
  }

  /**
   * Berth's own services: namespace delete with cascade, usage per namespace, garbage collection
   * now and its explanations. containerd answers them NotImplemented.
   */
  get system(): ReturnType<typeof systemApi> {
    return systemApi(this.conn, this.scope);
  }

  /** Containers of the client's namespace, and the tasks in them. */
  get containers(): ContainersApi {
    return new ContainersApi(this.conn, this.scope);
  }

  /**
   * Subscribes to the daemon's events (of every namespace, unless filtered, e.g.
   * `namespace==default`, `topic~="/tasks/"`). The iterator ends when `signal` aborts or the
   * client closes; a subscription is live once the daemon has answered its call.
   */
  events(filters: string[] = [], o: { signal?: AbortSignal } = {}): AsyncIterable<DaemonEvent> {
    const signal = o.signal ? AbortSignal.any([o.signal, this.conn.closeSignal]) : this.conn.closeSignal;
    const subscribe = () => this.conn.service(eventsService.EventsService).subscribe({ filters }, this.opts({ signal }));
    return {
      async *[Symbol.asyncIterator]() {
        if (signal.aborted) return;
        const stream = subscribe();
        try {
          for await (const env of stream) {
            let event: Record<string, unknown> | undefined;
            try {
              event = env.event ? (unpackAny(env.event) as Record<string, unknown>) : undefined;
            } catch {
              event = undefined;
            }
            yield { ...(env.timestamp ? { timestamp: env.timestamp } : {}), namespace: env.namespace, topic: env.topic, event, typeUrl: env.event?.typeUrl ?? '' };
          }
        } catch (err) {
          if (signal.aborted || (err as { code?: number; cause?: { code?: number } })?.cause?.code === 1) return;
          throw err;
        }
      },
    };
  }
}
