/**
 * The snapshot plugins (`@berth/snapshots/plugins`): the overlayfs and native snapshotters, the
 * snapshots service and its gRPC API. This entry loads @grpc/grpc-js; the library does not.
 */
import { context } from '@berth/context';
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin } from '@berth/grpc';
import { GcHooksToken, METADATA_PLUGIN_TYPE, MetadataDbToken, NamespaceStoreToken } from '@berth/metadata';
import { SkipPluginError, definePlugin, hostPlatform } from '@berth/plugin';
import { LocalSnapshotter } from './local';
import { MetadataSnapshotter, type BackendSnapshotter } from './metadata-snapshotter';
import { NativeSnapshotter } from './native';
import { snapshotsGcKind } from './gc-kind';
import { OverlaySnapshotter, overlaySupported } from './overlay';
import { SnapshotsService, SnapshotsServiceToken } from './service';
import { ProxySnapshotter } from './proxy-snapshotter';
import { createSnapshotsGrpcService } from './snapshots-grpc';
import { SNAPSHOTTER_PLUGIN_TYPE, Snapshotter } from './types';

export { createSnapshotsGrpcService, type SnapshotsApi } from './snapshots-grpc';
export { ProxySnapshotter } from './proxy-snapshotter';
export { SingleSnapshotterApi, serveSnapshotter, type SnapshotterServer } from './serve';

export interface LocalSnapshotterConfig {
  /** Where the snapshotter keeps its metastore and snapshots. Default "": the plugin's root. */
  root_path: string;
}

const localConfig = { defaults: (): LocalSnapshotterConfig => ({ root_path: '' }) };

/** `io.containerd.snapshotter.v1 overlayfs`. Skipped where the kernel has no overlayfs. */
export const overlayfsSnapshotterPlugin = definePlugin<LocalSnapshotterConfig, LocalSnapshotter>({
  type: SNAPSHOTTER_PLUGIN_TYPE,
  id: 'overlayfs',
  platforms: [hostPlatform()],
  config: localConfig,
  init: (ctx) => {
    if (!overlaySupported()) throw new SkipPluginError('overlayfs is not supported by this kernel');
    const root = ctx.config.root_path || ctx.root;
    ctx.exports.root = root;
    const sn = OverlaySnapshotter.open(root);
    ctx.onClose(() => sn.close());
    return sn;
  },
});

/** `io.containerd.snapshotter.v1 native` (containerd exports nothing for it). */
export const nativeSnapshotterPlugin = definePlugin<LocalSnapshotterConfig, LocalSnapshotter>({
  type: SNAPSHOTTER_PLUGIN_TYPE,
  id: 'native',
  platforms: [hostPlatform()],
  config: localConfig,
  init: (ctx) => {
    const sn = NativeSnapshotter.open(ctx.config.root_path || ctx.root);
    ctx.onClose(() => sn.close());
    return sn;
  },
});

/**
 * `io.containerd.snapshotter.v1 <name>` for containerd's `[proxy_plugins.<name>]` with
 * `type = "snapshot"`: the Snapshots gRPC server at `address` is the snapshotter `<name>`, as
 * containerd's proxy (requests name the snapshotter `<name>`; the address is exported).
 */
export function proxySnapshotterPlugin(name: string, address: string) {
  return definePlugin<undefined, ProxySnapshotter>({
    type: SNAPSHOTTER_PLUGIN_TYPE,
    id: name,
    init: (ctx) => {
      ctx.exports.address = address;
      const sn = new ProxySnapshotter(address, name);
      ctx.onClose(() => sn.close());
      return sn;
    },
  });
}

/**
 * `io.containerd.service.v1 snapshots-service`: every loaded snapshotter behind the namespaced
 * metadata layer, with events. Commits interrupted by a crash are settled before it serves.
 */
export const snapshotsServicePlugin = definePlugin<undefined, SnapshotsService>({
  type: 'io.containerd.service.v1',
  id: 'snapshots-service',
  requires: [EVENT_PLUGIN_TYPE, METADATA_PLUGIN_TYPE, SNAPSHOTTER_PLUGIN_TYPE],
  provides: [SnapshotsServiceToken],
  init: async (ctx) => {
    const db = ctx.get(MetadataDbToken);
    // The garbage collector learns the snapshot records of every snapshotter through one kind.
    ctx.onClose(ctx.get(GcHooksToken).registerKind(snapshotsGcKind));
    const layers = new Map<string, Snapshotter>();
    for (const [id, backend] of ctx.getAll<BackendSnapshotter>(SNAPSHOTTER_PLUGIN_TYPE)) {
      const layer = new MetadataSnapshotter(db, id, backend, ctx.logger);
      await layer.recover(context());
      layers.set(id, layer);
      ctx.onClose(() => layer.close());
      // The garbage collector removes backend snapshots no record references through this layer.
      ctx.onClose(
        ctx.get(GcHooksToken).registerBackend(`snapshotter/${id}`, async (c) => {
          const r = await layer.cleanup(c);
          return r.snapshots.length + r.directories.length;
        }),
      );
    }
    return new SnapshotsService(layers, ctx.get(PublisherToken), ctx.get(NamespaceStoreToken), ctx.logger);
  },
});

/** `io.containerd.grpc.v1 snapshots`: containerd.services.snapshots.v1.Snapshots. */
export const snapshotsGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'snapshots',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => ({ services: [createSnapshotsGrpcService(ctx.get(SnapshotsServiceToken), ctx.logger)] }),
});
