import { definePlugin, token } from '@berth/plugin';
import { InvalidArgumentError } from '@berth/errdefs';
import { MetadataDb } from './db';
import { GcHooks, GcHooksToken } from './gc-hooks';
import { ContainerStoreToken, LmdbContainerStore } from './container-store';
import { ImageStoreToken, LmdbImageStore } from './image-store';
import { LeaseManagerToken, LmdbLeaseManager } from './lease-manager';
import { LmdbNamespaceStore, NamespaceStoreToken } from './namespace-store';

export const METADATA_PLUGIN_TYPE = 'io.containerd.metadata.v1';

/** The metadata database, for plugins that keep their records in it. */
export const MetadataDbToken = token<MetadataDb>(`${METADATA_PLUGIN_TYPE}/db`);

export interface MetadataConfig {
  /**
   * "shared" (default): a blob committed in one namespace can be linked into another without
   * sending its data again. "isolated": every namespace must send the data itself.
   */
  content_sharing_policy: 'shared' | 'isolated';
}

/**
 * The metadata plugin. Its id stays containerd's "bolt" so that containerd configs and
 * `ctr plugins ls` read the same; the database itself is lmdb (exported as `engine`).
 */
export const metadataPlugin = definePlugin<MetadataConfig, MetadataDb>({
  type: METADATA_PLUGIN_TYPE,
  id: 'bolt',
  requires: ['io.containerd.content.v1', 'io.containerd.snapshotter.v1'],
  config: {
    defaults: () => ({ content_sharing_policy: 'shared' }),
    parse: (section, defaults) => {
      const policy = section.content_sharing_policy ?? defaults.content_sharing_policy;
      if (policy !== 'shared' && policy !== 'isolated') {
        throw new InvalidArgumentError(`content_sharing_policy must be "shared" or "isolated", not ${JSON.stringify(policy)}`);
      }
      return { content_sharing_policy: policy };
    },
  },
  provides: [MetadataDbToken],
  init: (ctx) => {
    // Updates commit without a sync on this thread; berthd's gRPC replies await the group sync.
    const db = MetadataDb.open(ctx.root, { durability: 'group' });
    ctx.exports.path = db.path;
    ctx.exports.policy = ctx.config.content_sharing_policy;
    ctx.exports.engine = 'lmdb';
    ctx.provide(NamespaceStoreToken, new LmdbNamespaceStore(db));
    ctx.provide(ImageStoreToken, new LmdbImageStore(db));
    ctx.provide(ContainerStoreToken, new LmdbContainerStore(db));
    ctx.provide(LeaseManagerToken, new LmdbLeaseManager(db));
    ctx.provide(GcHooksToken, new GcHooks());
    ctx.onClose(() => db.close());
    return db;
  },
});
