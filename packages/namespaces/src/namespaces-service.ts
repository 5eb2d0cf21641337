import { InvalidArgumentError } from '@berth/errdefs';
import { NamespaceStore } from '@berth/metadata';
import { token } from '@berth/plugin';

/** A namespace as the API shows it. */
export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/** The in-process namespaces service: the store plus the API's update rules. */
export class NamespacesService {
  constructor(private readonly store: NamespaceStore) {}

  /** Returns a namespace; an unknown one has no labels (containerd does not fail here). */
  async get(name: string): Promise<Namespace> {
    return { name, labels: await this.store.labels(name) };
  }

  /** Returns every namespace with its labels, by name. */
  async list(): Promise<Namespace[]> {
    const names = await this.store.list();
    return Promise.all(names.map((name) => this.get(name)));
  }

  async create(ns: Namespace): Promise<Namespace> {
    await this.store.create(ns.name, ns.labels);
    return this.get(ns.name);
  }

  /**
   * Updates labels: each `labels.<key>` path sets (or, with an empty value, deletes) that label;
   * no paths replaces the whole label set. Any other path is InvalidArgument.
   */
  async update(ns: Namespace, paths: readonly string[]): Promise<void> {
    if (paths.length === 0) {
      await this.store.replaceLabels(ns.name, ns.labels);
      return;
    }
    const keys = paths.map((path) => {
      if (!path.startsWith('labels.') || path.length === 'labels.'.length) throw new InvalidArgumentError(`cannot update "${path}" field`);
      return path.slice('labels.'.length);
    });
    for (const key of keys) await this.store.setLabel(ns.name, key, ns.labels[key] ?? '');
  }

  async delete(name: string): Promise<void> {
    await this.store.delete(name);
  }
}

export const NamespacesServiceToken = token<NamespacesService>('io.containerd.service.v1/namespaces');
