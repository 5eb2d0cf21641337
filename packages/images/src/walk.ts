import type { ContentStore, Provider } from '@berth/content';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, isFailedPrecondition, wrap } from '@berth/errdefs';
import { LABEL_GC_REF_CONTENT, MediaType, isConfigType, isIndexType, isLayerType, isManifestType } from './media-types';
import { Platform, PlatformMatcher, platformMatcher } from './platforms';

/** An OCI descriptor as images reference content. */
export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

/** An OCI image index or Docker manifest list. */
export interface OciIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** An OCI or Docker schema 2 image manifest. */
export interface OciManifest {
  schemaVersion: number;
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** The parts of an image config that images need. */
export interface OciImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  rootfs: { type: string; diff_ids: string[] };
  config?: Record<string, unknown>;
}

/** Something that names an image's root descriptor: an image record, or `{target}`. */
export interface ImageRef {
  name?: string;
  target: OciDescriptor;
}

/** The largest manifest, index or config read into memory. */
export const MAX_MANIFEST_SIZE = 8 << 20;

/** Reads a whole (small) blob. NotFound `content <digest>` when missing. */
export async function readBlob(content: Provider, desc: OciDescriptor, limit = MAX_MANIFEST_SIZE): Promise<Buffer> {
  const ra = await content.readerAt({ digest: desc.digest, size: desc.size });
  try {
    if (ra.size > limit) throw new FailedPreconditionError(`${desc.digest}: ${ra.size} bytes is more than the ${limit} bytes a ${desc.mediaType} may have`);
    const buf = Buffer.alloc(ra.size);
    let off = 0;
    while (off < buf.length) {
      const n = await ra.readAt(buf.subarray(off), off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    await ra.close();
  }
}

/** Reads and parses a JSON blob. */
export async function readJson<T>(content: Provider, desc: OciDescriptor): Promise<T> {
  return parseJsonBlob<T>(desc, await readBlob(content, desc));
}

/** Parses a JSON blob's bytes; InvalidArgument `<digest>: invalid JSON` when they are not JSON. */
export function parseJsonBlob<T>(desc: OciDescriptor, bytes: Buffer): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw wrap(new InvalidArgumentError(`${desc.digest}: invalid JSON`, { cause: err }), `failed to read ${desc.mediaType}`);
  }
}

/**
 * Returns a descriptor's children: an index's manifests, a manifest's config then layers, and
 * nothing for configs, layers and unknown types.
 */
export async function children(content: Provider, desc: OciDescriptor): Promise<OciDescriptor[]> {
  if (!isIndexType(desc.mediaType) && !isManifestType(desc.mediaType)) return [];
  return childrenOf(desc, await readBlob(content, desc));
}

/** {@link children} from the blob's bytes. */
export function childrenOf(desc: OciDescriptor, bytes: Buffer): OciDescriptor[] {
  if (isIndexType(desc.mediaType)) return parseJsonBlob<OciIndex>(desc, bytes).manifests ?? [];
  if (isManifestType(desc.mediaType)) {
    const m = parseJsonBlob<OciManifest>(desc, bytes);
    return [m.config, ...(m.layers ?? [])];
  }
  return [];
}

/** Keeps the descriptors without a platform and those the matcher accepts (containerd's FilterPlatforms). */
export function filterPlatforms(descs: readonly OciDescriptor[], matcher: PlatformMatcher): OciDescriptor[] {
  return descs.filter((d) => !d.platform || matcher.match(d.platform));
}

/** The gc reference label keys of a child (containerd's ChildGCLabels); a trailing dot takes an index. */
export function childGcLabelKey(child: OciDescriptor): string {
  if (isConfigType(child.mediaType)) return `${LABEL_GC_REF_CONTENT}.config`;
  if (isManifestType(child.mediaType)) return `${LABEL_GC_REF_CONTENT}.m.`;
  if (isLayerType(child.mediaType)) return `${LABEL_GC_REF_CONTENT}.l.`;
  return `${LABEL_GC_REF_CONTENT}.`;
}

/**
 * The gc reference labels a parent gets for its children: `...config`, `...m.<i>`, `...l.<i>`,
 * `....<i>`, numbered per key in child order (a repeated `config` key gets `config1`, ...).
 */
