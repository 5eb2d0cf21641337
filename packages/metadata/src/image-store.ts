import { Context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, UnknownError, wrap } from '@berth/errdefs';
import { Adaptor, adaptorFromTree, mapField, nonEmpty, parseListFilters, checkFilterFields } from '@berth/filters';
import { token } from '@berth/plugin';
import { MetadataDb } from './db';
import { checkDigest } from './digest';
import { ownValue, setOwn, validateLabels } from './labels';
import { DescriptorRecord, ImageRecord, objectKey, objectsPrefix } from './schema';
import { cleanMap, nextUpdatedAt } from './store-util';

/** An OCI descriptor: media type, digest, size and annotations. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

/** An image as stores and services see it. */
export interface Image {
  name: string;
  labels: Record<string, string>;
  target: Descriptor;
  createdAt: Date;
  updatedAt: Date;
}

/** What a caller gives to create or update an image; the store sets the times. */
export type ImageInput = Omit<Image, 'createdAt' | 'updatedAt'>;

/**
 * Images of a namespace, by name, in the metadata database. Names are free strings (containerd
 * does not validate them); the target must be a valid descriptor.
 */
export interface ImageStore {
  /** Returns an image; NotFound `image "<name>"`. */
  get(ctx: Context, name: string): Promise<Image>;
  /** Returns the images matching any of the filters (fields `name`, `target.digest`, `target.mediatype`, `labels.<k>`, `annotations.<k>`), by name. */
  list(ctx: Context, filters?: readonly string[]): Promise<Image[]>;
  /** Creates an image; AlreadyExists `image "<name>"`, InvalidArgument for a bad target or label. */
  create(ctx: Context, image: ImageInput): Promise<Image>;
  /**
   * Updates the fields named by `fieldpaths` (`labels`, `labels.<k>`, `target`, `annotations`,
   * `annotations.<k>`) from `image`; no paths replaces labels and target. An empty label or
   * annotation value deletes that key. NotFound when the image does not exist.
   */
  update(ctx: Context, image: ImageInput, fieldpaths?: readonly string[]): Promise<Image>;
  /** Deletes an image; NotFound `image "<name>"`. */
  delete(ctx: Context, name: string): Promise<void>;
}

export const ImageStoreToken = token<ImageStore>('io.containerd.metadata.v1/images');

/** The filter view of an image: containerd's image adaptor. */
export function imageAdaptor(image: Image): Adaptor {
  return adaptorFromTree({
    name: nonEmpty(image.name),
    target: { digest: nonEmpty(image.target.digest), mediatype: nonEmpty(image.target.mediaType) },
    labels: mapField(image.labels),
    annotations: mapField(image.target.annotations),
  });
}

/**
 * Checks an image as containerd's metadata store does before every write: labels, then the
 * target's digest, size and media type (in that order, with containerd's messages).
 */
export function validateImage(image: ImageInput): void {
  if (image.name === '') throw new InvalidArgumentError('image name must not be empty');
  try {
    validateLabels(image.labels);
  } catch (err) {
    throw wrap(err, 'image.Labels');
  }
  validateTarget(image.target);
}

/** Checks a descriptor: a valid digest, a positive size, a media type. */
export function validateTarget(target: Descriptor): void {
  try {
    checkDigest(target.digest);
  } catch (err) {
    throw new InvalidArgumentError(`Target.Digest ${JSON.stringify(target.digest)} invalid: ${(err as Error).message}`);
  }
  if (!(target.size > 0)) throw new InvalidArgumentError('Target.Size must be greater than zero');
  if (target.mediaType === '') throw new InvalidArgumentError('Target.MediaType must be set');
}

/** bolt refuses an empty label key with a non-empty value; containerd reports it as unknown. */
function checkLabelKeys(name: string, labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === '' && v !== '') throw new UnknownError(`writing labels for image ${name}: failed to set label ""=${JSON.stringify(v)}: key required`);
  }
}

const toRecordTarget = (d: Descriptor): DescriptorRecord => ({
  mediaType: d.mediaType,
  digest: d.digest,
  size: d.size,
  annotations: cleanMap(d.annotations),
});

