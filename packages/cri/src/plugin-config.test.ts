/**
 * A CRI config that containerd would refuse fails the plugin, not the daemon: berthd boots, ctr
 * lists the plugin as errored, and the CRI methods are not served. containerd 1.6 does the same
 * ("failed to load plugin io.containerd.grpc.v1.cri").
 */
import { TestDaemon, runCrictl } from '@berth/testing';

jest.setTimeout(120_000);

// containerd 1.6 lists the plugin with the host platform, loaded or not.
describe('the CRI plugin with a bad config', () => {
  let daemon: TestDaemon;
  afterEach(async () => {
    await daemon?.cleanup();
  });

  it('is reported as failed with the reason, and berthd serves the rest', async () => {
    daemon = await TestDaemon.start({
      logLevel: 'info',
      config: '[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "kata"\n',
    });
    expect(daemon.output).toContain('invalid plugin config: no corresponding runtime configured in `containerd.runtimes` for `containerd` `default_runtime_name = \\"kata\\"');
    const plugins = await daemon.ctr(['plugins', 'ls']);
    expect(plugins.stdout.split('\n').find((l) => /\bcri\b/.test(l))?.trim().split(/\s+/)).toEqual(['io.containerd.grpc.v1', 'cri', 'linux/amd64', 'error']);
    const version = await runCrictl(daemon.address, ['version']);
    expect(version.code).toBe(1);
    expect(version.stderr).toContain('Unimplemented');
  });

  it('is listed ok with the defaults, after the other gRPC services', async () => {
    daemon = await TestDaemon.start({ logLevel: 'info' });
    const rows = (await daemon.ctr(['plugins', 'ls'])).stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    expect(rows.find((r) => r[1] === 'cri')).toEqual(['io.containerd.grpc.v1', 'cri', 'linux/amd64', 'ok']);
  });
});
