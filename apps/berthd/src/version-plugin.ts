import { version as api } from '@berth/api';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { definePlugin } from '@berth/plugin';
import { BERTH_REVISION, SERVER_VERSION } from './version';

/** `io.containerd.grpc.v1 version`: containerd.services.version.v1.Version (see {@link SERVER_VERSION}). */
export const versionGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'version',
  init: (ctx) => ({
    services: [createService(api.VersionService, { version: async () => ({ version: SERVER_VERSION, revision: BERTH_REVISION }) }, ctx.logger)],
  }),
});
