import type { Logger } from '@berth/log';
import type { Registration } from '@berth/plugin';
import { proxyContentPlugin } from '@berth/content/plugins';
import { proxySnapshotterPlugin } from '@berth/snapshots/plugins';
import type { ProxyPluginConfig } from './config';

/**
 * The plugins of containerd's `[proxy_plugins.<name>]` tables: `type = "snapshot"` (or
 * `io.containerd.snapshotter.v1`) makes the Snapshots server at `address` the snapshotter
 * `<name>`; `type = "content"` (or `io.containerd.content.v1`) makes the Content server there the
 * content store (with `io.containerd.content.v1.content` disabled, as containerd needs too).
 * Other types are logged and left out, as containerd warns of an unknown type.
 */
export function proxyPlugins(tables: Readonly<Record<string, ProxyPluginConfig>>, logger: Logger): Registration[] {
  const out: Registration[] = [];
  for (const [name, { type, address }] of Object.entries(tables)) {
    switch (type) {
      case 'snapshot':
      case 'io.containerd.snapshotter.v1':
        out.push(proxySnapshotterPlugin(name, address));
        break;
      case 'content':
      case 'io.containerd.content.v1':
        out.push(proxyContentPlugin(name, address));
        break;
      default:
        logger.warn('unknown proxy plugin type', { name, type });
    }
  }
  return out;
}
