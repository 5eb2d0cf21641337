/**
 * The metadata schema: every key Berth writes to its lmdb database, in one tree.
 *
 * Keys are arrays (lmdb's ordered-binary encoding keeps them sorted element by element, so a
 * prefix is a range); values are structured records.
 *
 * ```
 * ['schema']                                    -> number       schema version (SCHEMA_VERSION)
 * ['v1', 'namespaces', <ns>]                    -> NamespaceRecord   one per namespace; any write
 *                                                                 in a namespace creates it
 * ['v1', 'ns', <ns>, <kind>, ...key]            -> per-kind records, for the kinds below
 *     kind 'images'      key <name>
 *     kind 'containers'  key <id>
 *     kind 'blobs'       key <digest>            content visible in the namespace
 *     kind 'ingests'     key <ref>
 *     kind 'snapshots'   key <snapshotter>, <key>
 *     kind 'leases'      key <id>                    LeaseRecord
 *     kind 'leased'      key <lease id>, <type>, <id>  a lease's resource; <type> is 'content',
 *                                                     'ingests' or 'snapshots/<snapshotter>'
 * ['v1', 'seq', <name>]                         -> number       counters (backend ingest refs...)
 * ```
 *
 * References kept for the garbage collector: an image's target digest, a container's snapshot
 * (per snapshotter) and image, the `containerd.io/gc.*` labels on blobs and snapshots, and the
 * resources of each lease ('leased').
 *
 * Changing the tree means bumping SCHEMA_VERSION and adding a migration in migrations.ts.
 */
export const SCHEMA_VERSION = 1;

export type Key = Array<string | number>;

/** The object kinds stored per namespace. A namespace holding any of them is not empty. */
export const OBJECT_KINDS = ['images', 'blobs', 'containers', 'snapshots', 'leases', 'leased', 'ingests'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

/** Key of the schema version. */
export const schemaKey = (): Key => ['schema'];

/** Key of a namespace's record; `namespacesPrefix` ranges over all of them. */
export const namespaceKey = (ns: string): Key => ['v1', 'namespaces', ns];
export const namespacesPrefix = (): Key => ['v1', 'namespaces'];

/** Key of one object of a kind in a namespace; `objectsPrefix` ranges over a kind (or below). */
export const objectKey = (ns: string, kind: ObjectKind, ...key: string[]): Key => ['v1', 'ns', ns, kind, ...key];
export const objectsPrefix = (ns: string, kind: ObjectKind, ...key: string[]): Key => ['v1', 'ns', ns, kind, ...key];

/** A namespace: its labels and when it came to be. */
export interface NamespaceRecord {
  labels: Record<string, string>;
  createdAt: number;
}

/** Key of a named counter. */
export const sequenceKey = (name: string): Key => ['v1', 'seq', name];

/** A lease: it protects the resources recorded under 'leased' from the garbage collector. */
export interface LeaseRecord {
  createdAt: number;
  labels: Record<string, string>;
}

/** A resource a lease holds. */
export interface LeaseResource {
  /** 'content', 'ingests' or 'snapshots/<snapshotter>'. */
  type: string;
  /** A digest, an ingest ref or a snapshot key. */
  id: string;
}
