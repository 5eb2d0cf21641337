import * as fs from 'node:fs';
import { join } from 'node:path';
import { applyLayer } from './apply';
import { writeDiff, writeOverlayDiff } from './diff';
import { TarType } from './tar';
import { buildTar, chunks, readAll, sh, tempDir } from './test-helpers';
import { describeTree } from './tree';

let dir: string;
const mounts: string[] = [];
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => {
  for (const m of mounts.splice(0)) sh(`umount ${m} 2>/dev/null || umount -l ${m}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function diffBytes(fn: (sink: (b: Buffer) => void) => Promise<{ digest: string; size: number }>) {
  const parts: Buffer[] = [];
  const res = await fn((b) => {
    parts.push(Buffer.from(b));
  });
  const tar = Buffer.concat(parts);
  expect(res.size).toBe(tar.length);
  return tar;
}

function mountOverlay(lowers: string[], upper: string, work: string, target: string): void {
  sh(`/bin/mount -t overlay overlay -o lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work} ${target}`);
  mounts.push(target);
}

const layer1 = () => buildTar([
  [{ name: 'etc/', type: TarType.Directory, mode: 0o755, mtime: { sec: 100, nsec: 0 } }],
  [{ name: 'etc/passwd', mtime: { sec: 100, nsec: 0 } }, 'root\n'],
  [{ name: 'etc/group', xattrs: new Map([['user.g', Buffer.from('1')]]) }, 'g\n'],
  [{ name: 'var/', type: TarType.Directory, mode: 0o700, uid: 3, gid: 4 }],
  [{ name: 'var/cache/', type: TarType.Directory }],
  [{ name: 'var/cache/a' }, 'a'], [{ name: 'var/cache/b/', type: TarType.Directory }], [{ name: 'var/cache/b/c' }, 'c'],
  [{ name: 'bin/', type: TarType.Directory }], [{ name: 'bin/sh', mode: 0o755 }, 'sh'], [{ name: 'bin/ls', type: TarType.HardLink, linkname: 'bin/sh' }],
  [{ name: 'old' }, 'old'],
]);

const layer2 = () => buildTar([
  [{ name: '.wh.old' }],
  [{ name: 'var/cache/', type: TarType.Directory, mode: 0o750 }], [{ name: 'var/cache/.wh..wh..opq' }], [{ name: 'var/cache/new' }, 'new'],
  // No entry for var/log/: it is created implicitly and must take var's attributes from below.
  [{ name: 'var/log/x' }, 'log'],
  [{ name: 'bin/sh2', type: TarType.HardLink, linkname: 'bin/sh' }],
  [{ name: 'etc/.wh.group' }],
]);

describe('overlay upperdir apply', () => {
  it('applies two layers into two upper dirs; the mounted overlay shows deletions and opaque dirs', async () => {
    const [u1, u2, u3, work, mnt, plain] = ['u1', 'u2', 'u3', 'work', 'mnt', 'plain'].map((n) => join(dir, n));
    for (const d of [u1, u2, u3, work, mnt, plain]) fs.mkdirSync(d);
    const l1 = await layer1();
    const l2 = await layer2();
    await applyLayer(u1, chunks(l1, 1000), { overlay: true });
    await applyLayer(u2, chunks(l2, 1000), { overlay: true, parents: [u1] });
    expect(fs.statSync(join(u2, 'old')).isCharacterDevice()).toBe(true);
    expect(fs.statSync(join(u2, 'old')).rdev).toBe(0);
    expect(sh(`getfattr --absolute-names -n trusted.overlay.opaque --only-values ${u2}/var/cache`)).toBe('y');
    expect(fs.statSync(join(u2, 'var')).mode & 0o7777).toBe(0o700); // copied from the lower, not 0755

    // The same layers applied to a plain directory are the reference.
    await applyLayer(plain, chunks(l1, 1000));
    await applyLayer(plain, chunks(l2, 1000));
    mountOverlay([u2, u1], u3, work, mnt);
    // Directory mtimes are "now" where this layer added or removed children, in both modes.
    const merged = await describeTree(mnt, { mtimes: false });
    expect(merged.map((e) => e.path)).toEqual([
      'bin', 'bin/ls', 'bin/sh', 'bin/sh2', 'etc', 'etc/passwd', 'var', 'var/cache', 'var/cache/new', 'var/log', 'var/log/x',
    ]);
    // Hard-link groups differ (overlay copies up bin/sh); everything else is the same tree.
    const strip = (t: typeof merged) => t.map(({ linkedTo: _l, ...e }) => e);
    expect(strip(merged)).toEqual(strip(await describeTree(plain, { mtimes: false })));
    expect(fs.statSync(join(mnt, 'etc/passwd')).mtimeMs).toBe(100_000);

    // Change things through the mount, then read the layer straight from the upper directory.
    fs.rmSync(join(mnt, 'etc/passwd'));
    fs.rmSync(join(mnt, 'var/cache'), { recursive: true });
    fs.mkdirSync(join(mnt, 'var/cache'));
    fs.writeFileSync(join(mnt, 'var/cache/fresh'), 'fresh');
    fs.appendFileSync(join(mnt, 'bin/sh'), '-v2');
    sh(`setfattr -n user.new -v 1 ${mnt}/var/log/x`);
    const tar = await diffBytes((s) => writeOverlayDiff(u3, s));
    const names = (await readAll(tar)).map((e) => e.header.name);
    expect(names).toEqual(expect.arrayContaining(['etc/.wh.passwd', 'var/cache/', 'var/cache/.wh..wh..opq', 'var/cache/fresh', 'bin/sh']));
    expect(names.indexOf('var/cache/.wh..wh..opq')).toBe(names.indexOf('var/cache/') + 1);
    await applyLayer(plain, chunks(tar, 3000));
    const after = await describeTree(mnt);
    expect(strip(await describeTree(plain)).map(({ mtime: _m, ...e }) => e)).toEqual(strip(after).map(({ mtime: _m, ...e }) => e));
    expect((await diffBytes((s) => writeOverlayDiff(u3, s))).equals(tar)).toBe(true);
  });
});

describe('an opaque whiteout at the layer root', () => {
  const base = () => buildTar([
    [{ name: 'etc/', type: TarType.Directory, mode: 0o700 }], [{ name: 'etc/passwd' }, 'root\n'], [{ name: 'etc/group' }, 'g\n'],
    [{ name: 'bin/', type: TarType.Directory }], [{ name: 'bin/sh', mode: 0o755 }, 'sh'], [{ name: 'top' }, 'top'],
    [{ name: 'link', type: TarType.Symlink, linkname: 'top' }],
  ]);
  // Written before and after the opaque entry: both must hide what is below.
  const opaqueRoot = () => buildTar([
    [{ name: 'etc/', type: TarType.Directory, mode: 0o755 }], [{ name: 'etc/hostname' }, 'new\n'],
    [{ name: '.wh..wh..opq' }],
    [{ name: 'new' }, 'new'], [{ name: 'bin/busybox', mode: 0o755 }, 'bb'],
  ]);
  const expected = ['bin', 'bin/busybox', 'etc', 'etc/hostname', 'new'];

  it('hides everything of the lower layers: natively, and through overlay upper dirs under a real mount', async () => {
    const [plain, u1, u2, mnt] = ['plain', 'u1', 'u2', 'mnt'].map((n) => join(dir, n));
    for (const d of [plain, u1, u2, mnt]) fs.mkdirSync(d);
    const [l1, l2] = [await base(), await opaqueRoot()];
    await applyLayer(plain, chunks(l1, 1000));
    const native = await applyLayer(plain, chunks(l2, 1000));
    expect(native.dependsOnParents.opaqueRoot).toBe(true);
    expect((await describeTree(plain)).map((e) => e.path)).toEqual(expected);

    await applyLayer(u1, chunks(l1, 1000), { overlay: true });
    await applyLayer(u2, chunks(l2, 1000), { overlay: true, parents: [u1] });
    sh(`/bin/mount -t overlay overlay -o lowerdir=${u2}:${u1} ${mnt}`);
    mounts.push(mnt);
    const merged = await describeTree(mnt, { mtimes: false });
    expect(merged.map((e) => e.path)).toEqual(expected);
    const strip = (t: typeof merged) => t.map(({ mtime: _m, ...e }) => e);
    expect(strip(merged)).toEqual(strip(await describeTree(plain, { mtimes: false })));

    // The upper's layer gives the opaque root back, without the whiteouts that express it.
    const names = (await readAll(await diffBytes((s) => writeOverlayDiff(u2, s)))).map((e) => e.header.name);
    expect(names).toEqual(['.wh..wh..opq', 'bin/', 'bin/.wh..wh..opq', 'bin/busybox', 'etc/', 'etc/.wh..wh..opq', 'etc/hostname', 'new']);
    // And applied again over the same lower, it hides the same things.
    const again = join(dir, 'again');
    fs.mkdirSync(again);
    await applyLayer(again, chunks(await diffBytes((s) => writeOverlayDiff(u2, s)), 1000), { overlay: true, parents: [u1] });
    const mnt2 = join(dir, 'mnt2');
    fs.mkdirSync(mnt2);
    sh(`/bin/mount -t overlay overlay -o lowerdir=${again}:${u1} ${mnt2}`);
    mounts.push(mnt2);
    expect((await describeTree(mnt2)).map((e) => e.path)).toEqual(expected);
  });
});

describe('writeDiff', () => {
  it('round-trips: diff(lower, upper) applied onto a copy of lower gives upper', async () => {
    const lower = join(dir, 'lower');
    fs.mkdirSync(lower);
    await applyLayer(lower, chunks(await layer1(), 4096));
    sh(`mknod ${lower}/dev c 1 3 && ln -s etc/passwd ${lower}/pw && mkdir -p ${lower}/gone/deep && echo x > ${lower}/gone/deep/f`);
    sh(`touch -d '2020-01-01 00:00:00' ${lower}/etc/passwd`); // whole-second mtime: content decides
    const upper = join(dir, 'upper');
    sh(`cp -a ${lower} ${upper}`);
    // Changes of every kind.
    fs.rmSync(join(upper, 'old'));
    fs.rmSync(join(upper, 'gone'), { recursive: true });
    fs.writeFileSync(join(upper, 'etc/passwd'), 'ROOT\n'); // same size
    sh(`touch -d '2020-01-01 00:00:00' ${upper}/etc/passwd`); // and same mtime
    fs.chmodSync(join(upper, 'bin/sh'), 0o4755);
    fs.lchownSync(join(upper, 'pw'), 9, 9);
    sh(`setfattr -n user.g -v 2 ${upper}/etc/group && setfattr -n trusted.t -v 1 ${upper}/var`);
    fs.linkSync(join(upper, 'var/cache/a'), join(upper, 'zlink')); // new name for an unchanged file
    fs.rmSync(join(upper, 'var/cache/b'), { recursive: true });
    fs.writeFileSync(join(upper, 'var/cache/b'), 'dir became file');
    fs.rmSync(join(upper, 'dev'));
    fs.mkdirSync(join(upper, 'dev/sub'), { recursive: true });
    fs.symlinkSync('/nowhere', join(upper, 'dev/sub/dangling'));
    sh(`mkfifo ${upper}/fifo && mknod ${upper}/blk b 7 9`);
    fs.writeFileSync(join(upper, 'big'), Buffer.alloc(1_000_000, 1));

    const tar = await diffBytes((s) => writeDiff(lower, upper, s));
    const entries = await readAll(tar);
    const byName = new Map(entries.map((e) => [e.header.name, e.header]));
    expect(byName.get('.wh.old')).toBeDefined();
    expect(byName.get('.wh.gone')).toBeDefined();
    expect([...byName.keys()].some((n) => n.startsWith('gone/'))).toBe(false);
    // The unchanged var/cache/a now shares its inode with the new zlink: written once, linked once.
    expect(byName.get('zlink')?.type).toBe(TarType.File);
    expect(byName.get('var/cache/a')).toMatchObject({ type: TarType.HardLink, linkname: 'zlink' });
    expect(byName.get('etc/group')?.xattrs.get('user.g')?.toString()).toBe('2');
    expect(byName.has('etc/passwd')).toBe(true);
    expect(byName.has('bin/ls')).toBe(true); // hard link to the changed bin/sh

    const target = join(dir, 'target');
    sh(`cp -a ${lower} ${target}`);
    await applyLayer(target, chunks(tar, 5000));
    expect(await describeTree(target)).toEqual(await describeTree(upper));

    // Deterministic, and GNU tar reads it.
    expect((await diffBytes((s) => writeDiff(lower, upper, s))).equals(tar)).toBe(true);
    fs.writeFileSync(join(dir, 'd.tar'), tar);
    expect(sh('tar -tvf d.tar', dir)).toContain('zlink');
    // No changes, no entries.
    sh(`cp -a ${upper} ${dir}/copy`);
    expect((await readAll(await diffBytes((s) => writeDiff(upper, join(dir, 'copy'), s)))).length).toBe(0);
  });
});
