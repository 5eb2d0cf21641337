import type { Context } from '@berth/context';
import { NotImplementedError } from '@berth/errdefs';
import type { LeaseManager } from '@berth/metadata';
import { configureHosts, type HostsLogger } from '@berth/remotes';
import { exportImages } from './export';
import { importImages } from './import';
import { pull } from './pull';
import { push } from './push';
import { credentialsFromStream } from './stream-adapters';
import { tagImage } from './tag';
import type { ProgressSink, RegistryAccess, RegistrySource, TransferObject, TransferServices } from './types';

/** A transfer object the local transferrer has no operation for (ReadStream, ContainerPath...). */
export interface OtherObject {
  kind: 'other';
  typeUrl: string;
}

/** Moves images between transfer objects (containerd's transfer.Transferrer). */
export interface Transferrer {
  /**
   * Runs one transfer. `urls` name the two objects' types for the NotImplemented answer to a
   * pair the transferrer has no operation for.
   */
  transfer(ctx: Context, src: TransferObject | OtherObject, dst: TransferObject | OtherObject, progress: ProgressSink, urls: [string, string]): Promise<void>;
}

/** What the local transferrer needs from the daemon. */
export interface LocalTransferrerOptions {
  /** The services a transfer uses, acting in the call's namespace. */
  services: TransferServices;
  leases: LeaseManager;
  /** Where hosts.toml problems are reported. */
  hostsLogger?: HostsLogger;
}

/** containerd's label that makes a lease expire: the collector deletes it after that time. */
const GC_EXPIRE = 'containerd.io/gc.expire';
const LEASE_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * containerd's local transferrer (`io.containerd.transfer.v1.local`): pull (registry to image
 * store), push (image store to registry), import (import stream to image store), export (image
 * store to export stream) and tag (image store to image store). Any other pair is
 * NotImplemented `method Transfer not implemented for <source> to <destination>`.
 */
export class LocalTransferrer implements Transferrer {
  constructor(private readonly options: LocalTransferrerOptions) {}

  async transfer(ctx: Context, src: TransferObject | OtherObject, dst: TransferObject | OtherObject, progress: ProgressSink, urls: [string, string]): Promise<void> {
    const services = this.options.services;
    if (src.kind === 'image-store' && dst.kind === 'image-store') return this.leased(ctx, (c) => tagImage(c, src, dst, services.images));
    if (src.kind === 'registry' && dst.kind === 'image-store') return this.leased(ctx, (c) => pull(c, src, dst, services, this.access(src, c), progress));
    if (src.kind === 'image-store' && dst.kind === 'registry') return push(ctx, src, dst, services, this.access(dst, ctx), progress);
    if (src.kind === 'import-stream' && dst.kind === 'image-store') return this.leased(ctx, (c) => importImages(c, src, dst, services, progress));
    if (src.kind === 'image-store' && dst.kind === 'export-stream') return this.leased(ctx, (c) => exportImages(c, src, dst, services, progress));
    throw new NotImplementedError(`method Transfer not implemented for ${urls[0]} to ${urls[1]}`, { bare: true });
  }

  /** The registry hosts and credentials of a registry object, for one call. */
  private access(r: RegistrySource, ctx: Context): RegistryAccess {
    return {
      hosts: configureHosts({ hostDir: r.hostDir, defaultScheme: r.defaultScheme, headers: r.headers, logger: this.options.hostsLogger }),
      credentials: r.credentials ?? (r.authStream && credentialsFromStream(r.authStream, r.reference, ctx.signal)),
    };
  }

  /**
   * Runs `fn` under the call's lease or, when the call has none, under a lease of its own that
   * expires in 24 hours and is deleted afterwards (what the operation made is referenced by
   * images by then, or collectible).
   */
  private async leased(ctx: Context, fn: (c: Context) => Promise<void>): Promise<void> {
    if (ctx.lease) return fn(ctx);
    const { leases } = this.options;
    const lease = await leases.create(ctx, '', { [GC_EXPIRE]: new Date(Date.now() + LEASE_TTL_MS).toISOString() });
    try {
      await fn({ ...ctx, lease: lease.id });
    } finally {
      await leases.delete(ctx, lease.id).catch(() => undefined);
    }
  }
}
