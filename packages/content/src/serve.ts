import type { Context } from '@berth/context';
import { serveUnix, type UnixServer } from '@berth/grpc';
import { Logger, nullLogger } from '@berth/log';
import { createContentGrpcService, type ContentApi } from './content-grpc';
import type { Digest } from './digest';
import type { ContentStore, DescriptorLike, Info, InfoFilter, Labels, ReaderAt, Status, StatusFilter, Writer, WriterOptions } from './types';

/**
 * One plain store behind the Content API whatever namespace a request carries: what a proxy
 * plugin talks to (containerd's metadata layer keeps the namespaces; the server keeps bytes).
 */
export class SingleStoreContentApi implements ContentApi {
  constructor(private readonly store: ContentStore) {}

  info(_ctx: Context, digest: Digest): Promise<Info> {
    return this.store.info(digest);
  }
  update(_ctx: Context, info: { digest: Digest; labels?: Labels }, fieldpaths?: readonly string[]): Promise<Info> {
    return this.store.update(info, fieldpaths);
  }
  async list(_ctx: Context, filter?: InfoFilter): Promise<Info[]> {
    const out: Info[] = [];
    await this.store.walk((i) => void out.push(i), filter);
    return out;
  }
  delete(_ctx: Context, digest: Digest): Promise<void> {
    return this.store.delete(digest);
  }
  readerAt(_ctx: Context, desc: DescriptorLike): Promise<ReaderAt> {
    return this.store.readerAt(desc);
  }
  status(_ctx: Context, ref: string): Promise<Status> {
    return this.store.status(ref);
  }
  listStatuses(_ctx: Context, filter?: StatusFilter): Promise<Status[]> {
    return this.store.listStatuses(filter);
  }
  abort(_ctx: Context, ref: string): Promise<void> {
    return this.store.abort(ref);
  }
  writer(_ctx: Context, options: WriterOptions): Promise<Writer> {
    return this.store.writer(options);
  }
  hold(_ctx: Context, digest: Digest): Promise<boolean> {
    return this.store.info(digest).then(
      () => true,
      () => false,
    );
  }
}

/**
 * Serves `store` over containerd's Content API on a unix socket, so that containerd
 * (`[proxy_plugins.<name>] type = "content"`) or berthd can use it. Closing the server leaves the
 * store open.
 */
export function serveContentStore(store: ContentStore, address: string, logger: Logger = nullLogger): Promise<UnixServer> {
  return serveUnix([createContentGrpcService(new SingleStoreContentApi(store), logger)], address);
}
