/**
 * critest v1.37's pod sandbox specs ("PodSandbox", "Idempotence StopPodSandbox/RemovePodSandbox")
 * against berthd and against containerd 1.6.20's CRI plugin, one after the other on one private
 * CNI bridge network, with the catatonit pause image mirrored as registry.k8s.io/pause:3.6. Every
 * spec that passes on containerd must pass on berthd. The sysctls specs, which check from inside
 * a container, run with the container specs (critest-containers.test.ts).
 */
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeNetns } from '@berth/cni';
import { TestNetwork, hostportChainsExist, removeUnusedHostportChains } from '@berth/cni/test-helpers';
import { CONTAINERD_PATH, CRITEST_PATH, ReferenceContainerd, TestDaemon, runCrictl } from '@berth/testing';
import { cleanupShims } from '@berth/tasks/test-support';
import { type CriWorld, type SpecResult, addPauseImage, critest, startCriWorld } from './test-support';

jest.setTimeout(600_000);

const run = CONTAINERD_PATH && CRITEST_PATH && existsSync(CRITEST_PATH) ? describe : describe.skip;
const K8S_CGROUPS = () => (existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c, 'k8s.io')).filter((d) => existsSync(d)) : []);

async function removeAll(address: string): Promise<void> {
  for (const id of (await runCrictl(address, ['pods', '-q'])).stdout.split('\n').filter(Boolean)) await runCrictl(address, ['rmp', '-f', id]);
}

run('critest v1.37 pod sandbox specs: berthd passes every one containerd 1.6.20 passes', () => {
  let world: CriWorld;
  let net: TestNetwork;
  let config: string;
  let hadHostportChains = false;

  beforeAll(async () => {
    hadHostportChains = hostportChainsExist();
    world = await startCriWorld();
    await addPauseImage(world);
    net = new TestNetwork();
    const section = 'plugins."io.containerd.grpc.v1.cri"';
    config =
      `[${section}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n  restrict_oom_score_adj = true\n  netns_mounts_under = ${JSON.stringify(net.netnsRoot)}\n  netns_mounts_under_state_dir = true\n` +
      `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(net.confDir)}\n  cache_dir = ${JSON.stringify(net.cacheDir)}\n` +
      `[${section}.registry]\n  config_path = ${JSON.stringify(world.hostsDir)}\n`;
  });

  afterAll(async () => {
    await net?.cleanup();
    if (!hadHostportChains) removeUnusedHostportChains();
    // critest's pods (no cgroup parent) go under /k8s.io; rmdir takes only an empty one.
    for (const d of K8S_CGROUPS()) {
      try {
        rmdirSync(d);
      } catch {
        /* in use */
      }
    }
    await world?.cleanup();
  });

  it('runs "PodSandbox" and the sandbox "Idempotence" specs on both and compares spec by spec', async () => {
    const args = ['--ginkgo.focus=PodSandbox', '--ginkgo.skip=sysctls|NRI'];
    const containerd = await ReferenceContainerd.start({ config, cri: true });
    let c: { specs: SpecResult[]; output: string };
    try {
      c = await critest(containerd.address, world.dir, args);
    } finally {
      await removeAll(containerd.address);
      await containerd.stop();
      const netnsDir = join(containerd.state, 'io.containerd.grpc.v1.cri', 'netns');
      if (existsSync(netnsDir)) for (const n of readdirSync(netnsDir)) await removeNetns(join(netnsDir, n));
      await containerd.cleanup();
    }
    const berthd = await TestDaemon.start({ config, logLevel: 'info' });
    let b: { specs: SpecResult[]; output: string };
    try {
      b = await critest(berthd.address, world.dir, args);
      // critest removes what it makes; nothing of its pods is left.
      expect((await runCrictl(berthd.address, ['pods', '-q'])).stdout).toBe('');
    } finally {
      await removeAll(berthd.address);
      await berthd.stop();
      await cleanupShims(berthd.address, berthd.dir);
      await berthd.cleanup();
    }
    const table = (r: { specs: SpecResult[] }) => Object.fromEntries(r.specs.filter((s) => s.outcome !== 'skipped').map((s) => [s.name, s.outcome]));
    const onContainerd = table(c);
    const onBerthd = table(b);
    process.stderr.write(`critest:\n${Object.keys({ ...onContainerd, ...onBerthd }).sort().map((n) => `  containerd ${onContainerd[n] ?? '-'}  berthd ${onBerthd[n] ?? '-'}  ${n}`).join('\n')}\n`);
    expect(Object.keys(onBerthd).length).toBeGreaterThanOrEqual(7);
    const regressions = Object.keys(onContainerd).filter((n) => onContainerd[n] === 'passed' && onBerthd[n] !== 'passed');
    expect({ regressions, output: regressions.length ? b.output.slice(-4000) : '' }).toEqual({ regressions: [], output: '' });
    expect(net.allocations()).toEqual([]);
    expect(readdirSync(net.netnsRoot)).toEqual([]);
  });
});
