// containerd.types.transfer: the objects a Transfer moves between (OCIRegistry, ImageStore,
// ImageImportStream, ImageExportStream...), and the frames of its streams (Progress, Data,
// WindowUpdate, AuthRequest/AuthResponse). No gRPC runtime is loaded from here.
export * from '../gen/containerd/types/transfer/container';
export * from '../gen/containerd/types/transfer/imagestore';
export * from '../gen/containerd/types/transfer/importexport';
export * from '../gen/containerd/types/transfer/progress';
export * from '../gen/containerd/types/transfer/registry';
export * from '../gen/containerd/types/transfer/streaming';
