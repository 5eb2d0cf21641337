/**
 * critest v1.37's pod sandbox specs ("PodSandbox", "Idempotence StopPodSandbox/RemovePodSandbox")
 * against berthd and against containerd 1.6.20's CRI plugin, one after the other on one private
 * CNI bridge network, with the catatonit pause image mirrored as registry.k8s.io/pause:3.6. Every
 * spec that passes on containerd must pass on berthd. The sysctls specs, which check from inside
 * a container, run with the container specs (critest-containers.test.ts).
 */
import { existsSync, readdirSync } from 'node:fs';
import { CONTAINERD_PATH, CRITEST_PATH, runCrictl } from '@berth/testing';
import { useCriTestBed } from './test-bed';
import { type SpecResult, critest } from './test-support';

jest.setTimeout(600_000);

const run = CONTAINERD_PATH && CRITEST_PATH && existsSync(CRITEST_PATH) ? describe : describe.skip;

run('critest v1.37 pod sandbox specs: berthd passes every one containerd 1.6.20 passes', () => {
  // The daemons run one after the other, in the test. critest's pods (no cgroup parent) go
  // under /k8s.io, removed after the run when it is empty.
  const bed = useCriTestBed({ name: 'critest-pods', berthd: false, netnsUnderStateDir: true, sharedCgroupParent: '/k8s.io' });

  it('runs "PodSandbox" and the sandbox "Idempotence" specs on both and compares spec by spec', async () => {
    const args = ['--ginkgo.focus=PodSandbox', '--ginkgo.skip=sysctls|NRI'];
    const containerd = await bed.startContainerd();
    let c: { specs: SpecResult[]; output: string };
    try {
      c = await critest(containerd.address, bed.dir, args);
    } finally {
      await bed.stopDaemon(containerd);
    }
    const berthd = await bed.startBerthd();
    let b: { specs: SpecResult[]; output: string };
    try {
      b = await critest(berthd.address, bed.dir, args);
      // critest removes what it makes; nothing of its pods is left.
      expect((await runCrictl(berthd.address, ['pods', '-q'])).stdout).toBe('');
    } finally {
      await bed.stopDaemon(berthd);
    }
    const table = (r: { specs: SpecResult[] }) => Object.fromEntries(r.specs.filter((s) => s.outcome !== 'skipped').map((s) => [s.name, s.outcome]));
    const onContainerd = table(c);
    const onBerthd = table(b);
    process.stderr.write(`critest:\n${Object.keys({ ...onContainerd, ...onBerthd }).sort().map((n) => `  containerd ${onContainerd[n] ?? '-'}  berthd ${onBerthd[n] ?? '-'}  ${n}`).join('\n')}\n`);
    expect(Object.keys(onBerthd).length).toBeGreaterThanOrEqual(7);
    const regressions = Object.keys(onContainerd).filter((n) => onContainerd[n] === 'passed' && onBerthd[n] !== 'passed');
    expect({ regressions, output: regressions.length ? b.output.slice(-4000) : '' }).toEqual({ regressions: [], output: '' });
    expect(bed.net.allocations()).toEqual([]);
    expect(readdirSync(bed.net.netnsRoot)).toEqual([]);
  });
});
