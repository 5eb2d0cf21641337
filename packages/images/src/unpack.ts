import { randomBytes } from 'node:crypto';
import type { Context } from '@berth/context';
import type { ContentStore, GrowingBlob } from '@berth/content';
import type { Differ } from '@berth/diff';
import { FailedPreconditionError, isAlreadyExists, isNotFound } from '@berth/errdefs';
import type { Snapshotter } from '@berth/snapshots';
import { chainIds } from './chain-id';
import { LABEL_GC_REF_SNAPSHOT, LABEL_UNCOMPRESSED } from './media-types';
import { PlatformMatcher } from './platforms';
import { ImageRef, OciDescriptor, imageConfig, resolveManifest, setLabels } from './walk';

/** What {@link unpack} works with. */
export interface UnpackOptions {
  /** Where the image's blobs are (a LocalContentStore, or the daemon's store bound to a context). */
  content: ContentStore;
  /** Where the layers go. */
  snapshotter: Snapshotter;
  /** Applies each layer (usually a WalkingDiffer over the same content). */
  differ: Pick<Differ, 'apply'>;
  /** Name of the snapshotter in the config's `containerd.io/gc.ref.snapshot.<name>` label; default `overlayfs`. */
  snapshotterName?: string;
  /** Which platform's manifest to unpack; default the host's. */
  platforms?: PlatformMatcher;
  /** Labels for each prepared `extract-*` snapshot (and the committed chain). */
  snapshotLabels?: Record<string, string>;
}

/** What {@link unpack} did. */
export interface UnpackResult {
  /** The chain ID of the top layer: the snapshot to prepare a container's rootfs from. */
  chainId: string;
  /** The chain ID of every layer, bottom first. */
  chainIds: string[];
  /** How many layers were applied (the others' chains existed). */
  applied: number;
  manifest: OciDescriptor;
  config: OciDescriptor;
}

/** One layer of an image as {@link unpackLayer} applies it: the blob and its place in the chain. */
export interface UnpackLayer {
  /** The layer blob (compressed or not): in the content store, unless `source` is given. */
  desc: OciDescriptor;
  /** The uncompressed digest the image config lists for this layer. */
  diffId: string;
  /** The chain ID to commit the layer as. */
  chainId: string;
  /** The chain ID of the layer below; '' for the bottom layer. */
  parent: string;
  /** Told how many bytes of the layer blob the apply has read so far. */
  onProgress?: (read: number) => void;
  /**
   * The blob while it is being written, to apply alongside its download (see the differ's
   * `source` option); the blob need not be in the content store yet.
   */
  source?: GrowingBlob;
  /** With `source`: waits until the blob is in the content store, where its label goes. */
  stored?: () => Promise<void>;
}

/** What {@link unpackLayer} did: applied the layer, or found its chain committed already. */
export type UnpackLayerOutcome = 'applied' | 'exists';

/** A unique part for extract keys: `<nanoseconds>-<base64url(3 random bytes)>`, as containerd's. */
function uniquePart(): string {
  const nanos = process.hrtime.bigint() % 1_000_000_000n;
  return `${nanos}-${randomBytes(3).toString('base64url')}`;
}

/**
 * Unpacks an image into a snapshotter as containerd's client does: for each layer, bottom up,
 * skip the chain when its snapshot exists, otherwise prepare `extract-<nanos>-<rand> <chainID>`
 * over the previous chain, apply the layer, check the diff ID, commit it as `<chainID>`, and label
 * the layer blob `containerd.io/uncompressed`. Finally labels the config
 * `containerd.io/gc.ref.snapshot.<snapshotter>` = top chain ID. A failed layer removes its
 * extract snapshot, so nothing half-committed stays behind.
 */
export async function unpack(ctx: Context, image: ImageRef, options: UnpackOptions): Promise<UnpackResult> {
  const { content } = options;
  const resolved = await resolveManifest(content, image.target, options.platforms);
  const config = await imageConfig(content, resolved);
  const diffIds = config.rootfs.diff_ids;
  const chains = chainIds(diffIds);
  let applied = 0;
  for (let i = 0; i < resolved.layers.length; i++) {
    const layer = { desc: resolved.layers[i], diffId: diffIds[i], chainId: chains[i], parent: i === 0 ? '' : chains[i - 1] };
    if ((await unpackLayer(ctx, layer, options)) === 'applied') applied++;
  }
  const top = chains[chains.length - 1] ?? '';
  await labelUnpacked(content, resolved.config, options.snapshotterName ?? 'overlayfs', top);
  return { chainId: top, chainIds: chains, applied, manifest: resolved.manifest, config: resolved.config };
}

