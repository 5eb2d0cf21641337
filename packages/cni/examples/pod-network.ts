import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniNetworkPlugin, createNetns, removeNetns } from '@berth/cni';

/**
 * Puts one pod on a bridge network with Debian's plugins, as a CRI runtime does for a sandbox:
 * the network is not ready until a configuration file appears, then a new network namespace gets
 * loopback and eth0 (an address from host-local), and teardown gives everything back. Needs root.
 */
export async function runPod(dir: string, bridge: string, subnet: string): Promise<{ before: string; after: string; ip: string; gateway?: string }> {
  const confDir = join(dir, 'net.d');
  const cni = new CniNetworkPlugin({ binDir: '/usr/lib/cni', confDir, cacheDir: join(dir, 'cache') });
  const before = cni.status().message;

  mkdirSync(confDir, { recursive: true });
  writeFileSync(
    join(confDir, '10-pods.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'pods',
      plugins: [
        { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(dir, 'ipam') } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  const after = cni.status().reason || 'ready';

  const netns = await createNetns({ root: join(dir, 'netns') });
  try {
    const result = await cni.setup('sandbox-1', netns, { pod: { namespace: 'default', name: 'web', uid: '7f0c' } });
    return { before, after, ip: result.ip, gateway: result.interfaces.eth0.ipConfigs[0].gateway };
  } finally {
    await cni.teardown('sandbox-1', netns);
    await removeNetns(netns);
  }
}
