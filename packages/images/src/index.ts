/**
 * @berth/images: the images service and the image library, usable in-process without the daemon:
 * walking images (index, manifest, config; OCI and Docker schema 2), platform matching, chain
 * IDs, unpack into a snapshotter, import and export of OCI-layout and docker-archive tars, and
 * check. The plugins (the `images-service` plugin and the gRPC API) are in
 * `@berth/images/plugins`, so that importing this entry does not load a gRPC server stack.
 */
export * from './service';
export * from './media-types';
export * from './platforms';
export * from './chain-id';
export * from './walk';
export * from './unpack';
export * from './check';
export * from './archive';
export type { Descriptor, Image, ImageInput, ImageStore } from '@berth/metadata';
