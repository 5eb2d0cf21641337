// containerd.services.images.v1: the Images service and the image event payloads of that package.
export * from '../gen/containerd/services/images/v1/images';
export * from '../gen/containerd/services/images/v1/image_events';
