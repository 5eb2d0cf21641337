import { InvalidArgumentError } from '@berth/errdefs';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, type ImageInput, type OciDescriptor, prefixRef } from '@berth/images';
import type { ImageReferenceSpec, ImageStoreTarget } from './types';

/**
 * Marks the descriptors an import found at the top of an archive's index: their names come from
 * their annotations under the prefix references. Removed before the descriptor is stored.
 */
export const ANNOTATION_REF_SOURCE = 'io.containerd.import.ref-source';
/** Ties an image to another: the collector may remove it once that image is gone. */
export const LABEL_GC_BREF_IMAGE = 'containerd.io/gc.bref.image';
/** Makes an image collectible after this time (RFC 3339) unless something references it. */
export const LABEL_GC_EXPIRE = 'containerd.io/gc.expire';

/** Returns a descriptor annotated as found at the top of an archive's index. */
export function markImported(desc: OciDescriptor): OciDescriptor {
  return { ...desc, annotations: { ...(desc.annotations ?? {}), [ANNOTATION_REF_SOURCE]: 'annotation' } };
}

/** RFC 3339 to the second, as Go's `time.RFC3339` formats. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The name an annotation gives under one prefix reference, or ''. */
function annotatedName(annotations: Record<string, string>, ref: ImageReferenceSpec): string {
  const translate = (r: string) => prefixRef(r, ref.name, !ref.allowOverwrite);
  const full = annotations[ANNOTATION_IMAGE_NAME];
  // A containerd name is a full reference: used as is, or not at all.
  if (full) return translate(full) === full ? full : '';
  const refName = annotations[ANNOTATION_REF_NAME];
  return refName ? translate(refName) : '';
}

/**
 * The images an import stores for one descriptor, as containerd's transfer image store names
 * them (see containerd-transfer.md §3):
 * - a descriptor marked by {@link markImported} (a top-level manifest of the archive) gets, per
 *   prefix reference, the name its `io.containerd.image.name` or
 *   `org.opencontainers.image.ref.name` annotation gives under the prefix, and `<prefix>@<digest>`
 *   when the reference adds digests (unless a name was found and `skipNamedDigest` is set);
 * - any other descriptor (the archive's index) gets `name`, every non-prefix reference (with
 *   `@<digest>` when it adds digests) and `<prefix>@<digest>` for prefix references that add digests.
 * Every image gets `labels`; when `name` is set, those other than `name` itself also get
 * `containerd.io/gc.bref.image` = `name` and an immediate `containerd.io/gc.expire`, so they go
 * with the named image. Returns [] when no name applies (containerd's "no image name found").
 */
export function importedImages(desc: OciDescriptor, dst: Pick<ImageStoreTarget, 'name' | 'labels' | 'extraReferences'>, now: Date = new Date()): ImageInput[] {
  const annotations = { ...(desc.annotations ?? {}) };
  const source = annotations[ANNOTATION_REF_SOURCE];
  delete annotations[ANNOTATION_REF_SOURCE];
  const target = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, annotations };
  const extraLabels = (): Record<string, string> =>
    dst.name === '' ? { ...dst.labels } : { ...dst.labels, [LABEL_GC_BREF_IMAGE]: dst.name, [LABEL_GC_EXPIRE]: rfc3339(now) };
  const out: ImageInput[] = [];
  const extra = (name: string) => out.push({ name, labels: extraLabels(), target: { ...target, annotations: { ...annotations } } });

  if (source !== undefined) {
    if (source !== 'annotation') throw new InvalidArgumentError('ref source not supported');
    for (const ref of dst.extraReferences) {
      if (!ref.isPrefix) continue;
      const name = annotatedName(annotations, ref);
      if (name !== '') extra(name);
      if (ref.addDigest && (name === '' || !ref.skipNamedDigest)) extra(`${ref.name}@${desc.digest}`);
    }
  } else {
    if (dst.name !== '') out.push({ name: dst.name, labels: { ...dst.labels }, target: { ...target, annotations: { ...annotations } } });
    for (const ref of dst.extraReferences) {
      if (ref.isPrefix && !ref.addDigest) continue;
      extra(ref.addDigest ? `${ref.name}@${desc.digest}` : ref.name);
    }
  }
  return out;
}

/** The descriptor as an import reports it stored: without the import marker. */
export function storedDescriptor(desc: OciDescriptor): OciDescriptor {
  if (!desc.annotations || !(ANNOTATION_REF_SOURCE in desc.annotations)) return desc;
  const annotations = { ...desc.annotations };
  delete annotations[ANNOTATION_REF_SOURCE];
  return { ...desc, annotations };
}
