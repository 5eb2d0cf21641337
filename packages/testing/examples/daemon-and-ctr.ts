import { TestDaemon } from '@berth/testing';

/**
 * What an integration test of Berth does: starts a real berthd (built, from apps/berthd/dist) on
 * a temp root, state and socket, never the system's, runs containerd's own `ctr` against it, and
 * stops it and removes its directory whatever happened. Returns what ctr printed.
 */
export async function ctrAgainstBerthd(): Promise<{ namespaces: string; plugins: string }> {
  const daemon = await TestDaemon.start({ logLevel: 'info' });
  try {
    await daemon.ctr(['namespaces', 'create', 'tests', 'suite=readme']);
    const namespaces = (await daemon.ctr(['namespaces', 'ls'])).stdout;
    const plugins = (await daemon.ctr(['plugins', 'ls', 'type==io.containerd.gc.v1'])).stdout;
    return { namespaces, plugins };
  } finally {
    await daemon.cleanup();
  }
}
