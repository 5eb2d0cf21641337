/**
 * @berth/snapshots: the Snapshotter interface, the overlayfs and native snapshotters (each with
 * its own lmdb metastore), the namespaced metadata layer and the in-process snapshots service.
 * This entry never loads a gRPC stack; the plugin definitions are in `@berth/snapshots/plugins`
 * and the conformance suite in `@berth/snapshots/testsuite`.
 */
export * from './types';
export { diskUsage, copyDir } from './fs-util';
export { inheritedLabels, applyLabelUpdate } from './labels';
export { storedKey, MAX_RAW_KEY_BYTES } from './keys';
export { MetaStore, type SnapshotRecord } from './metastore';
export { LocalSnapshotter, snapshotAdaptor } from './local';
export { OverlaySnapshotter, overlaySupported, type OverlaySnapshotterOptions } from './overlay';
export { NativeSnapshotter } from './native';
export { MetadataSnapshotter, type SnapshotMetaRecord, type BackendSnapshotter } from './metadata-snapshotter';
export { SnapshotsService, SnapshotsServiceToken } from './service';
export { snapshotsGcKind } from './gc-kind';
