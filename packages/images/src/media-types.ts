/** OCI and Docker schema 2 media types, and the labels and annotations images use. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNonDistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  containerdCheckpointConfig: 'application/vnd.containerd.container.checkpoint.config.v1+proto',
} as const;

/** The annotation containerd writes (and reads first) for an image's full name. */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
/** The OCI annotation for a reference name (a tag, in `ctr export` and OCI layouts). */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** The content label holding a compressed layer's diff ID. */
export const LABEL_UNCOMPRESSED = 'containerd.io/uncompressed';
/** Prefix of the content labels that keep children alive in the garbage collector. */
export const LABEL_GC_REF_CONTENT = 'containerd.io/gc.ref.content';
/** Prefix of the content labels naming the repositories a blob came from: `<prefix>.<registry host>` = `repo[,repo...]`. */
export const LABEL_DISTRIBUTION_SOURCE = 'containerd.io/distribution.source';

/**
 * The distribution-source label key for a registry: `containerd.io/distribution.source.<host>`,
 * with the host name alone, as containerd writes it (`127.0.0.1:5000` and `[::1]:5000` give
 * `127.0.0.1` and `::1`).
 */
export function distributionSourceKey(registry: string): string {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d*$/, '');
  return `${LABEL_DISTRIBUTION_SOURCE}.${host}`;
}
/** Prefix of the content label that keeps an image's unpacked snapshot chain alive, per snapshotter. */
export const LABEL_GC_REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot';

export function isIndexType(mt: string): boolean {
  return mt === MediaType.ociIndex || mt === MediaType.dockerManifestList;
}

export function isManifestType(mt: string): boolean {
  return mt === MediaType.ociManifest || mt === MediaType.dockerManifest;
}

export function isConfigType(mt: string): boolean {
  return mt === MediaType.ociConfig || mt === MediaType.dockerConfig || mt === MediaType.containerdCheckpointConfig;
}

/** Reports whether a layer may not be redistributed (OCI non-distributable, Docker foreign layers). */
export function isNonDistributable(mt: string): boolean {
  return mt.startsWith('application/vnd.oci.image.layer.nondistributable.') || mt.startsWith('application/vnd.docker.image.rootfs.foreign.');
}

/** Reports whether a media type is a layer (OCI or Docker, any compression, foreign ones too). */
export function isLayerType(mt: string): boolean {
  if (mt.startsWith('application/vnd.oci.image.layer.')) return true;
  return mt.startsWith('application/vnd.docker.image.rootfs.');
}
