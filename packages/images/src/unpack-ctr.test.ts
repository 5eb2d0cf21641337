import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { TreeEntry, describeTree, encodeName, readTar } from '@berth/diff';
import { CTR_PATH, CtrResult, ReferenceContainerd, TestDaemon, tempDir } from '@berth/testing';
// tools/ packages are not in jest's @berth/* source mapping (it covers packages/ only).
import { BYTE_NAMES_IMAGE, HOSTILE_KINDS, OPAQUE_ROOT_IMAGE, buildBusyboxImage, buildByteNamesImage, buildOpaqueRootImage, bytes, buildHostileImage, buildMultiLayerImage, BUSYBOX_IMAGE, MULTILAYER_IMAGE } from '../../../tools/fixtures/src';

/**
 * Image import, unpack, mount, export and container create through the stock ctr, against
 * berthd and a real containerd 1.6 side by side (ctr unpacks client side: what berthd serves
 * here is Content, Images, Snapshots, Leases and the Diff service's Apply).
 */
/** Both collectors idle, so the blobs an import leaves unreferenced (index.json) stay on both sides. */
const NO_GC = `[plugins."io.containerd.gc.v1.scheduler"]\n  deletion_threshold = 0\n  mutation_threshold = 1000000\n  schedule_delay = "0s"\n  startup_delay = "100h"\n`;

const norm = (r: CtrResult, paths: string[] = []) => {
  let out = `${r.code}\n${r.stdout}\n${r.stderr.replace(/time="[^"]+"/g, 'time="T"').replace(/extract-\d+-[A-Za-z0-9_-]+/g, 'extract-K')}`;
  for (const p of paths) out = out.split(p).join('<root>');
  return out;
};

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/**
 * A directory a layer creates implicitly (a parent of an entry with no entry of its own) gets the
 * time of extraction on both daemons: compare those as "recent", the rest exactly.
 */
const normalise = (entries: TreeEntry[]) => {
  const recent = Math.floor(Date.now() / 1000) - 600;
  return entries.map((e) => (e.type === 'dir' && typeof e.mtime === 'number' && e.mtime > recent ? { ...e, mtime: 'recent' } : e));
};

