/*
 * Berth's own services (berth.services.namespaces.v1, berth.services.gc.v1): what no containerd
 * API does. A containerd daemon answers them UNIMPLEMENTED, which reaches the caller as
 * NotImplementedError.
 */
import { berthGc, berthNamespaces } from '@berth/api';
import { type Connection, type RequestOptions, type Scope, callOptions } from './connection';

/** A count and the bytes it holds. */
export interface Size {
  count: number;
  bytes: number;
}

/** A size split into what another namespace also references and what only this one does. */
export interface SharedSize {
  total: Size;
  shared: Size;
  exclusive: Size;
}

/** One namespace's use of the daemon. */
export interface NamespaceUsage {
  name: string;
  images: number;
  containers: number;
  snapshots: SharedSize;
  snapshotters: Array<{ snapshotter: string; snapshots: SharedSize }>;
  content: SharedSize;
  ingests: Size;
}

/** What the whole daemon holds, blobs and snapshots counted once. */
export interface Usage {
  namespaces: NamespaceUsage[];
  snapshots: Size;
  content: Size;
  ingests: Size;
}

/** What a cascading namespace delete removed. */
export interface NamespaceRemoval {
  tasks: number;
  containers: number;
  images: number;
  leases: number;
  snapshots: number;
  ingests: number;
  blobs: number;
}

/** One link of the chain that keeps a blob or snapshot: what refers, and how. */
export interface Reference {
  /** `image`, `content`, `snapshot`, `container`, `lease`, ... */
  kind: string;
  /** The record's identity (a name, or snapshotter and key). */
  id: string[];
  /** The edge from the previous link, e.g. a label (`containerd.io/gc.ref.content.l.0`). */
  via: string;
}

/** Why a resource is kept (or not). */
export interface Explanation {
  /** False when the next collection would remove it. */
  referenced: boolean;
  /** From a root (image, container, lease) down to the resource. */
  chain: Reference[];
  /** True when the namespace holds records of a kind no collector knows, which keeps everything. */
  skipped: boolean;
  /** Every root that keeps it (the chain goes through the first one marking reached). */
  keptBy: Reference[];
}

/** What a collection did. */
export interface Collection {
  startedAt?: Date;
  pauseMs: number;
  totalMs: number;
  /** Metadata records removed, per kind (`blobs`, `snapshots`, `leases`...). */
  removed: Record<string, number>;
  /** Files the backends removed, per kind (blobs from the content store, snapshots from a snapshotter). */
  backendRemoved: Record<string, number>;
  /** Namespaces left alone this time. */
  skipped: string[];
}

const size = (s: berthNamespaces.Size | undefined): Size => ({ count: Number(s?.count ?? 0), bytes: Number(s?.bytes ?? 0) });
const shared = (s: berthNamespaces.SharedSize | undefined): SharedSize => ({ total: size(s?.total), shared: size(s?.shared), exclusive: size(s?.exclusive) });

/** Berth's own namespace and garbage-collection services, on a client's connection. */
export function systemApi(conn: Connection, scope: Scope) {
  const ns = () => conn.service(berthNamespaces.NamespacesService);
  const gc = () => conn.service(berthGc.GCService);
  const opts = (o?: RequestOptions) => callOptions(scope, o);
  return {
    /**
     * Deletes a namespace; with `cascade`, everything in it first (tasks killed, containers,
     * images, leases, snapshots, content references). Not atomic across subsystems: what was
     * removed before an error stays removed, and running it again finishes.
     */
    deleteNamespace: async (name: string, o: RequestOptions & { cascade?: boolean } = {}): Promise<NamespaceRemoval> => {
      const r = await ns().delete({ name, cascade: !!o.cascade }, opts(o));
      return { tasks: r.tasks, containers: r.containers, images: r.images, leases: r.leases, snapshots: r.snapshots, ingests: r.ingests, blobs: r.blobs };
    },
    /** Disk and record usage per namespace (one namespace when `name` is given). */
    usage: async (name = '', o?: RequestOptions): Promise<Usage> => {
      const r = await ns().usage({ name }, opts(o));
      return {
        namespaces: r.namespaces.map((n) => ({
          name: n.name,
          images: Number(n.images),
          containers: Number(n.containers),
          snapshots: shared(n.snapshots),
          snapshotters: n.snapshotters.map((s) => ({ snapshotter: s.snapshotter, snapshots: shared(s.snapshots) })),
          content: shared(n.content),
          ingests: size(n.ingests),
        })),
        snapshots: size(r.snapshots),
        content: size(r.content),
        ingests: size(r.ingests),
      };
    },
    /** Runs a garbage collection now and answers what it removed. */
    collect: async (o?: RequestOptions): Promise<Collection> => {
      const r = await gc().collect({}, opts(o));
      return {
        ...(r.startedAt ? { startedAt: r.startedAt } : {}),
        pauseMs: r.pauseMs,
        totalMs: r.totalMs,
        removed: Object.fromEntries(Object.entries(r.removed).map(([k, v]) => [k, Number(v)])),
        backendRemoved: Object.fromEntries(Object.entries(r.backendRemoved).map(([k, v]) => [k, Number(v)])),
        skipped: r.skipped,
      };
    },
    /** Explains what keeps a blob (`{ digest }`) or a snapshot (`{ snapshotter, key }`) in the client's namespace. */
    explain: async (what: { digest: string } | { snapshotter: string; key: string }, o?: RequestOptions): Promise<Explanation> => {
      const r = await gc().explain('digest' in what ? { digest: what.digest, snapshotter: '', key: '' } : { digest: '', snapshotter: what.snapshotter, key: what.key }, opts(o));
      const ref = (c: berthGc.Reference): Reference => ({ kind: c.kind, id: c.id, via: c.via });
      return { referenced: r.referenced, chain: r.chain.map(ref), skipped: r.skipped, keptBy: r.keptBy.map(ref) };
    },
  };
}
