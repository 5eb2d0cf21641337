/**
 * What a registry answers with and what the fetcher and pusher take: an OCI content descriptor,
 * reduced to the fields the distribution API uses. Any OCI descriptor object fits.
 */
export interface Descriptor {
  mediaType: string;
  /** `<algorithm>:<hex>`, e.g. `sha256:…`. */
  digest: string;
  /** Size in bytes. */
  size: number;
  annotations?: Record<string, string>;
  urls?: string[];
}

/** Manifest media types the distribution API serves from `manifests/` (the rest are blobs). */
export const ManifestMediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  /** Docker image manifest schema 1, refused by the resolver. */
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  /** Signed Docker schema 1, refused by the resolver. */
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** The Accept list sent when resolving: index and manifest types first, then anything (`*\/*`). */
export const MANIFEST_ACCEPT = [
  ManifestMediaType.dockerManifest,
  ManifestMediaType.dockerManifestList,
  ManifestMediaType.ociManifest,
  ManifestMediaType.ociIndex,
  '*/*',
].join(', ');

/** Reports whether a media type is fetched and pushed through `manifests/` rather than `blobs/`. */
export function isManifestMediaType(mediaType: string): boolean {
  return (
    mediaType === ManifestMediaType.ociIndex ||
    mediaType === ManifestMediaType.ociManifest ||
    mediaType === ManifestMediaType.dockerManifestList ||
    mediaType === ManifestMediaType.dockerManifest ||
    isSchema1MediaType(mediaType)
  );
}

/** Reports whether a media type is Docker's schema 1 manifest, which Berth does not pull. */
export function isSchema1MediaType(mediaType: string): boolean {
  return mediaType === ManifestMediaType.dockerSchema1 || mediaType === ManifestMediaType.dockerSchema1Signed;
}
