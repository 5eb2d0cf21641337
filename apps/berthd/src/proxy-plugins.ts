import type { Logger } from '@berth/log';
import type { Registration } from '@berth/plugin';
import { proxySnapshotterPlugin } from '@berth/snapshots/plugins';
import type { ProxyPluginConfig } from './config';

/**
 * The plugins of containerd's `[proxy_plugins.<name>]` tables: `type = "snapshot"` (or
 * `io.containerd.snapshotter.v1`) makes the Snapshots server at `address` the snapshotter
 * `<name>`. Other types are logged and left out, as containerd warns of an unknown type.
 */
export function proxyPlugins(tables: Readonly<Record<string, ProxyPluginConfig>>, logger: Logger): Registration[] {
  const out: Registration[] = [];
  for (const [name, { type, address }] of Object.entries(tables)) {
    switch (type) {
      case 'snapshot':
      case 'io.containerd.snapshotter.v1':
        out.push(proxySnapshotterPlugin(name, address));
        break;
      default:
        logger.warn('unknown proxy plugin type', { name, type });
    }
  }
  return out;
}
