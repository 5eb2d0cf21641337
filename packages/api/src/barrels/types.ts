// containerd.types: the shared Mount, Descriptor, Platform and Metric messages.
export * from '../gen/containerd/types/descriptor';
export * from '../gen/containerd/types/metrics';
export * from '../gen/containerd/types/mount';
export * from '../gen/containerd/types/platform';
