/**
 * The snapshot plugins (`@berth/snapshots/plugins`): the overlayfs and native snapshotters, the
 * snapshots service and its gRPC API. This entry loads @grpc/grpc-js; the library does not.
 */
import { snapshots as api } from '@berth/api';
import { context } from '@berth/context';
import { UnknownError } from '@berth/errdefs';
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { FilterParseError } from '@berth/filters';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { GcHooksToken, METADATA_PLUGIN_TYPE, MetadataDbToken, NamespaceStoreToken } from '@berth/metadata';
import { SkipPluginError, definePlugin, hostPlatform } from '@berth/plugin';
import { LocalSnapshotter } from './local';
import { MetadataSnapshotter } from './metadata-snapshotter';
import { NativeSnapshotter } from './native';
import { OverlaySnapshotter, overlaySupported } from './overlay';
import { SnapshotsService, SnapshotsServiceToken } from './service';
import { Info, Kind, Mount, SNAPSHOTTER_PLUGIN_TYPE, Snapshotter } from './types';

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
    const layers = new Map<string, Snapshotter>();
    for (const [id, backend] of ctx.getAll<LocalSnapshotter>(SNAPSHOTTER_PLUGIN_TYPE)) {
      const layer = new MetadataSnapshotter(db, id, backend, ctx.logger);
      await layer.recover(context());
      layers.set(id, layer);
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

const KINDS: Record<Kind, api.Kind> = { view: api.Kind.VIEW, active: api.Kind.ACTIVE, committed: api.Kind.COMMITTED };

function toInfo(info: Info): api.Info {
  return { name: info.name, parent: info.parent, kind: KINDS[info.kind], labels: info.labels, createdAt: info.created, updatedAt: info.updated };
}

function toMounts(mounts: Mount[]): Array<{ type: string; source: string; target: string; options: string[] }> {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] }));
}

/** How many Infos one List message carries, as containerd. */
const LIST_BATCH = 100;

/** `io.containerd.grpc.v1 snapshots`: containerd.services.snapshots.v1.Snapshots. */
export const snapshotsGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'snapshots',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(SnapshotsServiceToken);
    const service = createService(
      api.SnapshotsService,
      {
        prepare: async (req, call) => ({ mounts: toMounts(await svc.prepare(call, req.snapshotter, req.key, req.parent, { labels: req.labels })) }),
        view: async (req, call) => ({ mounts: toMounts(await svc.view(call, req.snapshotter, req.key, req.parent, { labels: req.labels })) }),
        mounts: async (req, call) => ({ mounts: toMounts(await svc.mounts(call, req.snapshotter, req.key)) }),
        commit: async (req, call) => {
          await svc.commit(call, req.snapshotter, req.name, req.key, { labels: req.labels });
          return {};
        },
        remove: async (req, call) => {
          await svc.remove(call, req.snapshotter, req.key);
          return {};
        },
        stat: async (req, call) => ({ info: toInfo(await svc.stat(call, req.snapshotter, req.key)) }),
        update: async (req, call) => {
          const info = await svc.update(call, req.snapshotter, { name: req.info?.name ?? '', labels: { ...(req.info?.labels ?? {}) } }, req.updateMask ?? []);
          return { info: toInfo(info) };
        },
        list: async function* (req, call) {
          let infos: Info[];
          try {
            infos = await svc.list(call, req.snapshotter, req.filters);
          } catch (err) {
            // containerd sends a filter parse error on this stream without mapping it: Unknown.
            if (err instanceof FilterParseError) throw new UnknownError(err.message, { cause: err });
            throw err;
          }
          for (let i = 0; i < infos.length; i += LIST_BATCH) yield { info: infos.slice(i, i + LIST_BATCH).map(toInfo) };
        },
        usage: async (req, call) => {
          const u = await svc.usage(call, req.snapshotter, req.key);
          return { size: u.size, inodes: u.inodes };
        },
        cleanup: async (req, call) => {
          await svc.cleanup(call, req.snapshotter);
          return {};
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
