import { NamespaceCreate, NamespaceDelete, NamespaceUpdate } from '@berth/api/events';
import { Context, withNamespace } from '@berth/context';
import { InvalidArgumentError } from '@berth/errdefs';
import type { Publisher } from '@berth/events';
import type { Logger } from '@berth/log';
import { NamespaceStore } from '@berth/metadata';
import { token } from '@berth/plugin';

/** A namespace as the API shows it. */
export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/**
 * The in-process namespaces service: the store, the API's update rules, and the events
 * (/namespaces/create, update, delete), published after each change commits.
 */
export class NamespacesService {
  constructor(
    private readonly store: NamespaceStore,
    private readonly publisher: Publisher,
    private readonly logger: Logger,
  ) {}

  /**
   * Publishes an event after a committed change. The envelope carries the caller's namespace
   * (containerd's choice), or the namespace acted on when the caller named none; a failure to
   * publish is logged, never turned into a failure of the change that already happened.
   */
  private async publish<T>(ctx: Context, target: string, topic: string, type: Parameters<Publisher['publish']>[2], event: T): Promise<void> {
    try {
      await this.publisher.publish(ctx.namespace ? ctx : withNamespace(ctx, target), topic, type, event as never);
    } catch (err) {
      this.logger.warn('failed to publish event', { topic, error: (err as Error).message });
    }
  }

  /** Returns a namespace; an unknown one has no labels (containerd does not fail here). */
  async get(name: string): Promise<Namespace> {
    return { name, labels: await this.store.labels(name) };
  }

  /** Returns every namespace with its labels, by name. */
  async list(): Promise<Namespace[]> {
    return this.store.listWithLabels();
  }

  async create(ctx: Context, ns: Namespace): Promise<Namespace> {
    await this.store.create(ns.name, ns.labels);
    const created = await this.get(ns.name);
    await this.publish(ctx, ns.name, '/namespaces/create', NamespaceCreate, { name: created.name, labels: created.labels });
    return created;
  }

  /**
   * Updates labels: each `labels.<key>` path sets (or, with an empty value, deletes) that label;
   * `labels` or no paths replaces the whole label set. Any other path is InvalidArgument.
   */
  async update(ctx: Context, ns: Namespace, paths: readonly string[]): Promise<void> {
    // `labels` replaces the whole set (containerd 1.6 refuses that path; Berth accepts it as the
    // other objects' masks do); `labels.<k>` sets or, empty, removes one label.
    for (const path of paths) {
      if (path !== 'labels' && (!path.startsWith('labels.') || path.length === 'labels.'.length)) {
        throw new InvalidArgumentError(`cannot update "${path}" field`);
      }
    }
    if (paths.length === 0 || paths.includes('labels')) {
      await this.store.replaceLabels(ns.name, ns.labels);
    } else {
      for (const path of paths) {
        const key = path.slice('labels.'.length);
        await this.store.setLabel(ns.name, key, ns.labels[key] ?? '');
      }
    }
    // containerd's event carries the labels of the request, not the resulting set.
    await this.publish(ctx, ns.name, '/namespaces/update', NamespaceUpdate, { name: ns.name, labels: ns.labels });
  }

  async delete(ctx: Context, name: string): Promise<void> {
    await this.store.delete(name);
    // containerd publishes the delete in the deleted namespace itself.
    await this.publish(withNamespace(ctx, name), name, '/namespaces/delete', NamespaceDelete, { name });
  }
}

export const NamespacesServiceToken = token<NamespacesService>('io.containerd.service.v1/namespaces');
