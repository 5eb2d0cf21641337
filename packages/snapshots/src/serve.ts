import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Context } from '@berth/context';
import { FailedPreconditionError } from '@berth/errdefs';
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
export interface SnapshotterServer {
  readonly address: string;
  /** Stops serving (in-flight calls finish), removes the socket; the snapshotter stays open. */
  close(): Promise<void>;
}

/**
 * Serves `snapshotter` over containerd's Snapshots API on a unix socket, so that containerd
 * (`[proxy_plugins.<name>] type = "snapshot"`) or berthd can use it. Refuses a socket another
 * process serves; replaces a stale one.
 */
export async function serveSnapshotter(snapshotter: Snapshotter, address: string, logger: Logger = nullLogger): Promise<SnapshotterServer> {
  mkdirSync(dirname(address), { recursive: true, mode: 0o711 });
  if (existsSync(address)) {
    const answers = await new Promise<boolean>((resolve) => {
      const c = new grpc.Client(`unix:${address}`, grpc.credentials.createInsecure());
      c.waitForReady(Date.now() + 200, (err) => {
        c.close();
        resolve(!err);
      });
    });
    if (answers) throw new FailedPreconditionError(`address ${address} is already served by another process`);
    rmSync(address, { force: true });
  }
  const server = new grpc.Server();
  const svc = createSnapshotsGrpcService(new SingleSnapshotterApi(snapshotter), logger);
  server.addService(svc.definition, svc.implementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  chmodSync(address, 0o660);
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 5_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          rmSync(address, { force: true });
          resolve();
        });
      }),
  };
}