export function childGcLabels(kids: readonly OciDescriptor[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const counts = new Map<string, number>();
  for (const ch of kids) {
    let key = childGcLabelKey(ch);
    const i = counts.get(key) ?? 0;
    counts.set(key, i + 1);
    if (i > 0 || key.endsWith('.')) key = `${key}${i}`;
    labels[key] = ch.digest;
  }
  return labels;
}

/** Sets labels on a blob with `labels.<key>` paths; a store that keeps no labels is skipped. */
export async function setLabels(content: ContentStore, digest: string, labels: Record<string, string>): Promise<void> {
  const keys = Object.keys(labels);
  if (keys.length === 0) return;
  try {
    await content.update({ digest, labels }, keys.map((k) => `labels.${k}`));
  } catch (err) {
    // LocalContentStore without a label store: labels only matter to a collector, and there is none.
    if (isFailedPrecondition(err) && /immutable content store/.test((err as Error).message)) return;
    throw err;
  }
}

/** Options of {@link walkImage}. */
export interface WalkOptions {
  /** Which platforms' manifests to follow; default the host's. Use `allPlatforms` for all. */
  platforms?: PlatformMatcher;
  /** Set containerd's gc reference labels on every parent, as `ctr images import` and pull do. */
  setGcLabels?: boolean;
  /** Called for each descriptor, parents before children. */
  visit?: (desc: OciDescriptor) => void | Promise<void>;
}

/**
 * Walks an image from its root descriptor (index -> manifests -> config and layers), following
 * only manifests of the wanted platforms; visits each digest once. Returns every descriptor
 * walked, in visit order.
 */
export async function walkImage(content: ContentStore | Provider, root: OciDescriptor, options: WalkOptions = {}): Promise<OciDescriptor[]> {
  const matcher = options.platforms ?? platformMatcher();
  const seen = new Set<string>();
  const out: OciDescriptor[] = [];
  const walk = async (descs: readonly OciDescriptor[]): Promise<void> => {
    for (const d of descs) {
      if (seen.has(d.digest)) continue;
      seen.add(d.digest);
      out.push(d);
      await options.visit?.(d);
      const kids = filterPlatforms(await children(content, d), matcher);
      if (options.setGcLabels && kids.length > 0) await setLabels(content as ContentStore, d.digest, childGcLabels(kids));
      await walk(kids);
    }
  };
  await walk([root]);
  return out;
}

/** What {@link resolveManifest} finds: the manifest for one platform, its config and layers. */
export interface ResolvedManifest {
  manifest: OciDescriptor;
  config: OciDescriptor;
  layers: OciDescriptor[];
  platform?: Platform;
}

/**
 * Finds the best manifest of an image for the platforms (containerd's images.Manifest): an index's
 * children by rank, a manifest checked against its config's platform. NotFound
 * `manifest <digest>` when no manifest matches.
 */
export async function resolveManifest(content: Provider, root: OciDescriptor, platforms: PlatformMatcher = platformMatcher()): Promise<ResolvedManifest> {
  const candidates: Array<ResolvedManifest & { rank: number }> = [];
  const visit = async (desc: OciDescriptor, depth: number): Promise<void> => {
    if (depth > 8) throw new InvalidArgumentError(`${root.digest}: index nesting too deep`);
    if (isManifestType(desc.mediaType)) {
      if (desc.platform && !platforms.match(desc.platform)) return;
      const m = await readJson<OciManifest>(content, desc);
      let platform = desc.platform;
      if (!platform && isConfigType(m.config.mediaType) && m.config.mediaType !== MediaType.containerdCheckpointConfig) {
        const c = await readJson<OciImageConfig>(content, m.config);
        platform = { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}) };
        if (!platforms.match(platform)) return;
      }
      candidates.push({ manifest: desc, config: m.config, layers: m.layers ?? [], platform, rank: platform ? platforms.rank(platform) : 0 });
    } else if (isIndexType(desc.mediaType)) {
      const idx = await readJson<OciIndex>(content, desc);
      for (const m of filterPlatforms(idx.manifests ?? [], platforms)) await visit(m, depth + 1);
    } else {
      throw new InvalidArgumentError(`unexpected media type ${desc.mediaType} for ${desc.digest}: not found`, { bare: true });
    }
  };
  await visit(root, 0);
  if (candidates.length === 0) throw new NotFoundError(`manifest ${root.digest}`);
  candidates.sort((a, b) => a.rank - b.rank);
  const { rank: _rank, ...best } = candidates[0];
  return best;
}

/** Reads an image's config for the platforms and returns it with its diff IDs checked against the layers. */
export async function imageConfig(content: Provider, resolved: ResolvedManifest): Promise<OciImageConfig> {
  const config = await readJson<OciImageConfig>(content, resolved.config);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== resolved.layers.length) {
    throw new FailedPreconditionError(`mismatched image rootfs and manifest layers`, { bare: true });
  }
  return config;
}
