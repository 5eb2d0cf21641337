import { ContentDelete } from '@berth/api/events';
import type { Context } from '@berth/context';
import type { Publisher } from '@berth/events';
import type { Logger } from '@berth/log';
import { token } from '@berth/plugin';
import type { Digest } from './digest';
import type { MetadataContentStore, MetadataWriter } from './metadata-store';
import type { ContentStore, DescriptorLike, Info, InfoFilter, Labels, ReaderAt, Status, StatusFilter, WriterOptions } from './types';

/**
 * The daemon's content store below the namespaced layer: the local store
 * (`io.containerd.content.v1 content`) or a proxy plugin's.
 */
export const ContentStoreToken = token<ContentStore>('io.containerd.content.v1/store');
/** The in-process content service (`io.containerd.service.v1 content-service`). */
export const ContentServiceToken = token<ContentService>('io.containerd.service.v1/content-service');

/**
 * The in-process content service: the namespaced store plus the `/content/delete` event,
 * published after the delete committed. The gRPC adapter and other in-process users (image
 * import, the future GC) go through it.
 */
export class ContentService {
  constructor(
    readonly store: MetadataContentStore,
    private readonly publisher: Publisher,
    private readonly logger: Logger,
  ) {}

  info(ctx: Context, digest: Digest): Promise<Info> {
    return this.store.info(ctx, digest);
  }

  update(ctx: Context, info: { digest: Digest; labels?: Labels }, fieldpaths?: readonly string[]): Promise<Info> {
    return this.store.update(ctx, info, fieldpaths);
  }

  list(ctx: Context, filter?: InfoFilter): Promise<Info[]> {
    return this.store.list(ctx, filter);
  }

  /** Removes a blob from the caller's namespace and publishes `/content/delete`. */
  async delete(ctx: Context, digest: Digest): Promise<void> {
    await this.store.delete(ctx, digest);
    try {
      await this.publisher.publish(ctx, '/content/delete', ContentDelete, { digest });
    } catch (err) {
      // The delete happened; a failed publish must not turn it into an error.
      this.logger.warn('failed to publish event', { topic: '/content/delete', error: (err as Error).message });
    }
  }

  /**
   * Returns the bytes a blob of the caller's namespace takes on disk (allocated blocks), or
   * undefined when the backend cannot tell (a proxy store). Blobs are stored once: a blob that
   * other namespaces also have takes these bytes once in all. NotFound when the namespace has none.
   */
  async diskUsage(ctx: Context, digest: Digest): Promise<number | undefined> {
    await this.store.info(ctx, digest);
    return this.store.backend.diskUsage?.(digest);
  }

  readerAt(ctx: Context, desc: DescriptorLike): Promise<ReaderAt> {
    return this.store.readerAt(ctx, desc);
  }

  status(ctx: Context, ref: string): Promise<Status> {
    return this.store.status(ctx, ref);
  }

  listStatuses(ctx: Context, filter?: StatusFilter): Promise<Status[]> {
    return this.store.listStatuses(ctx, filter);
  }

  abort(ctx: Context, ref: string): Promise<void> {
    return this.store.abort(ctx, ref);
  }

  writer(ctx: Context, options: WriterOptions): Promise<MetadataWriter> {
    return this.store.writer(ctx, options);
  }

  /** Reports whether the caller's namespace has a blob, adding it to the caller's lease when so. */
  hold(ctx: Context, digest: Digest): boolean {
    return this.store.hold(ctx, digest);
  }
}
