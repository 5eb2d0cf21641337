/**
 * The content plugins (`@berth/content/plugins`), a separate entry so that `@berth/content`
 * itself never loads grpc-js:
 *
 * - `io.containerd.content.v1 content`: the local store at `<root>/io.containerd.content.v1.content`;
 * - `io.containerd.service.v1 content-service`: the namespaced store over the metadata database,
 *   with the `/content/delete` event;
 * - `io.containerd.grpc.v1 content`: containerd.services.content.v1.Content.
 */
import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { GRPC_PLUGIN_TYPE, type GrpcServicePlugin } from '@berth/grpc';
import { GcHooksToken, METADATA_PLUGIN_TYPE, MetadataDbToken } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { createContentGrpcService } from './content-grpc';
import { ContentService, ContentServiceToken, ContentStoreToken } from './content-service';
import { contentGcKinds } from './gc-kinds';
import { LocalContentStore } from './local-store';
import { MetadataContentStore, type ContentSharingPolicy } from './metadata-store';
import { ProxyContentStore } from './proxy-store';
import type { ContentStore } from './types';

export { createContentGrpcService, type ContentApi } from './content-grpc';
export { ProxyContentStore } from './proxy-store';
export { SingleStoreContentApi, serveContentStore } from './serve';

export const CONTENT_PLUGIN_TYPE = 'io.containerd.content.v1';

/** `io.containerd.content.v1 content`: blobs and ingests on the local filesystem. */
export const contentPlugin = definePlugin<undefined, ContentStore>({
  type: CONTENT_PLUGIN_TYPE,
  id: 'content',
  provides: [ContentStoreToken],
  init: async (ctx) => {
    const store = await LocalContentStore.open(ctx.root);
    ctx.exports.root = ctx.root;
    return store;
  },
});

/**
 * `io.containerd.content.v1 <name>` for containerd's `[proxy_plugins.<name>]` with
 * `type = "content"`: the Content gRPC server at `address` is the content store (the address is
 * exported). As with containerd, disable `io.containerd.content.v1.content` so that the content
 * service and the differ use it: berthd takes the content plugin registered last.
 */
export function proxyContentPlugin(name: string, address: string) {
  return definePlugin<undefined, ContentStore>({
    type: CONTENT_PLUGIN_TYPE,
    id: name,
    provides: [ContentStoreToken],
    init: (ctx) => {
      ctx.exports.address = address;
      const store = new ProxyContentStore(address);
      ctx.onClose(() => store.close());
      return store;
    },
  });
}

/**
 * `io.containerd.service.v1 content-service`. The sharing policy is the metadata plugin's
 * `content_sharing_policy` (where containerd configures it), read from that plugin's exports.
 */
export const contentServicePlugin = definePlugin<undefined, ContentService>({
  type: 'io.containerd.service.v1',
  id: 'content-service',
  requires: [EVENT_PLUGIN_TYPE, METADATA_PLUGIN_TYPE, CONTENT_PLUGIN_TYPE],
  provides: [ContentServiceToken],
  init: (ctx) => {
    const metadata = ctx.plugins.reports.find((r) => r.type === METADATA_PLUGIN_TYPE && r.status === 'ok');
    const policy: ContentSharingPolicy = metadata?.exports.policy === 'isolated' ? 'isolated' : 'shared';
    const store = new MetadataContentStore(ctx.get(MetadataDbToken), ctx.get(ContentStoreToken), { policy });
    // The garbage collector learns this layer's records through its kinds, and removes
    // unreferenced blob files and ingests through it.
    const hooks = ctx.get(GcHooksToken);
    for (const kind of contentGcKinds) ctx.onClose(hooks.registerKind(kind));
    ctx.onClose(hooks.registerBackend('content', () => store.collectBackend()));
    return new ContentService(store, ctx.get(PublisherToken), ctx.logger);
  },
});

/** `io.containerd.grpc.v1 content`: containerd.services.content.v1.Content. */
export const contentGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'content',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => ({ services: [createContentGrpcService(ctx.get(ContentServiceToken), ctx.logger)] }),
});
