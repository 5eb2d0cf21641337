import type { Context } from '@berth/context';
import { serveUnix, type UnixServer } from '@berth/grpc';
import { Logger, nullLogger } from '@berth/log';
import { createSnapshotsGrpcService, type SnapshotsApi } from './snapshots-grpc';
import type { CleanupResult, Info, SnapshotOptions, Snapshotter, Usage } from './types';
import type { Mount } from '@berth/mount';

/**
 * One snapshotter behind the Snapshots API whatever snapshotter name a request carries: what a
 * proxy plugin talks to (containerd sends the proxy plugin's name, which the server need not
 * know). Keys are the client's backend keys; namespaces are the client's business.
 */
export class SingleSnapshotterApi implements SnapshotsApi {
  constructor(private readonly sn: Snapshotter) {}

  prepare(ctx: Context, _name: string, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.sn.prepare(ctx, key, parent, opts);
  }
  view(ctx: Context, _name: string, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.sn.view(ctx, key, parent, opts);
  }
  mounts(ctx: Context, _name: string, key: string): Promise<Mount[]> {
    return this.sn.mounts(ctx, key);
  }
  commit(ctx: Context, _name: string, name: string, key: string, opts?: SnapshotOptions): Promise<void> {
    return this.sn.commit(ctx, name, key, opts);
  }
  remove(ctx: Context, _name: string, key: string): Promise<void> {
    return this.sn.remove(ctx, key);
  }
  stat(ctx: Context, _name: string, key: string): Promise<Info> {
    return this.sn.stat(ctx, key);
  }
  update(ctx: Context, _name: string, info: Pick<Info, 'name' | 'labels'>, fieldpaths?: readonly string[]): Promise<Info> {
    return this.sn.update(ctx, info, fieldpaths);
  }
  usage(ctx: Context, _name: string, key: string): Promise<Usage> {
    return this.sn.usage(ctx, key);
  }
  async list(ctx: Context, _name: string, filters: readonly string[] = []): Promise<Info[]> {
    const out: Info[] = [];
    await this.sn.walk(ctx, (info) => void out.push(info), filters);
    return out;
  }
  cleanup(ctx: Context, _name: string): Promise<CleanupResult> {
    return this.sn.cleanup(ctx);
  }
}

/** A running Snapshots API server on a unix socket. */
export type SnapshotterServer = UnixServer;

/**
 * Serves `snapshotter` over containerd's Snapshots API on a unix socket, so that containerd
 * (`[proxy_plugins.<name>] type = "snapshot"`) or berthd can use it. Closing the server leaves
 * the snapshotter open.
 */
export function serveSnapshotter(snapshotter: Snapshotter, address: string, logger: Logger = nullLogger): Promise<SnapshotterServer> {
  return serveUnix([createSnapshotsGrpcService(new SingleSnapshotterApi(snapshotter), logger)], address);
}
