// containerd.services.events.v1: the Events service (Publish, Forward, Subscribe) and Envelope.
export * from '../gen/containerd/services/events/v1/events';
export * from '../gen/containerd/services/events/v1/envelope';
