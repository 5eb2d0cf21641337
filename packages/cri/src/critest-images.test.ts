/**
 * critest v1.37's image and runtime info specs ("Image Manager", "Image Consistency", "Runtime
 * info", "Idempotence RemoveImage") against berthd and against containerd 1.6.20's
 * CRI plugin, with look-alikes of critest's test images (busybox-static based, the users and
 * tags each spec expects) in a loopback registry that hosts.toml puts in place of gcr.io,
 * registry.k8s.io and k8s.gcr.io. Every spec that passes on containerd must pass on berthd.
 * "public image with digest" is skipped: it names a digest no local build can have.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltImage, buildImage, busyboxSpec } from '@berth/fixtures';
import { CONTAINERD_PATH, CRITEST_IMAGE_LOOKALIKES, CRITEST_PATH, ReferenceContainerd, TestDaemon, TestRegistry, tempDir } from '@berth/testing';
import { type SpecResult, critest, push } from './test-support';

jest.setTimeout(600_000);

const run = CONTAINERD_PATH && CRITEST_PATH && existsSync(CRITEST_PATH) ? describe : describe.skip;

run('critest v1.37 image and runtime info specs: berthd passes every one containerd 1.6.20 passes', () => {
  let registry: TestRegistry;
  let dir: { path: string; remove(): void };
  let criConfig: string;
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;

  beforeAll(async () => {
    dir = tempDir('berth-critest-');
    registry = await TestRegistry.start();
    const base = busyboxSpec('x');
    for (const i of CRITEST_IMAGE_LOOKALIKES) {
      const image: BuiltImage = await buildImage({ ...base, runConfig: { Cmd: ['sh'], ...i.runConfig } });
      for (const tag of i.tags) await push(registry, { repo: i.repo, tag, image });
    }
    const hostsDir = join(dir.path, 'certs.d');
    for (const host of ['gcr.io', 'registry.k8s.io', 'k8s.gcr.io']) {
      mkdirSync(join(hostsDir, host), { recursive: true });
      // server is the registry too, so that nothing ever leaves the machine.
      writeFileSync(join(hostsDir, host, 'hosts.toml'), `server = "${registry.url}"\n\n[host."${registry.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    }
    const confDir = join(dir.path, 'net.d');
    mkdirSync(confDir);
    // A network config makes both report NetworkReady ("Runtime info" checks it); no pod runs.
    writeFileSync(join(confDir, '10-critest.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'critest', plugins: [{ type: 'bridge', bridge: 'cni-critest0' }] }));
    const section = 'plugins."io.containerd.grpc.v1.cri"';
    criConfig = `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(confDir)}\n[${section}.registry]\n  config_path = ${JSON.stringify(hostsDir)}\n`;
    berthd = await TestDaemon.start({ config: criConfig, logLevel: 'info' });
    containerd = await ReferenceContainerd.start({ config: criConfig, cri: true });
  });

  afterAll(async () => {
    await berthd?.cleanup();
    await containerd?.cleanup();
    await registry?.stop();
    dir?.remove();
  });

  it('runs "Image Manager" and "Runtime info" on both and compares spec by spec', async () => {
    // Only specs that run no pod: "Image Identifier Consistency" starts sandboxes, which would
    // run CNI plugins on this machine from containerd (and are UNIMPLEMENTED in berthd yet).
    const args = ['--ginkgo.focus=Image Manager|Runtime info|Image Consistency|Idempotence RemoveImage', '--ginkgo.skip=with digest'];
    const c = await critest(containerd.address, dir.path, args);
    const b = await critest(berthd.address, dir.path, args);
    // critest's temp directory (its TMPDIR, in the directory it was given) went with each run.
    expect(readdirSync(dir.path).filter((e) => e.startsWith('critest-tmp-'))).toEqual([]);
    const table = (r: { specs: SpecResult[] }) => Object.fromEntries(r.specs.filter((s) => s.outcome !== 'skipped').map((s) => [s.name, s.outcome]));
    const onContainerd = table(c);
    const onBerthd = table(b);
    process.stderr.write(`critest:\n${Object.keys({ ...onContainerd, ...onBerthd }).sort().map((n) => `  containerd ${onContainerd[n] ?? '-'}  berthd ${onBerthd[n] ?? '-'}  ${n}`).join('\n')}\n`);
    expect(Object.keys(onContainerd).length).toBeGreaterThanOrEqual(15);
    const regressions = Object.keys(onContainerd).filter((n) => onContainerd[n] === 'passed' && onBerthd[n] !== 'passed');
    expect({ regressions, output: regressions.length ? b.output.slice(-4000) : '' }).toEqual({ regressions: [], output: '' });
  });
});
