import { randomBytes } from 'node:crypto';
import type { Context } from '@berth/context';
import type { ContentStore } from '@berth/content';
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
  const { content, snapshotter, differ } = options;
  const resolved = await resolveManifest(content, image.target, options.platforms);
  const config = await imageConfig(content, resolved);
  const diffIds = config.rootfs.diff_ids;
  const chains = chainIds(diffIds);
  let applied = 0;
  for (let i = 0; i < resolved.layers.length; i++) {
    const chain = chains[i];
    const parent = i === 0 ? '' : chains[i - 1];
    if (await exists(ctx, snapshotter, chain)) continue;
    const layer = resolved.layers[i];
    if (await applyLayer(ctx, options, layer, diffIds[i], chain, parent)) {
      applied++;
      await setLabels(content, layer.digest, { [LABEL_UNCOMPRESSED]: diffIds[i] });
    }
  }
  const top = chains[chains.length - 1] ?? '';
  await setLabels(content, resolved.config.digest, { [`${LABEL_GC_REF_SNAPSHOT}.${options.snapshotterName ?? 'overlayfs'}`]: top });
  return { chainId: top, chainIds: chains, applied, manifest: resolved.manifest, config: resolved.config };
}

async function exists(ctx: Context, sn: Snapshotter, key: string): Promise<boolean> {
  try {
    await sn.stat(ctx, key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Applies one layer as chain `chain`; false when another unpack committed the chain meanwhile. */
async function applyLayer(ctx: Context, o: UnpackOptions, layer: OciDescriptor, diffId: string, chain: string, parent: string): Promise<boolean> {
  const sn = o.snapshotter;
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
      if (await exists(ctx, sn, chain)) return false;
    }
  }
  try {
    const out = await o.differ.apply(ctx, { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: layer.annotations ?? {} }, mounts);
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
  return chains.length > 0 && exists(ctx, options.snapshotter, chains[chains.length - 1]);
}