/**
 * Unpacks one layer whose parent chain is committed: 'exists' when the layer's chain is already
 * a snapshot; otherwise prepares `extract-<nanos>-<rand> <chainID>` over the parent, applies the
 * blob, checks the diff ID (FailedPrecondition `wrong diff id calculated on extraction
 * "<diffID>"`), commits the chain and labels the blob `containerd.io/uncompressed`. A failure
 * removes the extract snapshot. The building block of {@link unpack}, and of unpacking while a
 * pull is still fetching the layers above.
 */
export async function unpackLayer(
  ctx: Context,
  layer: UnpackLayer,
  options: Pick<UnpackOptions, 'content' | 'snapshotter' | 'differ' | 'snapshotLabels'>,
): Promise<UnpackLayerOutcome> {
  if (await snapshotExists(ctx, options.snapshotter, layer.chainId)) return 'exists';
  if (!(await applyLayer(ctx, options, layer))) return 'exists';
  await layer.stored?.();
  await setLabels(options.content, layer.desc.digest, { [LABEL_UNCOMPRESSED]: layer.diffId });
  return 'applied';
}

/**
 * Labels an image config `containerd.io/gc.ref.snapshot.<snapshotter>` = the top chain ID, which
 * keeps the unpacked snapshots alive as long as the image is (the last step of an unpack).
 */
export async function labelUnpacked(content: ContentStore, config: OciDescriptor, snapshotterName: string, topChainId: string): Promise<void> {
  await setLabels(content, config.digest, { [`${LABEL_GC_REF_SNAPSHOT}.${snapshotterName}`]: topChainId });
}

/** Reports whether a snapshot (a committed chain, usually) exists; other Stat errors are thrown. */
export async function snapshotExists(ctx: Context, sn: Snapshotter, key: string): Promise<boolean> {
  try {
    await sn.stat(ctx, key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Applies one layer as its chain; false when another unpack committed the chain meanwhile. */
async function applyLayer(ctx: Context, o: Pick<UnpackOptions, 'snapshotter' | 'differ' | 'snapshotLabels'>, layer: UnpackLayer): Promise<boolean> {
  const sn = o.snapshotter;
  const { desc, chainId: chain, parent, diffId } = layer;
  const opts = o.snapshotLabels ? { labels: o.snapshotLabels } : undefined;
  let key = '';
  let mounts;
  for (let attempt = 0; ; attempt++) {
    key = `extract-${uniquePart()} ${chain}`;
    try {
      mounts = await sn.prepare(ctx, key, parent, opts);
      break;
    } catch (err) {
      if (!isAlreadyExists(err) || attempt >= 2) throw err;
      if (await snapshotExists(ctx, sn, chain)) return false;
    }
  }
  try {
    const applyOptions = { ...(layer.onProgress ? { onProgress: layer.onProgress } : {}), ...(layer.source ? { source: layer.source } : {}) };
    const out = await o.differ.apply(ctx, { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, annotations: desc.annotations ?? {} }, mounts, applyOptions);
    if (out.digest !== diffId) throw new FailedPreconditionError(`wrong diff id calculated on extraction "${diffId}"`, { bare: true });
    try {
      await sn.commit(ctx, chain, key, opts);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await sn.remove(ctx, key).catch(() => undefined);
      return false;
    }
    return true;
  } catch (err) {
    await sn.remove(ctx, key).catch(() => undefined);
    throw err;
  }
}

/** Reports whether an image's top chain exists in the snapshotter (containerd's IsUnpacked). */
export async function isUnpacked(ctx: Context, image: ImageRef, options: Pick<UnpackOptions, 'content' | 'snapshotter' | 'platforms'>): Promise<boolean> {
  const resolved = await resolveManifest(options.content, image.target, options.platforms);
  const config = await imageConfig(options.content, resolved);
  const chains = chainIds(config.rootfs.diff_ids);
  return chains.length > 0 && snapshotExists(ctx, options.snapshotter, chains[chains.length - 1]);
}
