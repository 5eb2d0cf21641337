import { ImageCreate, ImageDelete, ImageUpdate, MessageType } from '@berth/api/events';
import { Context } from '@berth/context';
import { InvalidArgumentError } from '@berth/errdefs';
import type { Publisher } from '@berth/events';
import type { Logger } from '@berth/log';
import { Image, ImageInput, ImageStore } from '@berth/metadata';
import { token } from '@berth/plugin';

export interface ImagesServiceOptions {
  /**
   * Runs a garbage collection and resolves when it is done: what `delete(..., {sync: true})`
   * waits for. Until Berth has a collector it is absent and a sync delete returns right after
   * the delete commits.
   */
  collectGarbage?: (ctx: Context) => Promise<void>;
}

/**
 * The in-process images service: the image store, containerd's request checks, and the events
 * (/images/create, /images/update, /images/delete), published after each change commits.
 * Loads no gRPC code, so programs can use it without the daemon.
 */
export class ImagesService {
  constructor(
    private readonly store: ImageStore,
    private readonly publisher: Publisher,
    private readonly logger: Logger,
    private readonly options: ImagesServiceOptions = {},
  ) {}

  /** Publishes after a committed change; a failure to publish is logged, never returned. */
  private async publish<T>(ctx: Context, topic: string, type: MessageType<T>, event: T): Promise<void> {
    try {
      await this.publisher.publish(ctx, topic, type, event);
    } catch (err) {
      this.logger.warn('failed to publish event', { topic, error: (err as Error).message });
    }
  }

  /** Returns an image; NotFound `image "<name>"`. */
  get(ctx: Context, name: string): Promise<Image> {
    return this.store.get(ctx, name);
  }

  /** Returns the images matching any of the filters, by name. */
  list(ctx: Context, filters: readonly string[] = []): Promise<Image[]> {
    return this.store.list(ctx, filters);
  }

  /** Creates an image and publishes /images/create. */
  async create(ctx: Context, image: ImageInput): Promise<Image> {
    if (image.name === '') throw new InvalidArgumentError('Image.Name required', { bare: true });
    const created = await this.store.create(ctx, image);
    await this.publish(ctx, '/images/create', ImageCreate, { name: created.name, labels: created.labels });
    return created;
  }

  /**
   * Updates the masked fields (see `ImageStore.update`) and publishes /images/update. A missing
   * image is NotFound, which clients such as `ctr images import` rely on to fall back to create.
   */
  async update(ctx: Context, image: ImageInput, fieldpaths: readonly string[] = []): Promise<Image> {
    if (image.name === '') throw new InvalidArgumentError('Image.Name required', { bare: true });
    const updated = await this.store.update(ctx, image, fieldpaths);
    await this.publish(ctx, '/images/update', ImageUpdate, { name: updated.name, labels: updated.labels });
    return updated;
  }

  /**
   * Deletes an image and publishes /images/delete. With `sync`, waits for a garbage collection
   * when a collector is configured (see `ImagesServiceOptions.collectGarbage`).
   */
  async delete(ctx: Context, name: string, options: { sync?: boolean } = {}): Promise<void> {
    await this.store.delete(ctx, name);
    await this.publish(ctx, '/images/delete', ImageDelete, { name });
    if (options.sync && this.options.collectGarbage) await this.options.collectGarbage(ctx);
  }
}

export const ImagesServiceToken = token<ImagesService>('io.containerd.service.v1/images');
