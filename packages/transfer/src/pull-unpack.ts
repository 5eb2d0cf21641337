import type { Context } from '@berth/context';
import type { ContentStore, GrowingBlob } from '@berth/content';
import { FailedPreconditionError } from '@berth/errdefs';
import {
  chainIds,
  hostPlatform,
  labelUnpacked,
  normalizePlatform,
  platformMatcher,
  snapshotExists,
  unpackLayer,
  type OciDescriptor,
  type UnpackLayer,
  type OciImageConfig,
  type Platform,
  type PlatformMatcher,
} from '@berth/images';
import type { Logger } from '@berth/log';
import { DEFAULT_SNAPSHOTTER, type Snapshotter } from '@berth/snapshots';
import { PROGRESS_INTERVAL_MS, blobName } from './pull-progress';
import type { ImageStoreTarget, ProgressSink, TransferServices, TransferSettings } from './types';

/** One unpack a pull does: a requested platform, into a configured snapshotter. */
export interface UnpackPlan {
  /** The platform the client asked to unpack (the host's when it named none). */
  platform: Platform;
  /** Accepts the image platforms the matched `unpack_config` entry may unpack. */
  supported: PlatformMatcher;
  snapshotterName: string;
  snapshotter: Snapshotter;
}

/**
 * Matches the requested unpacks against the configured unpack platforms, as containerd's local
 * transferrer does: the platform must fit the configured one (its OS alone unless
 * `checkPlatformSupported`), and the snapshotter must be the configured one; a request without
 * a snapshotter takes the matching entry for the default snapshotter (overlayfs), else the
 * first matching entry. Requests that match nothing are skipped with a warning.
 */
export function planUnpacks(
  unpacks: ImageStoreTarget['unpacks'],
  settings: TransferSettings,
  snapshotterOf: TransferServices['snapshotter'],
  logger: Logger,
): UnpackPlan[] {
  const plans: UnpackPlan[] = [];
  for (const u of unpacks) {
    const platform = u.platform ? normalizePlatform(u.platform) : hostPlatform();
    const fits = settings.unpackPlatforms.filter((c) =>
      settings.checkPlatformSupported ? platformMatcher([c.platform]).match(platform) : normalizePlatform(c.platform).os === platform.os,
    );
    const chosen = u.snapshotter
      ? fits.find((c) => c.snapshotter === u.snapshotter)
      : (fits.find((c) => c.snapshotter === DEFAULT_SNAPSHOTTER) ?? fits[0]);
    if (!chosen) {
      logger.warn('no unpack platform configured for the requested unpack, skipping it', {
        platform: [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/'),
        snapshotter: u.snapshotter,
      });
      continue;
    }
    const supported: PlatformMatcher = settings.checkPlatformSupported
      ? platformMatcher([chosen.platform])
      : { match: (p) => normalizePlatform(p).os === normalizePlatform(chosen.platform).os, rank: () => 0 };
    plans.push({ platform, supported, snapshotterName: chosen.snapshotter, snapshotter: snapshotterOf(chosen.snapshotter) });
  }
  return plans;
}

/** A manifest a pull found: its config and layers, and whether the layers are fetched. */
export interface PulledManifest {
  desc: OciDescriptor;
  config: OciDescriptor;
  layers: OciDescriptor[];
  /** False for another platform's manifest kept for its metadata only (`allMetadata`). */
  withLayers: boolean;
}

/** What the unpacker needs from the pull it runs in. */
export interface UnpackHost {
  /** The pull's context: its signal ends waits when the pull fails. */
  ctx: Context;
  /** The content store bound to the pull's context. */
  content: ContentStore;
  differ: TransferServices['differ'];
  progress: ProgressSink;
  /** Resolves once the blob is in the content store. */
  stored(digest: string): Promise<void>;
  /** Parses a JSON blob of the pull (a config) as soon as its bytes are there. */
  readJson<T>(desc: OciDescriptor): Promise<T>;
  /** The blob's bytes as they download, when it is being fetched (else undefined: wait for `stored`). */
  follow(digest: string): Promise<GrowingBlob | undefined>;
  /** Resolves with every manifest of the image, once the walk has found them all. */
  manifests(): Promise<PulledManifest[]>;
}

/**
 * Unpacks while the pull is still fetching: for each plan, picks the image's manifest (the best
 * ranked for the requested platform among those the configured entry supports), and applies each
 * layer as soon as its blob is stored and the layer below is committed; a layer whose chain
 * exists is skipped without waiting for its blob. Progress: `extracting` when a layer starts,
 * `extracted` when its chain is committed. Ends by labelling the config
 * `containerd.io/gc.ref.snapshot.<snapshotter>`.
 */
export async function unpackWhileFetching(host: UnpackHost, plans: readonly UnpackPlan[], logger: Logger): Promise<void> {
  if (plans.length === 0) return;
  // Two unpacks of one blob cannot both follow its download; the first to ask gets it.
  const followed = new Set<string>();
  const outer = host;
  host = {
    ...outer,
    follow: (digest) => {
      if (followed.has(digest)) return Promise.resolve(undefined);
      followed.add(digest);
      return outer.follow(digest);
    },
  };
  const done = new Set<string>();
  await Promise.all(
    plans.map(async (plan) => {
      const manifest = await chooseManifest(host, plan);
      if (!manifest) {
        logger.warn('no manifest of the image fits the unpack platform, skipping it', { snapshotter: plan.snapshotterName });
        return;
      }
      const key = `${plan.snapshotterName}\u0000${manifest.desc.digest}`;
      if (done.has(key)) return;
      done.add(key);
      await unpackManifest(host, plan, manifest, logger);
    }),
  );
}

/** The platform of a manifest: its index descriptor's, else its config's. */
async function platformOf(host: UnpackHost, m: PulledManifest): Promise<Platform> {
  if (m.desc.platform) return m.desc.platform;
  const c = await host.readJson<OciImageConfig>(m.config);
  return { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) };
}

