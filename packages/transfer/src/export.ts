import type { Context } from '@berth/context';
import { NotImplementedError } from '@berth/errdefs';
import { type Image, type ImagesService, exportArchive, hostPlatform, strictPlatformMatcher } from '@berth/images';
import { sendBytes } from '@berth/streaming';
import { ByteChannel } from './byte-channel';
import type { ExportStreamTarget, ImageStoreTarget, ProgressSink, TransferServices } from './types';

/**
 * Export (ImageStore to ImageExportStream), as containerd's transferrer does: looks up the
 * source's `name` and each of its extra references by exact name (NotFound `image "<name>": not
 * found`; a prefix reference is NotImplemented), then sends the client an OCI-layout tar of them
 * ({@link exportArchive}) with a Docker `manifest.json` unless skipped, within the credit the
 * client grants. Platforms: the destination's, else the host's, matched exactly; all of an
 * index's manifests with `allPlatforms`. Progress: `Exporting`, `Completed export`. Resolves once
 * the last bytes are handed to the stream; closing the stream is the caller's.
 */
export async function exportImages(ctx: Context, src: ImageStoreTarget, dst: ExportStreamTarget, services: TransferServices, progress: ProgressSink): Promise<void> {
  progress({ event: 'Exporting' });
  const images = await lookupImages(ctx, src, services.images);
  const channel = new ByteChannel();
  const sending = sendBytes(dst.stream, channel, ctx.signal).catch((err: unknown) => {
    channel.fail(err);
    throw err;
  });
  // Awaited below, unless the archive fails first; never an unhandled rejection meanwhile.
  sending.catch(() => undefined);
  const writing = exportArchive(
    images.map((i) => ({ name: i.name, target: i.target })),
    (chunk) => channel.push(chunk),
    {
      content: services.content.bind(ctx),
      platforms: strictPlatformMatcher(dst.platforms.length > 0 ? dst.platforms : [hostPlatform()]),
      allPlatforms: dst.allPlatforms,
      skipDockerManifest: dst.skipCompatibilityManifest,
      skipNonDistributable: dst.skipNonDistributable,
    },
  ).then(
    () => channel.end(),
    (err: unknown) => {
      channel.fail(err);
      throw err;
    },
  );
  // A failed archive fails the export at once: the sender may be waiting for credit that the
  // client, no longer reading, never grants.
  await writing;
  await sending;
  progress({ event: 'Completed export' });
}

/** The images an export writes: `name`, then each extra reference, in order. */
async function lookupImages(ctx: Context, src: ImageStoreTarget, images: ImagesService): Promise<Image[]> {
  const out: Image[] = [];
  if (src.name !== '') out.push(await images.get(ctx, src.name));
  for (const ref of src.extraReferences) {
    if (ref.isPrefix) throw new NotImplementedError('prefix lookup on export not implemented');
    out.push(await images.get(ctx, ref.name));
  }
  return out;
}
