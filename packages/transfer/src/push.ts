import { type Readable, Transform, pipeline } from 'node:stream';
import type { Context } from '@berth/context';
import type { ContentStore } from '@berth/content';
import { isNotFound } from '@berth/errdefs';
import {
  LABEL_DISTRIBUTION_SOURCE,
  distributionSourceKey,
  type OciDescriptor,
  type PlatformMatcher,
  allPlatforms,
  children,
  filterPlatforms,
  isIndexType,
  isManifestType,
  readBlob,
  strictPlatformMatcher,
} from '@berth/images';
import { ImageReference, RegistryClient, type BlobSource } from '@berth/remotes';
import { blobName } from './pull-progress';
import type { ImageStoreTarget, ProgressSink, RegistryAccess, RegistrySource, TransferServices } from './types';
import { UploadTracker } from './upload-tracker';

/** One descriptor of the image being pushed. */
interface PushNode {
  desc: OciDescriptor;
  /** Progress names of the descriptors that list it (the image name for the root). */
  parents: string[];
  /** Its `containerd.io/distribution.source.<host>` entries: its own, then inherited from its parents. */
  sources: Record<string, string>;
}

/** What to push, children before parents. */
interface PushPlan {
  /** Every descriptor, in walk order (parents first). */
  nodes: PushNode[];
  /** Configs, layers and other blobs. */
  blobs: PushNode[];
  /** Image manifests. */
  manifests: PushNode[];
  /** Indexes, deepest last (pushed in reverse). */
  indexes: PushNode[];
}

/**
 * Push (ImageStore to OCIRegistry), as containerd's transferrer does: gets the image `src.name`
 * (NotFound `image "<name>": not found`), walks it (the source's platforms, matched exactly, or
 * all), then uploads the blobs (`maxConcurrentUploadedLayers` at a time; a blob that came from
 * another repository of the same registry is mounted from there), then the manifests, then the
 * indexes, children first, through the registry's first push-capable host. Only the root is
 * tagged: the reference is pinned to the root's digest unless it names one. Progress:
 * `Pushing to OCI Registry (<ref>)`, `pushing content` (the image), per blob `waiting`,
 * `uploading`, then `complete` or `already exists`, then `pushed content` and
 * `Completed push to OCI Registry (<ref>)`.
 */
export async function push(ctx: Context, src: ImageStoreTarget, dst: RegistrySource, services: TransferServices, access: RegistryAccess, progress: ProgressSink): Promise<void> {
  const image = await services.images.get(ctx, src.name);
  const target: OciDescriptor = { mediaType: image.target.mediaType, digest: image.target.digest, size: image.target.size, annotations: { ...image.target.annotations } };
  const registry = `OCI Registry (${dst.reference})`;
  progress({ event: `Pushing to ${registry}` });
  progress({ event: 'pushing content', name: image.name, desc: target });

  let ref = ImageReference.parse(dst.reference);
  if (ref.digest === undefined) ref = ref.withDigest(target.digest);
  const content = services.content.bind(ctx);
  const platforms = src.platforms.length > 0 ? strictPlatformMatcher(src.platforms) : allPlatforms;
  const plan = await planPush(content, target, image.name, platforms);

  const tracker = new UploadTracker(progress);
  const client = new RegistryClient({ hosts: access.hosts, credentials: access.credentials });
  try {
    for (const n of plan.nodes) tracker.add(n.desc, n.parents);
    const pushOne = (n: PushNode) => pushNode(ctx, client, ref, content, n, tracker);
    const limit = Math.max(1, services.settings.maxConcurrentUploadedLayers);
    await runLimited(plan.blobs, limit, pushOne);
    await runLimited(plan.manifests, limit, pushOne);
    for (const n of [...plan.indexes].reverse()) await pushOne(n);
  } finally {
    tracker.stop();
    await client.close();
  }
  progress({ event: 'pushed content', name: image.name, desc: target });
  progress({ event: `Completed push to ${registry}`, desc: target });
}

/** Walks the image from its root, following only the wanted platforms' manifests. */
async function planPush(content: ContentStore, root: OciDescriptor, imageName: string, platforms: PlatformMatcher): Promise<PushPlan> {
  const plan: PushPlan = { nodes: [], blobs: [], manifests: [], indexes: [] };
  const byDigest = new Map<string, PushNode>();
  const visit = async (desc: OciDescriptor, parent: string, sources: Record<string, string>): Promise<void> => {
    const known = byDigest.get(desc.digest);
    if (known) {
      if (!known.parents.includes(parent)) known.parents.push(parent);
      return;
    }
    const node: PushNode = { desc, parents: [parent], sources };
    byDigest.set(desc.digest, node);
    plan.nodes.push(node);
    if (isManifestType(desc.mediaType)) plan.manifests.push(node);
    else if (isIndexType(desc.mediaType)) plan.indexes.push(node);
    else {
      plan.blobs.push(node);
      return;
    }
    // Children inherit the sources of their parent, and those of its blob's labels.
    const inherited = { ...(await distributionSources(content, desc.digest)), ...sources };
    for (const child of filterPlatforms(await children(content, desc), platforms)) {
      const own = await distributionSources(content, child.digest);
      await visit(child, blobName(desc), { ...inherited, ...own });
    }
  };
  await visit(root, imageName, pickSources(root.annotations ?? {}));
  return plan;
}

/** The `containerd.io/distribution.source.*` labels of a blob ({} when it is not here). */
async function distributionSources(content: ContentStore, digest: string): Promise<Record<string, string>> {
  try {
    return pickSources((await content.info(digest)).labels ?? {});
  } catch (err) {
    if (isNotFound(err)) return {};
    throw err;
  }
}

function pickSources(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith(`${LABEL_DISTRIBUTION_SOURCE}.`)));
}

/** A repository of the target registry the blob came from, other than the target: where to mount it from. */
function mountCandidate(ref: ImageReference, sources: Record<string, string>): string | undefined {
  const repos = sources[distributionSourceKey(ref.registry)];
  return repos?.split(',').find((r) => r !== '' && r !== ref.repository);
}

/** Pushes one descriptor and reports how it went. */
async function pushNode(ctx: Context, client: RegistryClient, ref: ImageReference, content: ContentStore, node: PushNode, tracker: UploadTracker): Promise<void> {
  const { desc } = node;
  const remote = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  let source: BlobSource;
  if (isManifestType(desc.mediaType) || isIndexType(desc.mediaType)) {
    source = await readBlob(content, desc);
  } else {
    source = async (offset: number) => {
      tracker.started(desc.digest, offset);
      return countedStream(content, desc, offset, (n) => tracker.advanced(desc.digest, n));
    };
  }
  const outcome = await client.push(ref, remote, source, { mountFrom: mountCandidate(ref, node.sources), signal: ctx.signal });
  if (outcome === 'uploaded') tracker.complete(desc.digest);
  else tracker.exists(desc.digest);
}

/** A stream of a blob from `offset`, reporting each chunk's size as it is read. */
async function countedStream(content: ContentStore, desc: OciDescriptor, offset: number, counted: (n: number) => void): Promise<Readable> {
  const ra = await content.readerAt({ digest: desc.digest, size: desc.size });
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      counted(chunk.length);
      done(null, chunk);
    },
  });
  pipeline(ra.createReadStream(offset), counter, () => void ra.close());
  return counter;
}

/** Runs `fn` over the items, at most `limit` at once; the first failure stops new starts and is thrown once the others settle. */
async function runLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}
