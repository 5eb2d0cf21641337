import { snapshots as api } from '@berth/api';
import { UnknownError } from '@berth/errdefs';
import { FilterParseError } from '@berth/filters';
import { GrpcService, createService } from '@berth/grpc';
import type { Logger } from '@berth/log';
import type { SnapshotsService } from './service';
import type { Info, Kind, Mount } from './types';

/**
 * What the Snapshots API adapter serves: the daemon's {@link SnapshotsService} (snapshotters by
 * name, namespaced, with events), or one snapshotter whatever the name (`SingleSnapshotterApi`,
 * what containerd's proxy plugins talk to).
 */
export type SnapshotsApi = Pick<SnapshotsService, 'prepare' | 'view' | 'mounts' | 'commit' | 'remove' | 'stat' | 'update' | 'list' | 'usage' | 'cleanup'>;

const KINDS: Record<Kind, api.Kind> = { view: api.Kind.VIEW, active: api.Kind.ACTIVE, committed: api.Kind.COMMITTED };

function toInfo(info: Info): api.Info {
  return { name: info.name, parent: info.parent, kind: KINDS[info.kind], labels: info.labels, createdAt: info.created, updatedAt: info.updated };
}

function toMounts(mounts: Mount[]): Array<{ type: string; source: string; target: string; options: string[] }> {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] }));
}

/** How many Infos one List message carries, as containerd. */
const LIST_BATCH = 100;

/** containerd.services.snapshots.v1.Snapshots over a {@link SnapshotsApi}: translation only. */
export function createSnapshotsGrpcService(svc: SnapshotsApi, logger: Logger): GrpcService {
  return createService(
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
    logger,
  );
}
