import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '@berth/errdefs';
import { validate } from '@berth/identifiers';
import { token } from '@berth/plugin';
import { MetadataDb } from './db';
import { validateLabel, validateLabels } from './labels';
import { NamespaceRecord, namespaceKey, namespaceObjectsPrefix, namespacesPrefix, objectsPrefix } from './schema';

/** Namespaces and their labels. Namespaces isolate metadata; blobs are still stored once. */
export interface NamespaceStore {
  /** Creates a namespace; AlreadyExists if it exists. */
  create(name: string, labels?: Record<string, string>): Promise<void>;
  /** Returns a namespace's labels; an unknown namespace has none (containerd answers Get so). */
  labels(name: string): Promise<Record<string, string>>;
  /** Sets one label, deleting it when `value` is empty; creates the namespace if needed. */
  setLabel(name: string, key: string, value: string): Promise<void>;
  /** Replaces all labels at once. */
  replaceLabels(name: string, labels: Record<string, string>): Promise<void>;
  /** Returns all namespace names, sorted. */
  list(): Promise<string[]>;
  /** Returns every namespace with its labels, sorted by name, from one read. */
  listWithLabels(): Promise<Array<{ name: string; labels: Record<string, string> }>>;
  /**
   * Deletes an empty namespace with its leases; NotFound if absent, FailedPrecondition naming
   * the images, blobs, containers or snapshots it still holds.
   */
  delete(name: string): Promise<void>;
}

export const NamespaceStoreToken = token<NamespaceStore>('io.containerd.metadata.v1/namespaces');

/** The namespace store over the metadata database. */
export class LmdbNamespaceStore implements NamespaceStore {
  constructor(private readonly db: MetadataDb) {}

  async create(name: string, labels: Record<string, string> = {}): Promise<void> {
    validate(name);
    validateLabels(labels);
    this.db.update((tx) => {
      if (tx.has(namespaceKey(name))) throw new AlreadyExistsError(`namespace "${name}"`);
      tx.put(namespaceKey(name), { labels: { ...labels }, createdAt: Date.now() } satisfies NamespaceRecord);
    });
  }

  async labels(name: string): Promise<Record<string, string>> {
    return { ...(this.db.view((tx) => tx.get<NamespaceRecord>(namespaceKey(name)))?.labels ?? {}) };
  }

  async setLabel(name: string, key: string, value: string): Promise<void> {
    validate(name);
    validateLabel(key, value);
    this.db.update((tx) => {
      tx.ensureNamespace(name);
      const rec = tx.get<NamespaceRecord>(namespaceKey(name))!;
      const labels = { ...rec.labels };
      if (value === '') delete labels[key];
      else labels[key] = value;
      tx.put(namespaceKey(name), { ...rec, labels });
    });
  }

  async replaceLabels(name: string, labels: Record<string, string>): Promise<void> {
    validate(name);
    validateLabels(labels);
    const clean = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ''));
    this.db.update((tx) => {
      tx.ensureNamespace(name);
      const rec = tx.get<NamespaceRecord>(namespaceKey(name))!;
      tx.put(namespaceKey(name), { ...rec, labels: clean });
    });
  }

  async list(): Promise<string[]> {
    return this.db.view((tx) => [...tx.range(namespacesPrefix())].map(({ key }) => String(key[2])));
  }

  async listWithLabels(): Promise<Array<{ name: string; labels: Record<string, string> }>> {
    return this.db.view((tx) =>
      [...tx.range<NamespaceRecord>(namespacesPrefix())].map(({ key, value }) => ({ name: String(key[2]), labels: { ...(value?.labels ?? {}) } })),
    );
  }

  async delete(name: string): Promise<void> {
    this.db.update((tx) => {
      if (!tx.has(namespaceKey(name))) throw new NotFoundError(`namespace "${name}"`);
      const held: string[] = [];
      for (const kind of ['images', 'blobs', 'containers'] as const) {
        if (tx.hasUnder(objectsPrefix(name, kind))) held.push(kind);
      }
      const snapshotters = new Set<string>();
      for (const { key } of tx.range(objectsPrefix(name, 'snapshots'))) snapshotters.add(String(key[4]));
      for (const s of [...snapshotters].sort()) held.push(`snapshots on "${s}" snapshotter`);
      // Leases (and their 'leased' records) do not count: containerd 1.6 deletes them with the
      // namespace, as it does ingests.
      if (held.length > 0) {
        throw new FailedPreconditionError(`namespace "${name}" must be empty, but it still has ${held.join(', ')}`);
      }
      for (const { key } of [...tx.range(namespaceObjectsPrefix(name))]) tx.remove(key);
      tx.remove(namespaceKey(name));
    });
  }
}
