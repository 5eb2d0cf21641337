/**
 * @berth/oci-spec: OCI runtime specs as containerd's client builds them, as plain functions over
 * plain objects (no daemon, no gRPC): `defaultSpec`, `applyImageConfig`, `applySpecOptions`,
 * `applyUser`, and `resolveUser` over a snapshot's files.
 */
export * from './spec';
export * from './user';