function fromRecord(name: string, rec: ImageRecord): Image {
  return {
    name,
    labels: { ...rec.labels },
    target: { ...rec.target, annotations: { ...rec.target.annotations } },
    createdAt: new Date(rec.createdAt),
    updatedAt: new Date(rec.updatedAt),
  };
}

/** The image store over the metadata database. */
export class LmdbImageStore implements ImageStore {
  constructor(private readonly db: MetadataDb) {}

  async get(ctx: Context, name: string): Promise<Image> {
    const ns = namespaceRequired(ctx);
    const rec = this.db.view((tx) => tx.get<ImageRecord>(objectKey(ns, 'images', name)));
    if (!rec) throw new NotFoundError(`image ${JSON.stringify(name)}`);
    return fromRecord(name, rec);
  }

  async list(ctx: Context, filters: readonly string[] = []): Promise<Image[]> {
    const ns = namespaceRequired(ctx);
    const filter = checkFilterFields(parseListFilters(filters), ['name', 'target.digest', 'target.mediatype', 'labels.', 'annotations.']);
    return this.db.view((tx) => {
      const out: Image[] = [];
      for (const { key, value } of tx.range<ImageRecord>(objectsPrefix(ns, 'images'))) {
        if (key.length !== 5) continue;
        const image = fromRecord(String(key[4]), value);
        if (filter.match(imageAdaptor(image))) out.push(image);
      }
      return out;
    });
  }

  async create(ctx: Context, image: ImageInput): Promise<Image> {
    const ns = namespaceRequired(ctx);
    validateImage(image);
    checkLabelKeys(image.name, image.labels);
    return this.db.update((tx) => {
      const key = objectKey(ns, 'images', image.name);
      if (tx.has(key)) throw new AlreadyExistsError(`image ${JSON.stringify(image.name)}`);
      tx.ensureNamespace(ns);
      const now = Date.now();
      const rec: ImageRecord = { labels: cleanMap(image.labels), target: toRecordTarget(image.target), createdAt: now, updatedAt: now };
      tx.put(key, rec);
      return fromRecord(image.name, rec);
    });
  }

  async update(ctx: Context, image: ImageInput, fieldpaths: readonly string[] = []): Promise<Image> {
    const ns = namespaceRequired(ctx);
    if (image.name === '') throw new InvalidArgumentError('image name must not be empty');
    return this.db.update((tx) => {
      const key = objectKey(ns, 'images', image.name);
      const current = tx.get<ImageRecord>(key);
      if (!current) throw new NotFoundError(`image ${JSON.stringify(image.name)}`);
      let updated: ImageInput = fromRecord(image.name, current);
      if (fieldpaths.length === 0) {
        updated = { name: image.name, labels: { ...image.labels }, target: { ...image.target, annotations: { ...image.target.annotations } } };
      } else {
        for (const path of fieldpaths) {
          if (path.startsWith('labels.')) {
            const k = path.slice('labels.'.length);
            setOwn(updated.labels, k, ownValue(image.labels, k) ?? '');
          } else if (path.startsWith('annotations.')) {
            const k = path.slice('annotations.'.length);
            setOwn(updated.target.annotations, k, ownValue(image.target.annotations, k) ?? '');
          } else if (path === 'labels') {
            updated.labels = { ...image.labels };
          } else if (path === 'target') {
            // The target is replaced as a unit, as containerd does: digest, size and media type belong together.
            updated.target = { ...image.target, annotations: { ...image.target.annotations } };
          } else if (path === 'annotations') {
            updated.target.annotations = { ...image.target.annotations };
          } else {
            throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on image ${JSON.stringify(image.name)}`);
          }
        }
      }
      validateImage(updated);
      checkLabelKeys(image.name, updated.labels);
      tx.ensureNamespace(ns);
      const rec: ImageRecord = {
        labels: cleanMap(updated.labels),
        target: toRecordTarget(updated.target),
        createdAt: current.createdAt,
        updatedAt: nextUpdatedAt(current.updatedAt),
      };
      tx.put(key, rec);
      return fromRecord(image.name, rec);
    });
  }

  async delete(ctx: Context, name: string): Promise<void> {
    const ns = namespaceRequired(ctx);
    this.db.update((tx) => {
      if (!tx.remove(objectKey(ns, 'images', name))) throw new NotFoundError(`image ${JSON.stringify(name)}`);
      tx.markDeletion();
    });
  }
}