describe('image import and unpack through ctr: berthd against containerd 1.6', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;
  let work: { path: string; remove(): void };
  let fixtures: string;
  const daemons = () => [berthd, containerd] as const;

  beforeAll(async () => {
    work = tempDir('berth-unpack-ctr-');
    fixtures = join(work.path, 'fixtures');
    [berthd, containerd] = await Promise.all([TestDaemon.start({ logLevel: 'debug', config: NO_GC }), ReferenceContainerd.start({ config: NO_GC })]);
    await buildBusyboxImage(fixtures);
    await buildBusyboxImage(fixtures, { format: 'docker' });
    await buildMultiLayerImage(fixtures);
  });
  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
    work?.remove();
  });

  /** Runs ctr on both daemons; expects the same exit code and (normalised) output. */
  const both = async (args: string[], namespace = 'default') => {
    const [ours, theirs] = await Promise.all(daemons().map((d) => d.ctr(args, { namespace, timeoutMs: 60_000 })));
    expect(norm(ours)).toEqual(norm(theirs));
    return ours;
  };

  it('imports busybox (OCI layout and docker archive); ls, check and snapshots ls match', async () => {
    expect((await both(['images', 'import', join(fixtures, 'busybox-oci.tar')])).code).toBe(0);
    // The layer was extracted while ctr was still importing, and the unpack moved that tree in.
    expect(berthd.output).toMatch(/msg="layer applied from its prefetched tree" type=io.containerd.differ.v1 id=walking digest=sha256:[0-9a-f]{64}/);
    await both(['images', 'ls']);
    await both(['images', 'check']);
    await both(['snapshots', 'ls']);
    expect((await both(['images', 'import', join(fixtures, 'busybox-docker.tar')], 'docker')).code).toBe(0);
    await both(['images', 'ls'], 'docker');
    await both(['images', 'check'], 'docker');
    await both(['content', 'ls', '-q']);
  });

  it('creates a container from the image (ctr mounts the rootfs to read /etc/passwd)', async () => {
    expect((await both(['containers', 'create', BUSYBOX_IMAGE, 'c1'])).code).toBe(0);
    await both(['containers', 'ls']);
    await both(['snapshots', 'ls']);
    await both(['containers', 'rm', 'c1']);
  });

  it('mounts and unmounts the image; both trees are the same', async () => {
    const mnts = daemons().map((_, i) => join(work.path, `mnt-${i}`));
    mnts.forEach((m) => mkdirSync(m));
    const res = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'mount', BUSYBOX_IMAGE, mnts[i]])));
    try {
      expect(res.map((r) => r.code)).toEqual([0, 0]);
      expect(res[0].stdout.replace(mnts[0], 'M')).toEqual(res[1].stdout.replace(mnts[1], 'M'));
      const [a, b] = await Promise.all(mnts.map((m) => describeTree(m)));
      expect(normalise(a)).toEqual(normalise(b));
      expect(a.find((e) => e.path === 'bin/busybox')).toMatchObject({ type: 'file', mode: '0755' });
    } finally {
      const un = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'unmount', '--rm', mnts[i]])));
      expect(un.map((r) => r.code)).toEqual([0, 0]);
    }
    await both(['snapshots', 'ls']);
  });

  it('exports identical tars, and each daemon imports the other one\'s export with the same digests', async () => {
    const outs = daemons().map((_, i) => join(work.path, `export-${i}.tar`));
    const res = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'export', outs[i], BUSYBOX_IMAGE])));
    expect(res.map((r) => r.code)).toEqual([0, 0]);
    expect(sha(outs[0])).toEqual(sha(outs[1]));
    // Round trip: berthd's export into containerd, containerd's into berthd.
    const [intoContainerd, intoBerthd] = await Promise.all([
      containerd.ctr(['images', 'import', outs[0]], { namespace: 'rt' }),
      berthd.ctr(['images', 'import', outs[1]], { namespace: 'rt' }),
    ]);
    expect([intoContainerd.code, intoBerthd.code]).toEqual([0, 0]);
    const ls = await both(['images', 'ls'], 'rt');
    expect(ls.stdout).toContain(BUSYBOX_IMAGE);
    await both(['content', 'ls', '-q'], 'rt');
    await both(['snapshots', 'ls'], 'rt');
  });

  it('unpacks a multi-layer image (whiteouts, opaque dirs, links) to the same tree as containerd', async () => {
    expect((await both(['images', 'import', join(fixtures, 'multilayer-oci.tar')], 'ml')).code).toBe(0);
    await both(['snapshots', 'ls'], 'ml');
    const mnts = daemons().map((_, i) => join(work.path, `ml-${i}`));
    mnts.forEach((m) => mkdirSync(m));
    const res = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'mount', MULTILAYER_IMAGE, mnts[i]], { namespace: 'ml' })));
    try {
      expect(res.map((r) => r.code)).toEqual([0, 0]);
      const [a, b] = await Promise.all(mnts.map((m) => describeTree(m)));
      expect(normalise(a)).toEqual(normalise(b));
      const paths = a.map((e) => e.path);
      expect(paths).toEqual(expect.arrayContaining(['var/cache/new', 'var/log/implicit', 'replace-me/inner', 'opt/app-link', 'etc/shadow']));
      expect(paths).not.toEqual(expect.arrayContaining(['var/cache/a']));
      expect(paths.filter((p) => p === 'var/cache/a' || p === 'var/lib/old' || p === 'data/x' || p === 'fifo')).toEqual([]);
    } finally {
      await Promise.all(daemons().map((d, i) => d.ctr(['images', 'unmount', '--rm', mnts[i]], { namespace: 'ml' })));
    }
  });

  it('ctr snapshots diff: Diff.Diff writes the same change set as containerd (gzip, uncompressed label)', async () => {
    const chain = (await berthd.ctr(['snapshots', 'ls'])).stdout.split('\n').find((l) => l.includes('Committed'))!.split(/\s+/)[0];
    const entries: string[][] = [];
    for (const d of daemons()) {
      const mnt = join(work.path, `diff-${entries.length}`);
      mkdirSync(mnt);
      expect((await d.ctr(['snapshots', 'prepare', 'c2', chain])).code).toBe(0);
      const m = await d.ctr(['snapshots', 'mounts', mnt, 'c2']);
      execFileSync('/bin/sh', ['-c', m.stdout]);
      try {
        execFileSync('/bin/sh', ['-c', `echo hi > ${mnt}/etc/new && rm ${mnt}/etc/hostname && mkdir -p ${mnt}/var/x && touch -d @1577836800 ${mnt}/etc ${mnt}/var ${mnt}/var/x ${mnt}/etc/new`]);
      } finally {
        execFileSync('/bin/umount', [mnt]);
      }
      // ctr writes the layer itself to stdout; --keep leaves it in the content store (gc.root).
      const blob = execFileSync(CTR_PATH, ['--address', d.address, 'snapshots', 'diff', '--keep', 'c2']);
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      const info = await d.ctr(['content', 'ls']);
      expect(info.stdout.split('\n').find((l) => l.startsWith(digest))).toMatch(/containerd\.io\/uncompressed=sha256:/);
      const tar = gunzipSync(blob);
      const names: string[] = [];
      for await (const e of readTar([tar])) names.push(`${e.header.name} ${e.header.type} ${e.header.mode.toString(8)}`);
      entries.push(names);
    }
    expect(entries[0]).toEqual(entries[1]);
    expect(entries[0].join('\n')).toMatch(/etc\/\.wh\.hostname/);
  });

  it('keeps names that are not UTF-8 byte for byte through import, unpack, diff and export, as containerd does', async () => {
    const ns = 'bytes';
    expect((await both(['images', 'import', await buildByteNamesImage(fixtures)], ns)).code).toBe(0);
    await both(['snapshots', 'ls'], ns);
    const mnts = daemons().map((_, i) => join(work.path, `bytes-${i}`));
    mnts.forEach((m) => mkdirSync(m));
    const res = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'mount', '--rw', BYTE_NAMES_IMAGE, mnts[i]], { namespace: ns })));
    let mounted = true;
    try {
      expect(res.map((r) => r.code)).toEqual([0, 0]);
      const [a, b] = await Promise.all(mnts.map((m) => describeTree(m)));
      expect(normalise(a)).toEqual(normalise(b));
      const latin1 = (s?: string) => s && encodeName(s).toString('latin1');
      expect(a.map((e) => latin1(e.path))).toEqual(expect.arrayContaining([
        'd\xff\xfe/caf\xe9', 'h\xff', 'l\xe9', 'p\xe9', 'new\xff\xfe', '\xe9dir/b\xfe', `${'\xe9'.repeat(60)}/${'\xff'.repeat(80)}`, 'caf\xc3\xa9',
      ]));
      expect(a.map((e) => latin1(e.path))).not.toEqual(expect.arrayContaining(['old\xe9']));
      expect(a.map((e) => latin1(e.path))).not.toEqual(expect.arrayContaining(['\xe9dir/a\xfe']));
      expect(latin1(a.find((e) => e.path === bytes('l\xe9'))?.target)).toBe('d\xff\xfe/caf\xe9');
      // Changes with such names in the container's snapshot, then each daemon's Diff of it.
      for (const m of mnts) {
        writeFileSync(Buffer.from(`${m}/added\xfe`, 'latin1'), 'added');
        rmSync(Buffer.from(`${m}/d\xff\xfe/caf\xe9`, 'latin1'));
        utimesSync(Buffer.from(`${m}/d\xff\xfe`, 'latin1'), 1577836800, 1577836800);
      }
      const un = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'unmount', mnts[i]], { namespace: ns })));
      expect(un.map((r) => r.code)).toEqual([0, 0]);
      mounted = false;
      const diffs = await Promise.all(daemons().map(async (d, i) => {
        const blob = execFileSync(CTR_PATH, ['--address', d.address, '--namespace', ns, 'snapshots', 'diff', mnts[i]]);
        const names: string[] = [];
        for await (const e of readTar([gunzipSync(blob)])) names.push(`${latin1(e.header.name)} ${e.header.type} ${e.header.mode.toString(8)}`);
        return names;
      }));
      expect(diffs[0]).toEqual(diffs[1]);
      expect(diffs[0]).toEqual(expect.arrayContaining(['added\xfe 0 644', 'd\xff\xfe/ 5 750', 'd\xff\xfe/.wh.caf\xe9 0 0']));
    } finally {
      if (mounted) await Promise.all(daemons().map((d, i) => d.ctr(['images', 'unmount', mnts[i]], { namespace: ns })));
      await Promise.all(daemons().map((d, i) => d.ctr(['snapshots', 'rm', mnts[i]], { namespace: ns })));
    }
    // Export keeps the layer blobs as they are: both daemons write the same archive.
    const outs = daemons().map((_, i) => join(work.path, `bytes-export-${i}.tar`));
    const ex = await Promise.all(daemons().map((d, i) => d.ctr(['images', 'export', outs[i], BYTE_NAMES_IMAGE], { namespace: ns })));
    expect(ex.map((r) => r.code)).toEqual([0, 0]);
    expect(sha(outs[0])).toEqual(sha(outs[1]));
  });

  it('an opaque whiteout at a layer root hides every lower layer, on overlayfs and native', async () => {
    // containerd 1.6 shows the lower layers through such a root, on overlayfs (overlayfs ignores
    // the opaque attribute on a layer root) and on native alike; Berth hides them on both.
    const ns = 'opaque-root';
    const tar = await buildOpaqueRootImage(fixtures);
    const runs = [
      { d: berthd, snapshotter: 'overlayfs' }, { d: berthd, snapshotter: 'native' }, { d: containerd, snapshotter: 'native' },
    ];
    const trees: TreeEntry[][] = [];
    for (const [i, { d, snapshotter }] of runs.entries()) {
      const r = await d.ctr(['images', 'import', '--snapshotter', snapshotter, tar], { namespace: ns });
      expect(r).toMatchObject({ code: 0 });
      const mnt = join(work.path, `opaque-root-${i}`);
      mkdirSync(mnt);
      expect(await d.ctr(['images', 'mount', '--snapshotter', snapshotter, OPAQUE_ROOT_IMAGE, mnt], { namespace: ns })).toMatchObject({ code: 0 });
      try {
        trees.push(normalise(await describeTree(mnt)));
      } finally {
        expect(await d.ctr(['images', 'unmount', '--rm', mnt], { namespace: ns })).toMatchObject({ code: 0 });
      }
    }
    expect(trees[0].map((e) => e.path)).toEqual(['bin', 'bin/busybox', 'etc', 'etc/hostname', 'new']);
    const noTimes = (t: TreeEntry[]) => t.map(({ mtime: _m, ...e }) => e);
    expect(noTimes(trees[1])).toEqual(noTimes(trees[0]));
    expect(trees[2].map((e) => e.path)).toEqual(expect.arrayContaining(['bin/sh', 'etc/passwd', 'top', 'link', 'fifo']));
  });

  it('refuses hostile layers with a clear error: nothing outside, no half-committed snapshot, still serving', async () => {
    const escape = `berth-hostile-${process.pid}`;
    const outside = ['/tmp', '/', '/abs-dir'].flatMap((d) => (existsSync(d) ? readdirSync(d).filter((n) => n.startsWith(escape)).map((n) => join(d, n)) : []));
    expect(outside).toEqual([]);
    // containerd clamps escaping names and links into the snapshot and carries on; Berth refuses
    // the layer instead (see @berth/diff applyLayer). The broken streams fail on both.
    const refusal: Record<string, RegExp> = {
      dotdot: /entry "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/berth-hostile-\d+" climbs out of the layer root/,
      absolute: /entry "\/tmp\/berth-hostile-\d+" is absolute/,
      'symlink-root': /"rootlink\/tmp" leads out of the layer root through symlink "rootlink" -> "\/"/,
      'hardlink-outside': /hard link target "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd" climbs out of the layer root/,
    };
    for (const kind of HOSTILE_KINDS) {
      const tar = await buildHostileImage(fixtures, kind, escape);
      const [ours, theirs] = await Promise.all(daemons().map((d) => d.ctr(['images', 'import', tar], { namespace: 'hostile' })));
      if (refusal[kind]) {
        expect({ kind, code: ours.code }).toEqual({ kind, code: 1 });
        expect(ours.stderr).toMatch(/ctr: failed to extract layer sha256:[0-9a-f]{64}: /);
        expect(ours.stderr).toMatch(refusal[kind]);
      } else {
        expect({ kind, code: ours.code }).toEqual({ kind, code: theirs.code });
        if (ours.code !== 0) expect(ours.stderr).toMatch(/ctr: (failed to extract layer|wrong diff id)/);
      }
    }
    const after = ['/tmp', '/'].flatMap((d) => readdirSync(d).filter((n) => n.startsWith(escape)));
    expect(after).toEqual([]);
    expect(existsSync('/abs-dir')).toBe(false);
    // Only committed chains (the benign base layer): no extract-* actives left behind.
    const snaps = await berthd.ctr(['snapshots', 'ls'], { namespace: 'hostile' });
    expect(snaps.stdout).not.toMatch(/extract-|Active/);
    expect(snaps.stdout.trim().split('\n')).toHaveLength(2);
    expect((await berthd.ctr(['version'])).code).toBe(0);
    rmSync(join(fixtures, 'hostile-dotdot.tar'), { force: true });
  });
});
