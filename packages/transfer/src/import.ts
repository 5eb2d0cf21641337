import type { Context } from '@berth/context';
import type { ContentStore } from '@berth/content';
import { decompress } from '@berth/diff';
import { UnknownError, isNotFound } from '@berth/errdefs';
import {
  type OciDescriptor,
  type OciIndex,
  type PlatformMatcher,
  allPlatforms,
  childGcLabels,
  children,
  filterPlatforms,
  importIndex,
  isIndexType,
  isManifestType,
  platformMatcher,
  readJson,
  resolveManifest,
  setLabels,
  strictPlatformMatcher,
  unpack,
} from '@berth/images';
import { nullLogger } from '@berth/log';
import { receiveBytes } from '@berth/streaming';
import { importedImages, markImported, storedDescriptor } from './import-naming';
import { planUnpacks } from './pull-unpack';
import { storeImage } from './store';
import type { ImageStoreTarget, ImportStreamSource, ProgressSink, TransferServices } from './types';

/**
 * Bytes read after the end of the archive, at most: tar writers pad archives to their record
 * size (10 KiB for GNU tar), and reading that lets the client finish sending and half-close.
 */
const MAX_TRAILER = 1 << 20;

/**
 * Import (ImageImportStream to ImageStore), as containerd's transferrer does: reads the tar the
 * client sends on its stream (decompressing gzip or zstd when the media type is empty), stores
 * its blobs and index ({@link importIndex}: OCI layout or `docker save`), labels the content for
 * the garbage collector from the index down (every child is referenced, only the wanted
 * platforms are followed; nothing left is an error), unpacks into the requested snapshotters,
 * then stores the index and each top-level manifest under the names the destination gives them
 * (see {@link importedImages}; a descriptor no name applies to is skipped). Progress: `Importing`,
 * `saved` per image stored, `Completed import`.
 */
export async function importImages(ctx: Context, src: ImportStreamSource, dst: ImageStoreTarget, services: TransferServices, progress: ProgressSink): Promise<void> {
  progress({ event: 'Importing' });
  const content = services.content.bind(ctx);
  const index = await receiveArchive(ctx, src, content);

  const tops = ((await readJson<OciIndex>(content, index)).manifests ?? []).map(markImported);
  const platforms = dst.platforms.length > 0 ? strictPlatformMatcher(dst.platforms) : allPlatforms;
  const wanted = await labelImage(content, index, tops, platforms);
  await unpackImported(ctx, content, wanted, dst, services, platforms);

  for (const desc of [index, ...tops]) {
    const shown = storedDescriptor(desc);
    for (const image of importedImages(desc, dst)) {
      const stored = await storeImage(ctx, services.images, image);
      progress({ event: 'saved', name: stored.name, desc: shown });
    }
  }
  progress({ event: 'Completed import' });
}

/** Receives the archive from the client's stream into the content store; returns its index. */
async function receiveArchive(ctx: Context, src: ImportStreamSource, content: ContentStore): Promise<OciDescriptor> {
  const bytes = receiveBytes(src.stream, ctx.signal);
  const archive = (src.mediaType === '' ? decompress(bytes) : bytes)[Symbol.asyncIterator]();
  try {
    // One iterator: the tar reader leaves what follows the archive for the drain below.
    const index = await importIndex({ [Symbol.asyncIterator]: () => archive }, { content, compress: src.forceCompress });
    for (let extra = 0; extra <= MAX_TRAILER; ) {
      const next = await archive.next();
      if (next.done) break;
      extra += next.value.length;
    }
    return index;
  } finally {
    await archive.return?.(undefined);
  }
}

/**
 * Sets the gc reference labels from the index down, as containerd's import handlers do: each
 * parent references all its children, and only children of the wanted platforms are followed.
 * Returns the index's wanted manifests. Unknown `image might be filtered out` when no parent had
 * a child left to follow.
 */
async function labelImage(content: ContentStore, index: OciDescriptor, tops: OciDescriptor[], platforms: PlatformMatcher): Promise<OciDescriptor[]> {
  let found = false;
  const seen = new Set<string>([index.digest]);
  const visit = async (desc: OciDescriptor, kids: OciDescriptor[]): Promise<OciDescriptor[]> => {
    if (kids.length > 0) await setLabels(content, desc.digest, childGcLabels(kids));
    const wanted = filterPlatforms(kids, platforms);
    if (wanted.length > 0) found = true;
    for (const k of wanted) {
      if (seen.has(k.digest)) continue;
      seen.add(k.digest);
      await visit(k, await children(content, k));
    }
    return wanted;
  };
  const wanted = await visit(index, tops);
  if (!found) throw new UnknownError('image might be filtered out');
  return wanted;
}

/**
 * Unpacks each imported image for every requested unpack the configuration serves (matched as a
 * pull matches them): the best manifest, for the requested platform, among the wanted platforms'
 * manifests the unpack supports; once per manifest and snapshotter. An image with no such
 * manifest is not unpacked there.
 */
async function unpackImported(
  ctx: Context,
  content: ContentStore,
  images: OciDescriptor[],
  dst: ImageStoreTarget,
  services: TransferServices,
  platforms: PlatformMatcher,
): Promise<void> {
  const plans = planUnpacks(dst.unpacks, services.settings, services.snapshotter, services.logger ?? nullLogger);
  if (plans.length > 0) services.differ.warm?.();
  const done = new Set<string>();
  for (const plan of plans) {
    const preferred = platformMatcher([plan.platform]);
    const matcher: PlatformMatcher = {
      match: (p) => platforms.match(p) && plan.supported.match(p),
      // The requested platform and what it runs first, then anything else supported.
      rank: (p) => (preferred.match(p) ? preferred.rank(p) : Number.MAX_SAFE_INTEGER - 1),
    };
    for (const image of images) {
      if (!isManifestType(image.mediaType) && !isIndexType(image.mediaType)) continue;
      let manifest: OciDescriptor;
      try {
        manifest = (await resolveManifest(content, image, matcher)).manifest;
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      const key = `${plan.snapshotterName}\0${manifest.digest}`;
      if (done.has(key)) continue;
      done.add(key);
      await unpack(ctx, { target: manifest }, {
        content,
        snapshotter: plan.snapshotter,
        differ: services.differ,
        snapshotterName: plan.snapshotterName,
        platforms: matcher,
      });
    }
  }
}
