import { RuntimeInfo, parseCriConfig } from '@berth/cri';

/**
 * Reports what CRI's Status says of the network for a CNI config directory, as berthd's CRI
 * plugin answers `crictl info`: ready once a network config loads from the directory, and
 * containerd's reason and message until then.
 */
export async function networkReady(confDir: string): Promise<{ ready: boolean; reason: string; message: string }> {
  const config = parseCriConfig({ cni: { conf_dir: confDir, bin_dir: '/usr/lib/cni' } });
  const info = new RuntimeInfo({
    config,
    runtimeVersion: '2.0.0',
    paths: { rootDir: '/var/lib/berth/io.containerd.grpc.v1.cri', stateDir: '/run/berth/io.containerd.grpc.v1.cri', containerdRootDir: '/var/lib/berth', containerdEndpoint: '/run/berth/berthd.sock' },
  });
  const status = await info.status(false);
  const network = status.conditions.find((c) => c.type === 'NetworkReady')!;
  return { ready: network.status, reason: network.reason, message: network.message };
}
