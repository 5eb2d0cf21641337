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
 *     kind 'images'      key <name>              ImageRecord
 *     kind 'containers'  key <id>                ContainerRecord
 *     kind 'blobs'       key <digest>            content visible in the namespace
 *     kind 'ingests'     key <ref>
 *     kind 'snapshots'   key <snapshotter>, <key>
 *     kind 'leases'      key <id>                    LeaseRecord
 *     kind 'leased'      key <lease id>, <type>, <id>  a lease's resource; <type> is 'content',
 *                                                     'ingests' or 'snapshots/<snapshotter>'
 *     kind <a.b>         key as its owner defines    an extension kind: another package's records
 *                                                     (a name with a dot, so that it never meets a
 *                                                     built-in kind); deleted with the namespace
 * ['v1', 'seq', <name>]                         -> number       counters (backend ingest refs...)
 * ```
 *
 * References kept for the garbage collector (containerd 1.6's model; the collector walks them
 * from the roots and removes every blob, ingest, snapshot and lease record it did not reach).
 * The collector knows none of the record types: each kind's owner describes its roots, edges and
 * sweep to it as a `GcKind` registered on `GcHooks` (images and containers: gc-kinds.ts here;
 * blobs and ingests: @berth/content; snapshots: @berth/snapshots). The edges are:
 *
 * - roots: every lease that has not expired (label `containerd.io/gc.expire`, RFC 3339; an
 *   unparsable value means no expiry); every image; every container; every blob or snapshot
 *   labelled `containerd.io/gc.root` (any value); every ingest whose expiry lies ahead.
 * - image -> content: `ImageRecord.target.digest`, plus the image's own gc.ref labels.
 * - container -> snapshot `snapshots/<snapshotter>/<snapshotKey>` (when both are set), plus its
 *   own gc.ref labels. `ContainerRecord.image` names an image but is not an edge: containerd
 *   does not keep an image alive for a container (the container's snapshot holds the layers).
 * - labels on blobs, images, containers and snapshots:
 *   `containerd.io/gc.ref.content` and `containerd.io/gc.ref.content.<anything>` or
 *   `containerd.io/gc.ref.content/<anything>` -> the blob whose digest is the value;
 *   `containerd.io/gc.ref.snapshot.<snapshotter>[/<anything>]` -> that snapshotter's snapshot
 *   whose key is the value.
 * - snapshot -> its parent; ingest -> nothing (its expected digest is not yet a blob).
 * - lease -> every resource under 'leased' for it: 'content' (blob), 'ingests' (ingest),
 *   'snapshots/<snapshotter>' (snapshot). A lease labelled `containerd.io/gc.flat` keeps only
 *   those resources (and a snapshot's parents), following no label references from them.
 * - 'leased' entries belong to their lease: deleting the lease deletes them, and they do not
 *   make a namespace non-empty. Leases do not hold images or containers (containerd 1.6 does not
 *   attach those to the call's lease either).
 *
 * Changing the tree means bumping SCHEMA_VERSION and adding a migration in migrations.ts (an
 * extension kind adds records, not a layout: a collector that does not know it leaves its
 * namespace alone, see GcHooks).
 * Other packages build keys with the builders below and read them with `parseNamespaceKey` and
 * `parseObjectKey`, never by position (tools/boundaries checks it).
 */
export const SCHEMA_VERSION = 1;

export type Key = Array<string | number>;

/**
 * The object kinds stored per namespace. Images, blobs, containers and snapshots make a namespace
 * non-empty; leases, 'leased' and ingests are deleted with it.
 */
export const OBJECT_KINDS = ['images', 'blobs', 'containers', 'snapshots', 'leases', 'leased', 'ingests'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

/**
 * A kind another package keeps per namespace (`io.acme.widgets`): any name with a dot, which no
 * built-in kind has. Its records are deleted with their namespace and do not keep it non-empty;
 * the garbage collector handles them once their owner registers a `GcKind` for them.
 */
export type ExtensionKind = `${string}.${string}`;

/** Key of the schema version. */
export const schemaKey = (): Key => ['schema'];

/** Key of a namespace's record; `namespacesPrefix` ranges over all of them. */
export const namespaceKey = (ns: string): Key => ['v1', 'namespaces', ns];
export const namespacesPrefix = (): Key => ['v1', 'namespaces'];

/** Key of one object of a kind in a namespace; `objectsPrefix` ranges over a kind (or below). */
export const objectKey = (ns: string, kind: ObjectKind | ExtensionKind, ...key: string[]): Key => ['v1', 'ns', ns, kind, ...key];
export const objectsPrefix = (ns: string, kind: ObjectKind | ExtensionKind, ...key: string[]): Key => ['v1', 'ns', ns, kind, ...key];

/** The prefix of every object of a namespace, of all kinds. */
export const namespaceObjectsPrefix = (ns: string): Key => ['v1', 'ns', ns];

/** The namespace a namespace record's key names, or undefined for any other key. */
export function parseNamespaceKey(key: Key): string | undefined {
  return key.length === 3 && key[0] === 'v1' && key[1] === 'namespaces' ? String(key[2]) : undefined;
}

/**
 * The id parts of an object key of `kind` (what followed the kind in `objectKey`), when the key
 * has exactly `parts` of them (1 for most kinds, 2 for snapshots, 3 for leased); undefined for
 * any other key. Other packages read keys through this, never by position.
 */
export function parseObjectKey(key: Key, kind: ObjectKind | ExtensionKind, parts = 1): string[] | undefined {
  if (key.length !== 4 + parts || key[0] !== 'v1' || key[1] !== 'ns' || key[3] !== kind) return undefined;
  return key.slice(4).map(String);
}

/** The namespace, kind and id parts of any object key, or undefined for any other key. */
export function splitObjectKey(key: Key): { namespace: string; kind: string; parts: string[] } | undefined {
  if (key.length < 5 || key[0] !== 'v1' || key[1] !== 'ns') return undefined;
  return { namespace: String(key[2]), kind: String(key[3]), parts: key.slice(4).map(String) };
}

/** The namespace of an object key, or undefined for any other key. */
export function objectKeyNamespace(key: Key): string | undefined {
  return key.length >= 4 && key[0] === 'v1' && key[1] === 'ns' ? String(key[2]) : undefined;
}

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

/** An OCI descriptor as stored: what an image points at. */
export interface DescriptorRecord {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

/** An image: a name for a descriptor (usually an index or a manifest). */
export interface ImageRecord {
  labels: Record<string, string>;
  target: DescriptorRecord;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}

/** A protobuf Any kept verbatim (type URL and encoded value, JSON for the runtime spec). */
export interface AnyRecord {
  typeUrl: string;
  value: Uint8Array;
}

/** A container: metadata only, no runtime state. */
export interface ContainerRecord {
  labels: Record<string, string>;
  image: string;
  runtime: { name: string; options?: AnyRecord };
  spec?: AnyRecord;
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, AnyRecord>;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}
