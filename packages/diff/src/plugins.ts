/**
 * The diff plugins (`@berth/diff/plugins`), a separate entry so that `@berth/diff` never loads
 * grpc-js:
 *
 * - `io.containerd.differ.v1 walking`: the walking differ over the namespaced content store;
 * - `io.containerd.service.v1 diff-service`: the differs in the configured order;
 * - `io.containerd.grpc.v1 diff`: containerd.services.diff.v1.Diff (Apply, Diff).
 */
import { join } from 'node:path';
import { diff as api, types } from '@berth/api';
import { type Context, context } from '@berth/context';
import { ContentStoreToken, LocalContentStore, MetadataContentStore, parseDigest, type ContentSharingPolicy } from '@berth/content';
import { InvalidArgumentError, NotImplementedError, isCanceled, isDeadlineExceeded, isNotFound, isNotImplemented } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { LeaseManagerToken, METADATA_PLUGIN_TYPE, MetadataDbToken } from '@berth/metadata';
import type { Mount } from '@berth/mount';
import { definePlugin, hostPlatform, token } from '@berth/plugin';
import { CompareOptions, Differ, DifferApplyOptions, LayerDescriptor, WalkingDiffer } from './differ';
import { LayerPrefetcher } from './prefetch';

export const DIFFER_PLUGIN_TYPE = 'io.containerd.differ.v1';

/** Every differ plugin's instance (`getAll` of the differ type returns them by id). */
export const DifferToken = token<Differ>(`${DIFFER_PLUGIN_TYPE}/differ`);

/**
 * `io.containerd.differ.v1 walking`. containerd's requires only the metadata type and takes the
 * content store from the metadata database object; here the namespaced content store is built
 * from the database and the content plugin's local store, so the content type is declared too
 * (it loads before metadata either way, so the load order is containerd's).
 */
/** `[plugins."io.containerd.differ.v1.walking"]`: Berth's own setting (containerd has none). */
export interface WalkingDifferConfig {
  /**
   * Extract layer blobs in the background as they are committed, for the unpack that follows.
   * Applies run on the differ's worker thread either way.
   */
  prefetch_layers: boolean;
}

export const walkingDifferPlugin = definePlugin<WalkingDifferConfig, Differ>({
  type: DIFFER_PLUGIN_TYPE,
  id: 'walking',
  requires: [METADATA_PLUGIN_TYPE, 'io.containerd.content.v1'],
  platforms: [hostPlatform()],
  provides: [DifferToken],
  config: {
    defaults: () => ({ prefetch_layers: true }),
    parse: (section, defaults) => {
      const v = section.prefetch_layers ?? defaults.prefetch_layers;
      if (typeof v !== 'boolean') throw new InvalidArgumentError('prefetch_layers must be a boolean');
      return { prefetch_layers: v };
    },
  },
  init: async (ctx) => {
    const metadata = ctx.plugins.reports.find((r) => r.type === METADATA_PLUGIN_TYPE && r.status === 'ok');
    const policy: ContentSharingPolicy = metadata?.exports.policy === 'isolated' ? 'isolated' : 'shared';
    const backend = ctx.get(ContentStoreToken);
    const store = new MetadataContentStore(ctx.get(MetadataDbToken), backend, { policy });
    // A store that is not on this machine's disk (a proxy plugin's) has no files for the worker
    // thread to read: its layers are applied from streams, without prefetching.
    if (!(backend instanceof LocalContentStore)) return new WalkingDiffer((c) => store.bind(c));
    // The worker thread that applies layers off the event loop; with prefetch_layers it also
    // extracts committed layer blobs ahead of their unpack. Under the plugin's root, which sits
    // beside the snapshotters' on the same file system.
    const local = backend;
    const prefetcher = await LayerPrefetcher.open(join(ctx.root, 'prefetch'), (digest) => local.blobPath(parseDigest(digest)), {
      log: (msg, fields) => ctx.logger.debug(msg, fields),
    });
    const unsubscribe = [local.onWriting(() => prefetcher.warm())];
    if (ctx.config.prefetch_layers) unsubscribe.push(local.onCommitted((digest) => prefetcher.offer(digest)));
    ctx.onClose(async () => {
      unsubscribe.forEach((u) => u());
      await prefetcher.close();
    });
    return new WalkingDiffer((c) => store.bind(c), prefetcher);
  },
});

/** Options of {@link DiffService}. */
export interface DiffServiceOptions {
  /**
   * Called when an apply failed because its caller went away (the client cancelled or closed
   * the connection, or the call's deadline passed), with the call's namespace and lease. The
   * unpack's Active snapshot is held by that lease only, and nobody is left to commit it or
   * release the lease (ctr's leases last 24 hours), so the plugin deletes the lease and the
   * collector removes the snapshot.
   */
  onAbandoned?: (namespace: string, lease: string) => Promise<void>;
}

