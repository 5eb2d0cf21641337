// containerd.events: the payloads carried in Envelope.event. No gRPC runtime is loaded from here.
export * from '../gen/containerd/events/container';
export * from '../gen/containerd/events/content';
export * from '../gen/containerd/events/namespace';
export * from '../gen/containerd/events/snapshot';
export * from '../gen/containerd/events/task';
