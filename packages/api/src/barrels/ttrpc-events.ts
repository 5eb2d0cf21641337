// containerd.services.events.ttrpc.v1: the Forward service shims call over ttrpc, and its Envelope.
export * from '../gen/containerd/services/events/ttrpc/v1/events';
export * from '../gen/containerd/services/events/ttrpc/v1/envelope';
