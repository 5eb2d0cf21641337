import { Context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, wrap } from '@berth/errdefs';
import { Adaptor, adaptorFromTree, mapField, nonEmpty, parseListFilters, checkFilterFields } from '@berth/filters';
import { validate } from '@berth/identifiers';
import { token } from '@berth/plugin';
import { MetadataDb } from './db';
import { ownValue, setOwn, validateLabels } from './labels';
import { AnyRecord, ContainerRecord, objectKey, objectsPrefix } from './schema';
import { cleanMap, nextUpdatedAt } from './store-util';

/** A protobuf Any, kept verbatim: the runtime spec's is JSON typed `types.containerd.io/opencontainers/runtime-spec/1/Spec`. */
export interface AnyValue {
  typeUrl: string;
  value: Buffer;
}

/** A container as stores and services see it: what a task needs, and no runtime state. */
export interface Container {
  id: string;
  labels: Record<string, string>;
  /** The image name it was made from; free text, not a reference the store checks. */
  image: string;
  runtime: { name: string; options?: AnyValue };
  /** Absent only on input; a stored container always has one. */
  spec?: AnyValue;
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, AnyValue>;
  createdAt: Date;
  updatedAt: Date;
}

/** What a caller gives to create or update a container; the store sets the times. */
export type ContainerInput = Omit<Container, 'createdAt' | 'updatedAt'>;

/** Containers of a namespace, by id, in the metadata database. */
export interface ContainerStore {
  /** Returns a container; NotFound `container "<id>" in namespace "<ns>"`. */
  get(ctx: Context, id: string): Promise<Container>;
  /** Returns the containers matching any of the filters (fields `id`, `image`, `runtime.name`, `labels.<k>`), by id. */
  list(ctx: Context, filters?: readonly string[]): Promise<Container[]>;
  /** Creates a container; InvalidArgument `create container failed validation: ...`, AlreadyExists `container "<id>"`. */
  create(ctx: Context, container: ContainerInput): Promise<Container>;
  /**
   * Updates the fields named by `fieldpaths` (`labels`, `labels.<k>`, `spec`, `extensions`,
   * `extensions.<k>`, `image`, `snapshotkey`) from `container`. No paths replaces those five
   * fields and refuses a different snapshotter or runtime name (immutable). NotFound
   * `container "<id>"`.
   */
  update(ctx: Context, container: ContainerInput, fieldpaths?: readonly string[]): Promise<Container>;
  /** Deletes a container (not its snapshot); NotFound `container <id>`. */
  delete(ctx: Context, id: string): Promise<void>;
}

export const ContainerStoreToken = token<ContainerStore>('io.containerd.metadata.v1/containers');

/** The filter view of a container: containerd's container adaptor. */
export function containerAdaptor(c: Container): Adaptor {
  return adaptorFromTree({
    id: nonEmpty(c.id),
    image: nonEmpty(c.image),
    runtime: { name: nonEmpty(c.runtime.name) },
    labels: mapField(c.labels),
  });
}

/** The type URL of an OCI runtime spec in an Any (its value is JSON). */
const RUNTIME_SPEC_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';

/** Checks a container as containerd does before every write, in containerd's order and words. */
export function validateContainer(c: ContainerInput): void {
  try {
    validate(c.id);
  } catch (err) {
    throw wrap(err, 'container.ID');
  }
  for (const k of Object.keys(c.extensions)) {
    if (k === '') throw new InvalidArgumentError('container.Extension keys must not be zero-length');
  }
  try {
    validateLabels(c.labels);
  } catch (err) {
    throw wrap(err, 'containers.Labels');
  }
  if (c.runtime.name === '') throw new InvalidArgumentError('container.Runtime.Name must be set');
  if (!c.spec) throw new InvalidArgumentError('container.Spec must be set');
  // containerd stores any Any here; Berth checks that an OCI runtime spec is JSON of a spec
  // (an object), so a broken spec fails at create instead of at task start.
  if (c.spec.typeUrl === RUNTIME_SPEC_URL) {
    let spec: unknown;
    try {
      spec = JSON.parse(Buffer.from(c.spec.value).toString('utf8'));
    } catch (err) {
      throw new InvalidArgumentError(`container.Spec is not valid JSON: ${(err as Error).message}`);
    }
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new InvalidArgumentError('container.Spec must be a JSON object (an OCI runtime spec)');
  }
  if (c.snapshotKey !== '' && c.snapshotter === '') {
    throw new InvalidArgumentError('container.Snapshotter must be set if container.SnapshotKey is set');
  }
}

const EMPTY_ANY = (): AnyValue => ({ typeUrl: '', value: Buffer.alloc(0) });
const anyOut = (a: AnyRecord): AnyValue => ({ typeUrl: a.typeUrl, value: Buffer.from(a.value) });
const anyIn = (a: AnyValue): AnyRecord => ({ typeUrl: a.typeUrl, value: Buffer.from(a.value) });
const mapValues = <A, B>(m: Record<string, A>, f: (a: A) => B): Record<string, B> =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, f(v)]));

function fromRecord(id: string, rec: ContainerRecord): Container {
  return {
    id,
    labels: { ...rec.labels },
    image: rec.image,
    runtime: rec.runtime.options ? { name: rec.runtime.name, options: anyOut(rec.runtime.options) } : { name: rec.runtime.name },
    spec: rec.spec ? anyOut(rec.spec) : undefined,
    snapshotter: rec.snapshotter,
    snapshotKey: rec.snapshotKey,
    extensions: mapValues(rec.extensions, anyOut),
    createdAt: new Date(rec.createdAt),
    updatedAt: new Date(rec.updatedAt),
  };
}

