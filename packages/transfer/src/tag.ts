import type { Context } from '@berth/context';
import type { ImagesService } from '@berth/images';
import { storeImage } from './store';
import type { ImageStoreTarget } from './types';

/**
 * Tag (ImageStore to ImageStore): the destination name gets the source image's target, with
 * the destination's labels (the source's labels are not copied, as in containerd's server-side
 * tag). NotFound `image "<name>": not found` when the source does not exist. No progress.
 */
export async function tagImage(ctx: Context, src: ImageStoreTarget, dst: ImageStoreTarget, images: ImagesService): Promise<void> {
  const source = await images.get(ctx, src.name);
  await storeImage(ctx, images, { name: dst.name, labels: { ...dst.labels }, target: { ...source.target } });
}
