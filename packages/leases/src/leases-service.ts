import { Context } from '@berth/context';
import { Lease, LeaseManager, LeaseResource } from '@berth/metadata';
import { token } from '@berth/plugin';

export interface LeasesServiceOptions {
  /**
   * Runs a garbage collection and resolves when it is done: what `delete(..., {sync: true})`
   * waits for. Until Berth has a collector it is absent and a sync delete returns right after
   * the delete commits.
   */
  collectGarbage?: (ctx: Context) => Promise<void>;
}

/**
 * The in-process leases service over the lease manager. Leases publish no events (containerd
 * publishes none either).
 */
export class LeasesService {
  constructor(
    private readonly manager: LeaseManager,
    private readonly options: LeasesServiceOptions = {},
  ) {}

  /** Creates a lease; an empty id gets a generated `<nanoseconds>-<4 base64url chars>` one. */
  create(ctx: Context, id: string, labels: Record<string, string> = {}): Promise<Lease> {
    return this.manager.create(ctx, id, labels);
  }

  /** Deletes a lease; with `sync`, waits for a garbage collection when a collector is configured. */
  async delete(ctx: Context, id: string, options: { sync?: boolean } = {}): Promise<void> {
    await this.manager.delete(ctx, id);
    if (options.sync && this.options.collectGarbage) await this.options.collectGarbage(ctx);
  }

  list(ctx: Context, filters: readonly string[] = []): Promise<Lease[]> {
    return this.manager.list(ctx, filters);
  }

  addResource(ctx: Context, id: string, resource: LeaseResource): Promise<void> {
    return this.manager.addResource(ctx, id, resource);
  }

  deleteResource(ctx: Context, id: string, resource: LeaseResource): Promise<void> {
    return this.manager.deleteResource(ctx, id, resource);
  }

  listResources(ctx: Context, id: string): Promise<LeaseResource[]> {
    return this.manager.listResources(ctx, id);
  }
}

export const LeasesServiceToken = token<LeasesService>('io.containerd.service.v1/leases');