function toRecord(c: ContainerInput, createdAt: number, updatedAt: number): ContainerRecord {
  return {
    labels: cleanMap(c.labels),
    image: c.image,
    runtime: c.runtime.options ? { name: c.runtime.name, options: anyIn(c.runtime.options) } : { name: c.runtime.name },
    spec: c.spec ? anyIn(c.spec) : undefined,
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    extensions: mapValues(c.extensions, anyIn),
    createdAt,
    updatedAt,
  };
}

const prefixed = (message: string) => (err: unknown) => {
  throw wrap(err, message);
};

/** The container store over the metadata database. */
export class LmdbContainerStore implements ContainerStore {
  constructor(private readonly db: MetadataDb) {}

  async get(ctx: Context, id: string): Promise<Container> {
    const ns = namespaceRequired(ctx);
    const rec = this.db.view((tx) => tx.get<ContainerRecord>(objectKey(ns, 'containers', id)));
    if (!rec) throw new NotFoundError(`container ${JSON.stringify(id)} in namespace ${JSON.stringify(ns)}`);
    return fromRecord(id, rec);
  }

  async list(ctx: Context, filters: readonly string[] = []): Promise<Container[]> {
    const ns = namespaceRequired(ctx);
    const filter = checkFilterFields(parseListFilters(filters), ['id', 'image', 'runtime.name', 'labels.']);
    return this.db.view((tx) => {
      const out: Container[] = [];
      for (const { key, value } of tx.range<ContainerRecord>(objectsPrefix(ns, 'containers'))) {
        if (key.length !== 5) continue;
        const c = fromRecord(String(key[4]), value);
        if (filter.match(containerAdaptor(c))) out.push(c);
      }
      return out;
    });
  }

  async create(ctx: Context, container: ContainerInput): Promise<Container> {
    const ns = namespaceRequired(ctx);
    try {
      validateContainer(container);
    } catch (err) {
      prefixed('create container failed validation')(err);
    }
    return this.db.update((tx) => {
      const key = objectKey(ns, 'containers', container.id);
      if (tx.has(key)) throw new AlreadyExistsError(`container ${JSON.stringify(container.id)}`);
      tx.ensureNamespace(ns);
      const now = Date.now();
      const rec = toRecord(container, now, now);
      tx.put(key, rec);
      return fromRecord(container.id, rec);
    });
  }

  async update(ctx: Context, container: ContainerInput, fieldpaths: readonly string[] = []): Promise<Container> {
    const ns = namespaceRequired(ctx);
    if (container.id === '') throw new InvalidArgumentError('must specify a container id');
    return this.db.update((tx) => {
      const key = objectKey(ns, 'containers', container.id);
      const current = tx.get<ContainerRecord>(key);
      if (!current) throw new NotFoundError(`container ${JSON.stringify(container.id)}`);
      const updated: ContainerInput = fromRecord(container.id, current);
      let paths = fieldpaths;
      if (paths.length === 0) {
        // Immutable fields must differ loudly on a full replace, so that they can become
        // mutable later without changing what a full replace means.
        if (container.snapshotter !== updated.snapshotter) throw new InvalidArgumentError('container.Snapshotter field is immutable');
        if (container.runtime.name !== updated.runtime.name) throw new InvalidArgumentError('container.Runtime.Name field is immutable');
        paths = ['labels', 'spec', 'extensions', 'image', 'snapshotkey'];
      }
      for (const path of paths) {
        if (path.startsWith('labels.')) {
          const k = path.slice('labels.'.length);
          setOwn(updated.labels, k, ownValue(container.labels, k) ?? '');
        } else if (path.startsWith('extensions.')) {
          // containerd stores the zero Any when the request lacks the key.
          const k = path.slice('extensions.'.length);
          setOwn(updated.extensions, k, ownValue(container.extensions, k) ?? EMPTY_ANY());
        } else if (path === 'labels') {
          updated.labels = { ...container.labels };
        } else if (path === 'spec') {
          updated.spec = container.spec;
        } else if (path === 'extensions') {
          updated.extensions = { ...container.extensions };
        } else if (path === 'image') {
          updated.image = container.image;
        } else if (path === 'snapshotkey') {
          updated.snapshotKey = container.snapshotKey;
        } else {
          throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on ${JSON.stringify(container.id)}`);
        }
      }
      try {
        validateContainer(updated);
      } catch (err) {
        prefixed('update failed validation')(err);
      }
      const rec = toRecord(updated, current.createdAt, nextUpdatedAt(current.updatedAt));
      // containerd 1.6 writes extensions over the stored ones without removing any, so a
      // replaced extension set still shows the old keys on the next read (the reply shows the
      // new set only). Kept for wire compatibility.
      tx.put(key, { ...rec, extensions: { ...current.extensions, ...rec.extensions } });
      tx.ensureNamespace(ns);
      return fromRecord(container.id, rec);
    });
  }

  async delete(ctx: Context, id: string): Promise<void> {
    const ns = namespaceRequired(ctx);
    this.db.update((tx) => {
      if (!tx.remove(objectKey(ns, 'containers', id))) throw new NotFoundError(`container ${id}`);
      tx.markDeletion();
    });
  }
}
