/**
 * The same crictl v1.37 commands against berthd and against Debian's containerd 1.6.20 with its
 * CRI plugin enabled (temp root, state, socket, CNI conf dir; never the system's), both pulling
 * from one loopback registry through the same hosts.toml: the outputs must be the same, except
 * where Berth differs on purpose (noted at each check).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageServiceService } from '@berth/api/cri';
import { isNotFound } from '@berth/errdefs';
import { CONTAINERD_PATH, type CrictlResult, rejectionOf, runCrictl } from '@berth/testing';
import { createClient } from '@berth/grpc';
import { useCriTestBed } from './test-bed';
import { json } from './test-support';

jest.setTimeout(240_000);

const describeIf = CONTAINERD_PATH ? describe : describe.skip;

/** Log lines without their time and pid, so that two runs compare. */
const stable = (s: string) =>
  s
    .replace(/time="[^"]*" /g, '')
    .replace(/^E\d{4} [\d:.]+\s+\d+ /gm, '')
    .trim();

describeIf('crictl against berthd and containerd 1.6.20', () => {
  const bed = useCriTestBed({ name: 'crictl-side', network: false, containerd: '1.6' });

  async function both(...args: string[]): Promise<{ berthd: CrictlResult; containerd: CrictlResult }> {
    const [b, c] = await Promise.all([runCrictl(bed.berthd.address, args), runCrictl(bed.containerd.address, args)]);
    return { berthd: b, containerd: c };
  }

  async function same(...args: string[]): Promise<string> {
    const r = await both(...args);
    expect({ code: r.berthd.code, stdout: r.berthd.stdout }).toEqual({ code: r.containerd.code, stdout: r.containerd.stdout });
    return r.berthd.stdout;
  }

  beforeEach(async () => {
    for (const d of [bed.berthd.address, bed.containerd.address]) {
      for (const id of (await runCrictl(d, ['images', '-q'])).stdout.split('\n').filter(Boolean)) await runCrictl(d, ['rmi', id]);
    }
  });

  it('version: the same but for the runtime version (berthd gives its containerd Version answer)', async () => {
    const r = await both('version');
    const lines = (s: string) => s.split('\n').filter((l) => !l.startsWith('RuntimeVersion:'));
    expect(lines(r.berthd.stdout)).toEqual(lines(r.containerd.stdout));
    expect(r.containerd.stdout).toContain('RuntimeVersion:  1.6.20~ds1');
  });

  it('info: the same conditions, CNI load status and cniconfig, before and after a network config appears', async () => {
    const pick = (out: string) => {
      const j = json(out);
      return { conditions: j.status.conditions, lastCNILoadStatus: j.lastCNILoadStatus, cniconfig: j.cniconfig };
    };
    const before = await both('info');
    expect(pick(before.berthd.stdout)).toEqual(pick(before.containerd.stdout));

    const file = join(bed.world.confDir, '10-berth.conflist');
    writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'berth-test', plugins: [{ type: 'bridge', bridge: 'cni-berth0', ipam: { type: 'host-local', subnet: '10.250.0.0/24' } }] }));
    try {
      // containerd reloads on an inotify event: wait for it.
      let after = await both('info');
      for (let i = 0; i < 50 && pick(after.containerd.stdout).lastCNILoadStatus !== 'OK'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        after = await both('info');
      }
      expect(pick(after.berthd.stdout)).toEqual(pick(after.containerd.stdout));
      expect(pick(after.berthd.stdout).conditions[1].status).toBe(true);
    } finally {
      rmSync(file);
    }
  });

  it('runtime-config: berthd says CGROUPFS where containerd 1.6 is UNIMPLEMENTED (critest needs the answer)', async () => {
    const r = await both('runtime-config');
    expect(r.berthd.stdout).toBe('cgroup driver:   CGROUPFS\n');
    expect(r.containerd.stderr).toContain('code = Unimplemented');
  });

  it('pull, images (table, -q, --digests, json), inspecti and ctr records are the same', async () => {
    expect(await same('pull', 'busybox:berth')).toBe(`Image is up to date for ${bed.world.busybox.image.config.digest}\n`);
    await same('images');
    await same('images', '-q');
    await same('images', '--digests');
    await same('images', '-o', 'json');
    await same('images', '-o', 'json', 'busybox:berth');
    for (const ref of ['busybox:berth', bed.world.busybox.image.config.digest, `docker.io/library/busybox@${bed.world.busybox.image.manifest.digest}`]) {
      const r = await both('inspecti', ref);
      const [b, c] = [json(r.berthd.stdout), json(r.containerd.stdout)];
      expect(b.status).toEqual(c.status);
      expect({ chainID: b.info.chainID, imageSpec: b.info.imageSpec }).toEqual({ chainID: c.info.chainID, imageSpec: c.info.imageSpec });
    }
    const records = async (d: { ctr(a: string[]): Promise<{ stdout: string }> }) => (await d.ctr(['-n', 'k8s.io', 'images', 'ls'])).stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/).filter((_, i) => i !== 3 && i !== 4)).sort();
    expect(await records(bed.berthd)).toEqual(await records(bed.containerd));
  });

  it('images NAME: berthd applies the filter, containerd 1.6 ignores it (its ListImages has a TODO there) and lists all', async () => {
    await same('pull', 'busybox:berth');
    await same('pull', `${bed.world.registry.host}/${bed.world.userUid.repo}:${bed.world.userUid.tag}`);
    const r = await both('images', '-o', 'json', 'busybox:berth');
    const ids = (out: string) => json(out).images.map((i: any) => i.id).sort();
    expect(ids(r.berthd.stdout)).toEqual([bed.world.busybox.image.config.digest]);
    expect(ids(r.containerd.stdout)).toEqual([bed.world.busybox.image.config.digest, bed.world.userUid.image.config.digest].sort());
    // Without a name both list everything, the same way.
    await same('images', '-o', 'json');
  });

  it.each([
    ['uid from USER 1002', 'userUid'],
    ['username from USER www-data:1004', 'userName'],
  ] as const)('inspecti reports the %s as containerd', async (_what, key) => {
    const s = bed.world[key];
    const ref = `${bed.world.registry.host}/${s.repo}:${s.tag}`;
    await same('pull', ref);
    const r = await both('inspecti', ref);
    expect(json(r.berthd.stdout).status).toEqual(json(r.containerd.stdout).status);
  });

  it.each(['tag', 'id', 'digest'])('rmi by %s: the same output, and nothing left in either', async (by) => {
    await same('pull', 'busybox:berth');
    const ref = by === 'tag' ? 'busybox:berth' : by === 'id' ? bed.world.busybox.image.config.digest : `docker.io/library/busybox@${bed.world.busybox.image.manifest.digest}`;
    await same('rmi', ref);
    expect(await same('images', '-q')).toBe('');
  });

  it.each([
    ['rmi', 'nothere'],
    ['inspecti', 'nothere'],
    ['pull', 'Bad//Name'],
  ])('%s %s fails with the same message', async (...args) => {
    const r = await both(...args);
    expect({ code: r.berthd.code, stderr: stable(r.berthd.stderr) }).toEqual({ code: r.containerd.code, stderr: stable(r.containerd.stderr) });
  });

  it('a missing image is NotFound on both', async () => {
    const pull = (address: string) => {
      const c = createClient(ImageServiceService, address);
      return rejectionOf(c.pullImage({ image: { image: 'busybox:missing', annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' } })).finally(() => c.close());
    };
    const [b, c] = await Promise.all([pull(bed.berthd.address), pull(bed.containerd.address)]);
    expect([isNotFound(b), isNotFound(c)]).toEqual([true, true]);
    expect(b.message).toBe(c.message);
    expect(b.message).toBe('failed to pull and unpack image "docker.io/library/busybox:missing": failed to resolve reference "docker.io/library/busybox:missing": docker.io/library/busybox:missing: not found');
  });

  it('a registry that refuses connections: both fail naming the image and the address (Berth tries https first, then http, on loopback; containerd 1.6 goes to http at once)', async () => {
    const r = await both('pull', '127.0.0.1:1/missing:1');
    for (const x of [r.berthd, r.containerd]) {
      expect(x.code).toBe(1);
      expect(x.stderr).toContain('failed to pull and unpack image \\"127.0.0.1:1/missing:1\\": failed to resolve reference \\"127.0.0.1:1/missing:1\\"');
      expect(x.stderr).toContain('127.0.0.1:1/v2/missing/manifests/1');
    }
  });

  it('imagefsinfo: the same shape, each at its own overlayfs directory', async () => {
    const r = await both('imagefsinfo');
    // Values differ by design: containerd sums snapshot usage it samples every 10 s
    // (stats_collect_period), so it still counts snapshots removed since; berthd sums at the call.
    const shape = (out: string, root: string) => {
      const { status } = json(out);
      const fs = status.imageFilesystems[0];
      return {
        filesystems: status.imageFilesystems.length,
        containerFilesystems: status.containerFilesystems,
        keys: Object.keys(fs).sort(),
        mountpoint: fs.fsId.mountpoint === join(root, 'io.containerd.snapshotter.v1.overlayfs'),
        values: [fs.timestamp, fs.usedBytes.value, fs.inodesUsed.value].map((v) => /^\d+$/.test(v)),
      };
    };
    expect(shape(r.berthd.stdout, bed.berthd.root)).toEqual(shape(r.containerd.stdout, bed.containerd.root));
  });
});
