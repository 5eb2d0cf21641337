import type { Context } from '@berth/context';
import type { Mount } from '@berth/mount';
import { token } from '@berth/plugin';

export type { Mount } from '@berth/mount';

/**
 * The kinds of snapshot: an Active one is writable and can be committed; a View is read-only;
 * a Committed one is immutable and the only kind that can be a parent.
 */
export type Kind = 'active' | 'view' | 'committed';

/** What Stat, Update and Walk report about a snapshot. */
export interface Info {
  /** The key (active, view) or name (committed). */
  name: string;
  /** The parent's name; '' for none. */
  parent: string;
  kind: Kind;
  labels: Record<string, string>;
  created: Date;
  updated: Date;
}

/** Disk used by a snapshot's own layer: bytes (allocated blocks) and distinct inodes. */
export interface Usage {
  size: number;
  inodes: number;
}

/** Options of Prepare, View and Commit. */
export interface SnapshotOptions {
  labels?: Record<string, string>;
}

/** What Cleanup removed. */
export interface CleanupResult {
  /** Backend snapshot keys no namespace referenced (metadata layer only). */
  snapshots: string[];
  /** Directories under the snapshotter root that no snapshot owned. */
  directories: string[];
}

/**
 * A snapshotter, after containerd's: layered filesystems addressed by key. Backends (overlayfs,
 * native) ignore the context's namespace and see backend keys; the metadata layer
 * (`MetadataSnapshotter`) requires a namespace and keeps each namespace's keys apart.
 */
export interface Snapshotter {
  /** Returns a snapshot's info; NotFound when absent. */
  stat(ctx: Context, key: string): Promise<Info>;
  /**
   * Updates labels: `labels.<k>` paths set (or, empty, delete) one label, `labels` or no paths
   * replace them all; any other path is InvalidArgument. Returns the updated info.
   */
  update(ctx: Context, info: Pick<Info, 'name' | 'labels'>, fieldpaths?: readonly string[]): Promise<Info>;
  /** Returns the disk usage of a snapshot's own layer (0/0 for views). */
  usage(ctx: Context, key: string): Promise<Usage>;
  /** Returns the mounts of an active snapshot or view; FailedPrecondition for a committed one. */
  mounts(ctx: Context, key: string): Promise<Mount[]>;
  /** Creates an active snapshot over a committed parent ('' for none) and returns its mounts. */
  prepare(ctx: Context, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /** Creates a read-only view of a committed parent ('' for an empty one) and returns its mounts. */
  view(ctx: Context, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /** Turns active `key` into committed `name`; `key` is gone afterwards. */
  commit(ctx: Context, name: string, key: string, opts?: SnapshotOptions): Promise<void>;
  /** Removes a snapshot without children and reclaims its directory. */
  remove(ctx: Context, key: string): Promise<void>;
  /** Calls `fn` for every snapshot matching any of `filters` (none: all), in key order. */
  walk(ctx: Context, fn: (info: Info) => void | Promise<void>, filters?: readonly string[]): Promise<void>;
  /** Removes what no snapshot owns (orphans left by a crash); reports what it removed. */
  cleanup(ctx: Context): Promise<CleanupResult>;
  /** Releases the snapshotter's resources (its metastore). */
  close(): Promise<void>;
}

/** The plugin type of snapshotters. */
export const SNAPSHOTTER_PLUGIN_TYPE = 'io.containerd.snapshotter.v1';

/** The label prefix whose labels a backend snapshotter receives and keeps. */
export const INHERITED_LABEL_PREFIX = 'containerd.io/snapshot/';

/** The namespace label naming the snapshotter to use when a request names none. */
export const DEFAULT_SNAPSHOTTER_LABEL = 'containerd.io/defaults/snapshotter';

/** The snapshotter used when neither the request nor the namespace names one (ctr's default). */
export const DEFAULT_SNAPSHOTTER = 'overlayfs';

/** Every backend snapshotter plugin's instance; `getAll` of the snapshotter type returns them by id. */
export const SnapshotterToken = token<Snapshotter>(`${SNAPSHOTTER_PLUGIN_TYPE}/snapshotter`);
