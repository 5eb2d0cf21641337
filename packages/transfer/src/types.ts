import type { Context } from '@berth/context';
import type { MetadataContentStore } from '@berth/content';
import type { Differ } from '@berth/diff';
import type { Logger } from '@berth/log';
import type { ImagesService, OciDescriptor, Platform } from '@berth/images';
import type { CredentialsProvider, RegistryHosts } from '@berth/remotes';
import type { Snapshotter } from '@berth/snapshots';
import type { Stream } from '@berth/streaming';

/*
 * The objects a transfer moves between, decoded from the request's Anys (containerd.types.transfer):
 * the transferrer speaks these, the gRPC adapter translates.
 */

/** OCIRegistry: an image reference in a registry, and how to reach it. */
export interface RegistrySource {
  kind: 'registry';
  /** The full reference as the client typed it (`docker.io/library/alpine:3.20`, `127.0.0.1:5000/x:1`). */
  reference: string;
  /** hosts.toml root (`--hosts-dir`); none: each registry's default upstream only. */
  hostDir?: string;
  /** `http` with ctr's `--plain-http`. */
  defaultScheme?: 'http' | 'https';
  /** Extra headers for every registry request. */
  headers: Record<string, string>;
  /** The client's credentials stream, asked when a registry host answers 401. */
  authStream?: Stream;
  /**
   * Credentials given in process (the CRI plugin's PullImage auth); asked instead of
   * `authStream` when both are set.
   */
  credentials?: CredentialsProvider;
}

/** ImageStore: images in the metadata store, to store into or to read from. */
export interface ImageStoreTarget {
  kind: 'image-store';
  /** The image to store or to read; '' when only extra references name images. */
  name: string;
  /** Labels of created images. */
  labels: Record<string, string>;
  /** Platforms to keep (pull, import) or to read (push, export); empty: all. */
  platforms: Platform[];
  /** Pull: keep other platforms' manifests with their config, without layers. */
  allMetadata: boolean;
  /** Pull: keep at most this many best manifests of an index; 0: unlimited. */
  manifestLimit: number;
  extraReferences: ImageReferenceSpec[];
  /** Unpack into these (platform, snapshotter) pairs after (or while) fetching; none: no unpack. */
  unpacks: Array<{ platform?: Platform; snapshotter: string }>;
}

/** ImageReference: how an import names images (see containerd-transfer.md §3 Import). */
export interface ImageReferenceSpec {
  name: string;
  isPrefix: boolean;
  allowOverwrite: boolean;
  addDigest: boolean;
  skipNamedDigest: boolean;
}

/** ImageImportStream: a tar (OCI layout or `docker save`) the client sends on a stream. */
export interface ImportStreamSource {
  kind: 'import-stream';
  stream: Stream;
  /** '' : the server detects gzip or zstd; otherwise a raw tar. */
  mediaType: string;
  forceCompress: boolean;
}

/** ImageExportStream: a tar the daemon sends to the client on a stream. */
export interface ExportStreamTarget {
  kind: 'export-stream';
  stream: Stream;
  platforms: Platform[];
  allPlatforms: boolean;
  skipCompatibilityManifest: boolean;
  skipNonDistributable: boolean;
}

export type TransferObject = RegistrySource | ImageStoreTarget | ImportStreamSource | ExportStreamTarget;

/** One progress event (containerd.types.transfer.Progress); see containerd-transfer.md §4. */
export interface ProgressEvent {
  event: string;
  /** `<kind>-<digest>` for a blob, the image name for a stored image; none for status lines. */
  name?: string;
  parents?: string[];
  progress?: number;
  total?: number;
  desc?: OciDescriptor;
}

/** Where a transfer reports progress; a no-op when the client asked for none. */
export type ProgressSink = (event: ProgressEvent) => void;

/** The local transferrer's settings (`[plugins."io.containerd.transfer.v1.local"]`, parsed). */
export interface TransferSettings {
  /** Blobs fetched at once. Default 3. */
  maxConcurrentDownloads: number;
  /** Blobs uploaded at once. Default 3. */
  maxConcurrentUploadedLayers: number;
  /** Platforms that may be unpacked, each with its snapshotter. */
  unpackPlatforms: Array<{ platform: Platform; snapshotter: string }>;
  /** false (default): an unpack platform matches on its OS alone. */
  checkPlatformSupported: boolean;
}

/** What the transferrer works with, per call (all of it acting in the call's namespace and lease). */
export interface TransferServices {
  content: MetadataContentStore;
  images: ImagesService;
  /** A snapshotter by name; InvalidArgument `snapshotter not loaded: <name>` when absent. */
  snapshotter(name: string): Snapshotter;
  differ: Pick<Differ, 'apply' | 'warm' | 'prefetch'>;
  settings: TransferSettings;
  /** Where an operation reports what it skipped (an unpack platform nobody configured...). */
  logger?: Logger;
}

/** What a pull or push gets to reach registries. */
export interface RegistryAccess {
  hosts: RegistryHosts;
  credentials?: CredentialsProvider;
}

/** One transfer operation, as the transferrer runs it. */
export type Operation = (ctx: Context, progress: ProgressSink) => Promise<void>;
