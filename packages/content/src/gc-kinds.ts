import { GC_ROOT, type GcKind } from '@berth/metadata';
import type { BlobRecord, IngestRecord } from './metadata-store';

const GC_REF_CONTENT = 'containerd.io/gc.ref.content';

/**
 * Blobs, for the garbage collector: a root when labelled `containerd.io/gc.root`; named by the
 * label `containerd.io/gc.ref.content` exactly or followed by `.` or `/` and anything, and by
 * the lease resource `content`; referencing what its own gc.ref labels name.
 */
export const blobsGcKind: GcKind<BlobRecord> = {
  kind: 'blobs',
  root: (blob) => GC_ROOT in (blob.labels ?? {}),
  labels: (blob) => blob.labels,
  label: (key, digest) => {
    if (!key.startsWith(GC_REF_CONTENT)) return undefined;
    const next = key.charAt(GC_REF_CONTENT.length);
    return next === '' || next === '.' || next === '/' ? [digest] : undefined;
  },
  leased: (type, digest) => (type === 'content' ? [digest] : undefined),
};

/**
 * Ingests, for the garbage collector: a root until `expireAt`; named by the lease resource
 * `ingests`; keeping in full the blob it is expected to become, if the namespace already has it.
 */
export const ingestsGcKind: GcKind<IngestRecord> = {
  kind: 'ingests',
  root: (ingest, now) => ingest.expireAt !== undefined && ingest.expireAt > now,
  references: (ingest) => (ingest.expected ? [{ kind: 'blobs', id: [ingest.expected], full: true, edge: 'expected' }] : []),
  leased: (type, ref) => (type === 'ingests' ? [ref] : undefined),
};

/** The kinds the namespaced content store writes, to register on the metadata plugin's GcHooks. */
export const contentGcKinds: readonly GcKind[] = [blobsGcKind, ingestsGcKind];
