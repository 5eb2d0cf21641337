import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeTree, type TreeEntry } from '@berth/diff';
import { type BuiltImage, type ImageSpec, buildImage, busyboxSpec, dir, file, pseudoRandom, symlink } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { CtrResult, ReferenceContainerd, TestDaemon, TestRegistry, tempDir } from '@berth/testing';
import { NO_GC, contentRows, imageRows, ok, seed } from './test-support';

/*
 * The stock ctr 1.6 pulls and pushes client side: it fetches from the registry itself and writes
 * through the Content, Images and Leases APIs, unpacks through Snapshots and Diff.Apply, and
 * pushes by reading content back. The same commands run against berthd and against Debian's
 * containerd 1.6, with Debian's docker-registry on loopback; records, unpacked trees and what
 * each daemon's content pushes back must be the same.
 */

const NS = 'c16';

/**
 * Five gzip layers of incompressible 256 KiB files, laid out as buildGeneratedImage lays out its
 * images (a directory per layer, files of pseudo-random bytes), plus a symlink and a file the
 * top layer replaces; built in memory so that it can be pushed.
 */
function fiveLayerSpec(name: string): ImageSpec {
  const layers = [];
  for (let i = 0; i < 5; i++) {
    layers.push({
      entries: [
        dir(`layer${i}`),
        file(`layer${i}/f0`, pseudoRandom(`c16-l${i}f0`, 256 << 10)),
        file(`layer${i}/f1`, pseudoRandom(`c16-l${i}f1`, 256 << 10), 0o600, 1000, 1000),
        symlink(`layer${i}/latest`, 'f0'),
        file('top', `written by layer ${i}\n`),
      ],
    });
  }
  return { name, layers };
}

/** Directories a layer creates implicitly get the time of extraction on both daemons: compare those as "recent". */
function normaliseTree(entries: TreeEntry[]): Array<TreeEntry | (Omit<TreeEntry, 'mtime'> & { mtime: 'recent' })> {
  const recent = Math.floor(Date.now() / 1000) - 600;
  return entries.map((e) => (e.type === 'dir' && typeof e.mtime === 'number' && e.mtime > recent ? { ...e, mtime: 'recent' as const } : e));
}

