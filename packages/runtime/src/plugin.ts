import { EVENT_PLUGIN_TYPE, PublisherToken } from '@berth/events';
import { ContainerStoreToken, METADATA_PLUGIN_TYPE } from '@berth/metadata';
import { Registration, definePlugin, hostPlatform } from '@berth/plugin';
import { ShimTaskManager } from './task-manager';
import { RUNTIME_V2_PLUGIN_TYPE, TaskManager, TaskManagerToken } from './types';

/** The runtime v2 plugin's TOML section, as containerd's. */
export interface RuntimeV2Config {
  platforms: string[];
  sched_core: boolean;
}

export interface RuntimeV2PluginOptions {
  /**
   * The program shims run as `<binary> --address A publish --topic T --namespace N` to publish
   * an event when ttrpc is not available: the daemon's own executable, as containerd passes
   * its own path. Default: this process's script (`process.argv[1]`).
   */
  publishBinary?: string;
}

/**
 * Creates `io.containerd.runtime.v2 task`: the shim task manager. Bundles live in this plugin's
 * state dir, work dirs in its root dir; on init it reconnects to the shims still running.
 */
export function createRuntimeV2Plugin(options: RuntimeV2PluginOptions = {}): Registration<RuntimeV2Config, TaskManager> {
  const platform = hostPlatform();
  return definePlugin<RuntimeV2Config, TaskManager>({
    type: RUNTIME_V2_PLUGIN_TYPE,
    id: 'task',
    requires: [EVENT_PLUGIN_TYPE, METADATA_PLUGIN_TYPE],
    platforms: [platform],
    provides: [TaskManagerToken],
    config: { defaults: () => ({ platforms: [`${platform.os}/${platform.architecture}`], sched_core: false }) },
    init: async (ctx) => {
      const manager = new ShimTaskManager({
        state: ctx.state,
        root: ctx.root,
        address: ctx.address,
        ttrpcAddress: ctx.ttrpcAddress,
        publishBinary: options.publishBinary ?? process.argv[1] ?? process.execPath,
        publisher: ctx.get(PublisherToken),
        containers: ctx.get(ContainerStoreToken),
        logger: ctx.logger,
      });
      await manager.load();
      ctx.onClose(() => manager.close());
      return manager;
    },
  });
}
