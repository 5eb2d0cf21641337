/**
 * @berth/images: the images service, usable in-process without the daemon. The plugins (the
 * `images-service` plugin and the gRPC API) are in `@berth/images/plugins`, so that importing
 * this entry does not load a gRPC server stack.
 */
export * from './service';
export type { Descriptor, Image, ImageInput, ImageStore } from '@berth/metadata';