describe('ctr 1.6 pull and push on berthd and on containerd 1.6', () => {
  let registry: TestRegistry;
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;
  const tmp = tempDir('berth-ctr16-pp-');
  const images: Record<string, BuiltImage> = {};
  const daemons = () => [berthd, containerd] as const;

  beforeAll(async () => {
    registry = await TestRegistry.start();
    images.busybox = await buildImage(busyboxSpec(`${registry.host}/berth/busybox:1`));
    images.five = await buildImage(fiveLayerSpec(`${registry.host}/berth/five:1`));
    expect(images.five.layers).toHaveLength(5);
    await seed(registry, 'berth/busybox', '1', images.busybox);
    await seed(registry, 'berth/five', '1', images.five);
    [berthd, containerd] = await Promise.all([TestDaemon.start({ config: NO_GC }), ReferenceContainerd.start({ config: NO_GC })]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
    await registry?.stop();
    tmp.remove();
  });

  /** Runs ctr 1.6 against both daemons at once; returns [berthd, containerd]. */
  const both = (args: string[]): Promise<CtrResult[]> => Promise.all(daemons().map((d) => d.ctr(args, { namespace: NS, timeoutMs: 60_000 })));
  it.each(['busybox', 'five'])('pull --plain-http of %s: the same records, the same check, the same unpacked tree', async (key) => {
    const img = images[key];
    const ref = img.name;
    const [pb, pc] = await both(['images', 'pull', '--plain-http', ref]);
    ok(pb, 'berthd pull');
    ok(pc, 'containerd pull');
    // ctr prints the unpack of the host platform's manifest last, the same on both.
    for (const r of [pb, pc]) expect(r.stdout).toMatch(new RegExp(`unpacking linux/amd64 ${img.manifest.digest}\\.\\.\\.\\s*\\ndone`));

    const [lb, lc] = await both(['images', 'ls']);
    const rows = imageRows(ok(lb, 'berthd ls'));
    expect(rows).toEqual(imageRows(ok(lc, 'containerd ls')));
    expect(rows.find((r) => r.startsWith(ref))).toContain(img.manifest.digest);

    // Blob labels are written by ctr in both cases, through Content.Update: the same on both.
    const [cb, cc] = await both(['content', 'ls']);
    const blobs = contentRows(ok(cb, 'berthd content ls'));
    expect(blobs).toEqual(contentRows(ok(cc, 'containerd content ls')));
    const layerRow = blobs.find((r) => r.startsWith(img.layers[0].digest))!;
    expect(layerRow).toContain(`containerd.io/uncompressed=${img.diffIds[0]}`);
    // ctr 1.6 names the registry without its port in the key (both daemons store what ctr sends).
    expect(layerRow).toContain(`containerd.io/distribution.source.127.0.0.1=berth/${key}`);

    const [kb, kc] = await both(['images', 'check']);
    expect(ok(kb, 'berthd check')).toEqual(ok(kc, 'containerd check'));
    const line = kb.stdout.split('\n').find((l) => l.startsWith(ref))!;
    expect(line).toMatch(new RegExp(`complete \\(${img.layers.length + 1}/${img.layers.length + 1}\\).*\\strue\\s*$`));

    // ctr mounts a read-only view of the top snapshot itself (Snapshots.View + a local mount).
    const mnts = daemons().map((_, i) => join(tmp.path, `${key}-mnt-${i}`));
    mnts.forEach((m) => mkdirSync(m));
    const mounted = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'mount', ref, mnts[i]], { namespace: NS })));
    try {
      expect(mounted.map((r) => [r.code, r.stderr])).toEqual([
        [0, ''],
        [0, ''],
      ]);
      const [tb, tc] = await Promise.all(mnts.map((m) => describeTree(m)));
      expect(normaliseTree(tb)).toEqual(normaliseTree(tc));
      expect(tb.length).toBeGreaterThan(10);
      if (key === 'busybox') expect(tb.find((e) => e.path === 'bin/busybox')).toMatchObject({ type: 'file', mode: '0755', uid: 0 });
      else {
        expect(tb.filter((e) => /^layer\d$/.test(e.path)).map((e) => e.path)).toEqual(['layer0', 'layer1', 'layer2', 'layer3', 'layer4']);
        expect(tb.find((e) => e.path === 'layer3/f1')).toMatchObject({ type: 'file', mode: '0600', uid: 1000, gid: 1000, size: 256 << 10 });
        expect(tb.find((e) => e.path === 'layer2/latest')).toMatchObject({ type: 'symlink', target: 'f0' });
        expect(tb.find((e) => e.path === 'top')).toMatchObject({ size: 'written by layer 4\n'.length });
      }
    } finally {
      const un = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'unmount', '--rm', mnts[i]], { namespace: NS })));
      expect(un.map((r) => [r.code, r.stderr])).toEqual([
        [0, ''],
        [0, ''],
      ]);
    }
    // The views are gone again on both sides: only the committed chain is left.
    const [sb, sc] = await both(['snapshots', 'ls']);
    expect(ok(sb, 'berthd snapshots ls')).toEqual(ok(sc, 'containerd snapshots ls'));
    expect(sb.stdout).not.toMatch(/Active/);
  });

  it.each(['busybox', 'five'])('push --plain-http of %s: each daemon pushes to its own repo, the registry serves the same manifest', async (key) => {
    const img = images[key];
    const targets = [`${registry.host}/pushed/${key}-berthd:1`, `${registry.host}/pushed/${key}-containerd:1`];
    // The pull test ran first (jest keeps order within a file); pull again so this test also stands alone.
    await both(['images', 'pull', '--plain-http', img.name]);
    const pushed = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'push', '--plain-http', targets[i], img.name], { namespace: NS, timeoutMs: 60_000 })));
    ok(pushed[0], 'berthd push');
    ok(pushed[1], 'containerd push');

    const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
    try {
      const [rb, rc] = await Promise.all(targets.map((t) => client.resolve(t)));
      expect(rb.descriptor.digest).toBe(rc.descriptor.digest);
      expect(rb.descriptor).toMatchObject({ digest: img.manifest.digest, size: img.manifest.size, mediaType: img.manifest.mediaType });
      // Every blob is there under berthd's repository, byte for byte (the fetch verifies the digest).
      for (const d of [img.config, ...img.layers]) {
        const chunks: Buffer[] = [];
        for await (const c of await client.fetch(rb.ref, d)) chunks.push(c as Buffer);
        expect(Buffer.concat(chunks).equals(img.blobs.get(d.digest)!)).toBe(true);
      }
    } finally {
      await client.close();
    }
  });
});
