import { SnapshotCommit, SnapshotPrepare, SnapshotRemove } from '@berth/api/events';
import { Context, namespaceRequired } from '@berth/context';
import { InvalidArgumentError } from '@berth/errdefs';
import type { Publisher } from '@berth/events';
import { Logger, nullLogger } from '@berth/log';
import type { NamespaceStore } from '@berth/metadata';
import type { Mount } from '@berth/mount';
import { token } from '@berth/plugin';
import { CleanupResult, DEFAULT_SNAPSHOTTER, DEFAULT_SNAPSHOTTER_LABEL, Info, SnapshotOptions, Snapshotter, Usage } from './types';

/**
 * The in-process snapshots service: picks the namespaced snapshotter a request names, and
 * publishes /snapshot/prepare, /snapshot/commit and /snapshot/remove after each change
 * (View, Update and Usage publish nothing, as containerd).
 */
export class SnapshotsService {
  constructor(
    private readonly snapshotters: ReadonlyMap<string, Snapshotter>,
    private readonly publisher: Publisher,
    private readonly namespaces?: NamespaceStore,
    private readonly logger: Logger = nullLogger,
  ) {}

  /** The names of the loaded snapshotters. */
  names(): string[] {
    return [...this.snapshotters.keys()];
  }

  /**
   * Returns a snapshotter by name. An empty name is InvalidArgument, as on containerd's gRPC API
   * (clients resolve the default themselves; in-process callers use `resolve`).
   */
  snapshotter(name: string): Snapshotter {
    if (name === '') throw new InvalidArgumentError('snapshotter argument missing');
    const sn = this.snapshotters.get(name);
    if (!sn) throw new InvalidArgumentError(`snapshotter not loaded: ${name}`);
    return sn;
  }

  /**
   * Returns the snapshotter name to use for a request that may name none: the given name, else
   * the namespace's `containerd.io/defaults/snapshotter` label, else overlayfs (ctr's choice).
   */
  async resolve(ctx: Context, name?: string): Promise<string> {
    if (name) return name;
    const ns = namespaceRequired(ctx);
    const labels = this.namespaces ? await this.namespaces.labels(ns) : {};
    return labels[DEFAULT_SNAPSHOTTER_LABEL] || DEFAULT_SNAPSHOTTER;
  }

  private async publish<T>(ctx: Context, topic: string, type: Parameters<Publisher['publish']>[2], event: T): Promise<void> {
    try {
      await this.publisher.publish(ctx, topic, type, event as never);
    } catch (err) {
      this.logger.warn('failed to publish event', { topic, error: (err as Error).message });
    }
  }

  async prepare(ctx: Context, snapshotter: string, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    const mounts = await this.snapshotter(snapshotter).prepare(ctx, key, parent, opts);
    await this.publish(ctx, '/snapshot/prepare', SnapshotPrepare, { key, parent });
    return mounts;
  }

  async view(ctx: Context, snapshotter: string, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return await this.snapshotter(snapshotter).view(ctx, key, parent, opts);
  }

  async mounts(ctx: Context, snapshotter: string, key: string): Promise<Mount[]> {
    return await this.snapshotter(snapshotter).mounts(ctx, key);
  }

  async commit(ctx: Context, snapshotter: string, name: string, key: string, opts?: SnapshotOptions): Promise<void> {
    await this.snapshotter(snapshotter).commit(ctx, name, key, opts);
    await this.publish(ctx, '/snapshot/commit', SnapshotCommit, { key, name });
  }

  async remove(ctx: Context, snapshotter: string, key: string): Promise<void> {
    await this.snapshotter(snapshotter).remove(ctx, key);
    await this.publish(ctx, '/snapshot/remove', SnapshotRemove, { key });
  }

  async stat(ctx: Context, snapshotter: string, key: string): Promise<Info> {
    return await this.snapshotter(snapshotter).stat(ctx, key);
  }

  async update(ctx: Context, snapshotter: string, info: Pick<Info, 'name' | 'labels'>, fieldpaths?: readonly string[]): Promise<Info> {
    return await this.snapshotter(snapshotter).update(ctx, info, fieldpaths);
  }

  async usage(ctx: Context, snapshotter: string, key: string): Promise<Usage> {
    return await this.snapshotter(snapshotter).usage(ctx, key);
  }

  /** Returns the matching snapshots in key order. */
  async list(ctx: Context, snapshotter: string, filters: readonly string[] = []): Promise<Info[]> {
    const out: Info[] = [];
    await this.snapshotter(snapshotter).walk(ctx, (info) => void out.push(info), filters);
    return out;
  }

  async cleanup(ctx: Context, snapshotter: string): Promise<CleanupResult> {
    return await this.snapshotter(snapshotter).cleanup(ctx);
  }
}

export const SnapshotsServiceToken = token<SnapshotsService>('io.containerd.service.v1/snapshots');
