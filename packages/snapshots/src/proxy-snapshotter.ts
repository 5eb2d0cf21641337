import { snapshots as api } from '@berth/api';
import type { Context } from '@berth/context';
import { CallOptions, Client, createClient } from '@berth/grpc';
import type { Mount } from '@berth/mount';
import type { BackendSnapshotter } from './metadata-snapshotter';
import type { CleanupResult, Info, Kind, SnapshotOptions, Usage } from './types';

const KINDS: Record<number, Kind> = { [api.Kind.VIEW]: 'view', [api.Kind.ACTIVE]: 'active', [api.Kind.COMMITTED]: 'committed' };

/** The zero time Go peers send for an unset timestamp. */
const epoch = new Date(0);

function fromInfo(info: api.Info | undefined): Info {
  return {
    name: info?.name ?? '',
    parent: info?.parent ?? '',
    kind: KINDS[info?.kind ?? 0] ?? 'active',
    labels: { ...(info?.labels ?? {}) },
    created: info?.createdAt ?? epoch,
    updated: info?.updatedAt ?? epoch,
  };
}

function fromMounts(mounts: api.PrepareSnapshotResponse['mounts']): Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, ...(m.target ? { target: m.target } : {}), options: [...m.options] }));
}

/**
 * A snapshotter served by another process over containerd's Snapshots API (containerd's proxy
 * plugins): every request names the snapshotter `name` and carries the caller's namespace, as
 * containerd's proxy does. Errors come back as errdefs errors by their status code.
 */
export class ProxySnapshotter implements BackendSnapshotter {
  private readonly client: Client<typeof api.SnapshotsService>;

  /** Connects lazily: the server may start after this snapshotter is created. */
  constructor(
    readonly address: string,
    readonly name: string,
  ) {
    this.client = createClient(api.SnapshotsService, address.replace(/^unix:\/\//, ''));
  }

  private opts(ctx: Context): CallOptions {
    return { namespace: ctx.namespace, lease: ctx.lease, signal: ctx.signal };
  }

  async stat(ctx: Context, key: string): Promise<Info> {
    return fromInfo((await this.client.stat({ snapshotter: this.name, key }, this.opts(ctx))).info);
  }

  async update(ctx: Context, info: Pick<Info, 'name' | 'labels'>, fieldpaths: readonly string[] = []): Promise<Info> {
    const res = await this.client.update(
      { snapshotter: this.name, info: { name: info.name, parent: '', kind: api.Kind.UNKNOWN, labels: info.labels }, updateMask: [...fieldpaths] },
      this.opts(ctx),
    );
    return fromInfo(res.info);
  }

  async usage(ctx: Context, key: string): Promise<Usage> {
    const u = await this.client.usage({ snapshotter: this.name, key }, this.opts(ctx));
    return { size: Number(u.size), inodes: Number(u.inodes) };
  }

  async mounts(ctx: Context, key: string): Promise<Mount[]> {
    return fromMounts((await this.client.mounts({ snapshotter: this.name, key }, this.opts(ctx))).mounts);
  }

  async prepare(ctx: Context, key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    const res = await this.client.prepare({ snapshotter: this.name, key, parent, labels: opts.labels ?? {} }, this.opts(ctx));
    return fromMounts(res.mounts);
  }

  async view(ctx: Context, key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    const res = await this.client.view({ snapshotter: this.name, key, parent, labels: opts.labels ?? {} }, this.opts(ctx));
    return fromMounts(res.mounts);
  }

  async commit(ctx: Context, name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    await this.client.commit({ snapshotter: this.name, name, key, labels: opts.labels ?? {} }, this.opts(ctx));
  }

  async remove(ctx: Context, key: string): Promise<void> {
    await this.client.remove({ snapshotter: this.name, key }, this.opts(ctx));
  }

  async walk(ctx: Context, fn: (info: Info) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    for await (const batch of this.client.list({ snapshotter: this.name, filters: [...filters] }, this.opts(ctx))) {
      for (const info of batch.info) await fn(fromInfo(info));
    }
  }

  /** Asks the server to clean up; what it removed is not reported over the API. */
  async cleanup(ctx: Context): Promise<CleanupResult> {
    await this.client.cleanup({ snapshotter: this.name }, this.opts(ctx));
    return { snapshots: [], directories: [] };
  }

  /** Every key the server has, for the metadata layer's cleanup. */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const batch of this.client.list({ snapshotter: this.name, filters: [] })) for (const info of batch.info) out.push(info.name);
    return out;
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