/** The in-process diff service: tries the configured differs in order, as containerd's. */
export class DiffService implements Differ {
  constructor(private readonly differs: readonly Differ[], private readonly options: DiffServiceOptions = {}) {}

  async apply(ctx: Context, desc: LayerDescriptor, mounts: readonly Mount[], options?: DifferApplyOptions): Promise<LayerDescriptor> {
    try {
      return await this.first((d) => d.apply(ctx, desc, mounts, options));
    } catch (err) {
      const reason: unknown = ctx.signal.aborted ? ctx.signal.reason : undefined;
      if (ctx.namespace && ctx.lease && this.options.onAbandoned && (isCanceled(reason) || isDeadlineExceeded(reason))) {
        await this.options.onAbandoned(ctx.namespace, ctx.lease);
      }
      throw err;
    }
  }

  async compare(ctx: Context, lower: readonly Mount[], upper: readonly Mount[], options?: CompareOptions): Promise<LayerDescriptor> {
    return this.first((d) => d.compare(ctx, lower, upper, options));
  }

  warm(): void {
    for (const d of this.differs) d.warm?.();
  }

  prefetch(digest: string): void {
    for (const d of this.differs) d.prefetch?.(digest);
  }

  /** The first differ's answer that is not NotImplemented. */
  private async first(fn: (d: Differ) => Promise<LayerDescriptor>): Promise<LayerDescriptor> {
    let last: unknown = new NotImplementedError('no differ available');
    for (const d of this.differs) {
      try {
        return await fn(d);
      } catch (err) {
        if (!isNotImplemented(err)) throw err;
        last = err;
      }
    }
    throw last;
  }
}

export const DiffServiceToken = token<DiffService>('io.containerd.service.v1/diff-service');

export interface DiffServiceConfig {
  /** Differ ids to try, in order. Default ["walking"]. */
  default: string[];
}

/** `io.containerd.service.v1 diff-service`. */
export const diffServicePlugin = definePlugin<DiffServiceConfig, DiffService>({
  type: 'io.containerd.service.v1',
  id: 'diff-service',
  requires: [DIFFER_PLUGIN_TYPE, METADATA_PLUGIN_TYPE],
  config: {
    defaults: () => ({ default: ['walking'] }),
    parse: (section, defaults) => {
      const d = section.default ?? defaults.default;
      if (!Array.isArray(d) || d.some((x) => typeof x !== 'string')) throw new InvalidArgumentError('default must be a list of differ ids');
      return { default: d as string[] };
    },
  },
  provides: [DiffServiceToken],
  init: (ctx) => {
    const all = ctx.getAll<Differ>(DIFFER_PLUGIN_TYPE);
    const differs = ctx.config.default.map((id) => {
      const d = all.get(id);
      if (!d) throw new Error(`could not load required differ due plugin init error: ${id}`);
      return d;
    });
    const leases = ctx.get(LeaseManagerToken);
    return new DiffService(differs, {
      onAbandoned: async (namespace, lease) => {
        try {
          await leases.delete(context({ namespace }), lease);
          ctx.logger.info('lease of an abandoned apply removed', { namespace, lease });
        } catch (err) {
          if (!isNotFound(err)) ctx.logger.warn('removing the lease of an abandoned apply', { namespace, lease, error: String(err) });
        }
      },
    });
  },
});

function fromApiMounts(mounts: readonly types.Mount[]): Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] }));
}

function toApiDescriptor(d: LayerDescriptor): types.Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: { ...(d.annotations ?? {}) } };
}

/** `io.containerd.grpc.v1 diff`: containerd.services.diff.v1.Diff. */
export const diffGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'diff',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(DiffServiceToken);
    const service = createService(
      api.DiffService,
      {
        apply: async (req, call) => {
          const d = req.diff;
          const desc: LayerDescriptor = { mediaType: d?.mediaType ?? '', digest: d?.digest ?? '', size: d?.size ?? 0, annotations: { ...(d?.annotations ?? {}) } };
          return { applied: toApiDescriptor(await svc.apply(call, desc, fromApiMounts(req.mounts))) };
        },
        diff: async (req, call) => {
          const out = await svc.compare(call, fromApiMounts(req.left), fromApiMounts(req.right), {
            mediaType: req.mediaType,
            ref: req.ref,
            labels: { ...req.labels },
          });
          return { diff: toApiDescriptor(out) };
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
