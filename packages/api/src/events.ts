/**
 * Entry point for event consumers and publishers (`@berth/api/events`): every event payload, the
 * Envelope, and the Any/typeurl and timestamp helpers, without loading @grpc/grpc-js.
 * events.test.ts fails if anything reachable from here loads it.
 */
export * from './gen/containerd/events/container';
export * from './gen/containerd/events/content';
export * from './gen/containerd/events/namespace';
export * from './gen/containerd/events/snapshot';
export * from './gen/containerd/events/task';
export * from './gen/containerd/services/images/v1/image_events';
export { Envelope } from './gen/containerd/services/events/v1/envelope';
/** The ttrpc Forward envelope; same wire shape as `Envelope`. */
export { Envelope as TtrpcEnvelope } from './gen/containerd/services/events/ttrpc/v1/envelope';
export { Any } from './gen/google/protobuf/any';
export { Mount } from './gen/containerd/types/mount';
export * from './message-type';
export * from './timestamp';
export * from './typeurl';
