/**
 * Entry point for the containerd 2.x Transfer and Streaming APIs (`@berth/api/transfer`): every
 * containerd.types.transfer message and enum, flat (`OCIRegistry`, `ImageStore`, `Progress`,
 * `Data`, `WindowUpdate`, `AuthType`...), and the two services as namespaces, `transfer`
 * (TransferService, TransferRequest) and `streaming` (StreamingService, StreamInit).
 *
 * Unlike `@berth/api/events` this loads @grpc/grpc-js (the service definitions do). The
 * messages that travel in an Any (every transfer type, StreamInit, and google.protobuf.Empty, the
 * stream ack) are registered with the typeurl helpers under their bare full names, e.g.
 * `containerd.types.transfer.OCIRegistry`, which is what containerd's transfer service matches.
 */
export * from './barrels/transfer-types';
/** containerd.services.transfer.v1. */
export * as transfer from './gen/containerd/services/transfer/v1/transfer';
/** containerd.services.streaming.v1. */
export * as streaming from './barrels/streaming';
