import type { Context } from '@berth/context';
import { NotFoundError, isAlreadyExists, isNotFound } from '@berth/errdefs';
import type { Image, ImageInput, ImagesService } from '@berth/images';

/**
 * Stores an image as containerd's transfer image store does: create it; if the name exists,
 * replace its target and labels; if it vanished in between, create it again. An empty name is
 * NotFound `no image name found`.
 */
export async function storeImage(ctx: Context, images: ImagesService, image: ImageInput): Promise<Image> {
  if (image.name === '') throw new NotFoundError('no image name found', { bare: true });
  for (;;) {
    try {
      return await images.create(ctx, image);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    try {
      return await images.update(ctx, image);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
