import type { GcKind } from './gc-hooks';
import type { ContainerRecord, ImageRecord } from './schema';

/** Images: every one is a root; it keeps its target blob and what its gc.ref labels name. */
export const imagesGcKind: GcKind<ImageRecord> = {
  kind: 'images',
  root: true,
  labels: (image) => image.labels,
  references: (image) => (image.target?.digest ? [{ kind: 'blobs', id: [image.target.digest], edge: 'target' }] : []),
};

/**
 * Containers: every one is a root; it keeps its snapshot (when both snapshotter and key are set)
 * and what its gc.ref labels name. Its image is no edge, as in containerd.
 */
export const containersGcKind: GcKind<ContainerRecord> = {
  kind: 'containers',
  root: true,
  labels: (container) => container.labels,
  references: (container) =>
    container.snapshotter && container.snapshotKey ? [{ kind: 'snapshots', id: [container.snapshotter, container.snapshotKey], edge: 'snapshot' }] : [],
};