async function chooseManifest(host: UnpackHost, plan: UnpackPlan): Promise<PulledManifest | undefined> {
  const wanted = platformMatcher([plan.platform]);
  let best: { m: PulledManifest; rank: number } | undefined;
  for (const m of (await host.manifests()).filter((x) => x.withLayers)) {
    const p = await platformOf(host, m);
    if (!plan.supported.match(p)) continue;
    const rank = wanted.rank(p);
    if (!best || rank < best.rank) best = { m, rank };
  }
  return best?.m;
}

async function unpackManifest(host: UnpackHost, plan: UnpackPlan, m: PulledManifest, logger: Logger): Promise<void> {
  const { ctx, content, progress } = host;
  const config = await host.readJson<OciImageConfig>(m.config);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== m.layers.length) throw new FailedPreconditionError('mismatched image rootfs and manifest layers', { bare: true });
  const chains = chainIds(diffIds);
  const target = { content, snapshotter: plan.snapshotter, differ: host.differ };
  // The layer whose turn it is. A layer stored before its turn is extracted ahead by the differ
  // (on its second worker), beside the apply of the layers below; its apply then takes the tree.
  let current = 0;
  for (let i = 1; i < m.layers.length && host.differ.prefetch; i++) {
    const digest = m.layers[i].digest;
    host.stored(digest).then(
      async () => {
        if (i <= current || ctx.signal.aborted || (await snapshotExists(ctx, plan.snapshotter, chains[i]))) return;
        if (i > current) host.differ.prefetch?.(digest);
      },
      () => undefined, // the pull fails, and says why elsewhere
    );
  }
  for (let i = 0; i < m.layers.length; i++) {
    current = i;
    const desc = m.layers[i];
    const name = blobName(desc);
    // Bytes of the blob read by the apply, reported at most every 300 ms as containerd's tracker does.
    let read = 0;
    let reported = -1;
    const report = () => {
      if (read === reported) return;
      reported = read;
      progress({ event: 'extracting', name, progress: read, total: desc.size, desc });
    };
    const layer = { desc, diffId: diffIds[i], chainId: chains[i], parent: i === 0 ? '' : chains[i - 1], onProgress: (n: number) => void (read = n) };
    if (await snapshotExists(ctx, plan.snapshotter, layer.chainId)) continue;
    // A blob still downloading is applied as its bytes arrive; the snapshot is committed only
    // once the download verified them.
    const source = await host.follow(desc.digest);
    if (!source) await host.stored(desc.digest);
    report();
    const ticker = setInterval(report, PROGRESS_INTERVAL_MS);
    try {
      if (source) await unpackFollowing(host, layer, target, source, logger);
      else await unpackLayer(ctx, layer, target);
    } finally {
      clearInterval(ticker);
    }
    progress({ event: 'extracted', name, progress: desc.size, total: desc.size, desc });
  }
  if (chains.length === 0) return;
  // The config was read from memory; its label waits for it to be stored.
  await host.stored(m.config.digest);
  await labelUnpacked(content, m.config, plan.snapshotterName, chains[chains.length - 1]);
}

/**
 * Applies a layer from its download. When that fails for a reason other than the pull's end (the
 * download restarted, or its bytes were wrong), the layer is applied again from the stored blob
 * once the fetch settles: that apply, or the fetch, reports the error.
 */
async function unpackFollowing(
  host: UnpackHost,
  layer: UnpackLayer,
  target: Parameters<typeof unpackLayer>[2],
  source: GrowingBlob,
  logger: Logger,
): Promise<void> {
  const { ctx } = host;
  const digest = layer.desc.digest;
  try {
    await unpackLayer(ctx, { ...layer, source, stored: () => host.stored(digest) }, target);
    return;
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    logger.debug('applying the layer as it downloaded failed, applying the stored blob', { digest, error: String(err) });
  } finally {
    await source.close();
  }
  await host.stored(digest);
  await unpackLayer(ctx, layer, target);
}
