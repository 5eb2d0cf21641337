// containerd.services.streaming.v1: the Streaming service and StreamInit, the first frame of a stream.
export * from '../gen/containerd/services/streaming/v1/streaming';
export * from '../gen/containerd/services/streaming/v1/stream_init';
