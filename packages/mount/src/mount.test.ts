import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactLowerdir, mountAll, unmount, unmountAll, withTempMount } from './mount';
import { isMountPoint, mountsUnder, parseMountInfo } from './mountinfo';

describe('@berth/mount', () => {
  // A temp dir of its own: @berth/testing depends on this package.
  const path = mkdtempSync(join(tmpdir(), 'berth-mount-test-'));
  const dir = { path, remove: () => rmSync(path, { recursive: true, force: true }) };
  afterAll(async () => {
    await unmountAll(dir.path, { lazyFallback: true });
    dir.remove();
  });

  const mk = (...parts: string[]) => {
    const p = join(dir.path, ...parts);
    mkdirSync(p, { recursive: true });
    return p;
  };

  it('parses mountinfo with escaped mount points', () => {
    const infos = parseMountInfo('36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n');
    expect(infos).toEqual([
      { id: 36, parent: 35, mountPoint: '/mnt/a b', options: 'rw,noatime', fsType: 'ext3', source: '/dev/root', superOptions: 'rw,errors=continue' },
    ]);
    expect(mountsUnder('/mnt/a', infos)).toHaveLength(0);
    expect(mountsUnder('/mnt', infos)).toHaveLength(1);
    expect(mountsUnder('/mnt/a b', infos)).toHaveLength(1);
  });

  it('bind-mounts read-write and read-only, and unmounts', async () => {
    const src = mk('bind-src');
    writeFileSync(join(src, 'f'), 'x');
    const rw = mk('bind-rw');
    const ro = mk('bind-ro');
    await mountAll([{ type: 'bind', source: src, options: ['rw', 'rbind'] }], rw);
    await mountAll([{ type: 'bind', source: src, options: ['rbind', 'ro'] }], ro);
    try {
      expect(isMountPoint(rw)).toBe(true);
      writeFileSync(join(rw, 'g'), 'y');
      expect(readFileSync(join(ro, 'g'), 'utf8')).toBe('y');
      expect(() => writeFileSync(join(ro, 'h'), 'z')).toThrow(/EROFS/);
    } finally {
      await unmount(rw);
      await unmountAll(ro);
    }
    expect(isMountPoint(rw)).toBe(false);
    expect(isMountPoint(ro)).toBe(false);
  });

  it('mounts an overlay whose lowerdir list is longer than a page', async () => {
    const base = mk('a-rather-long-directory-name-to-make-the-paths-long', 'snapshots');
    const lowers: string[] = [];
    for (let i = 1; i <= 150; i++) {
      const d = mk('a-rather-long-directory-name-to-make-the-paths-long', 'snapshots', String(i), 'fs');
      writeFileSync(join(d, `f${i}`), String(i));
      writeFileSync(join(d, 'top'), String(i));
      lowers.unshift(d);
    }
    const upper = mk('up', 'fs');
    const work = mk('up', 'work');
    const options = ['index=off', `workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lowers.join(':')}`];
    expect(options.join(',').length).toBeGreaterThan(4096);
    expect(compactLowerdir(options)?.cwd).toBe(base);
    await withTempMount([{ type: 'overlay', source: 'overlay', options }], (m) => {
      expect(readdirSync(m)).toHaveLength(151);
      expect(readFileSync(join(m, 'top'), 'utf8')).toBe('150');
      writeFileSync(join(m, 'new'), 'n');
    });
    expect(readFileSync(join(upper, 'new'), 'utf8')).toBe('n');
  });

  it('withTempMount unmounts and removes its directory when the callback throws', async () => {
    const src = mk('tm-src');
    let seen = '';
    await expect(
      withTempMount([{ type: 'bind', source: src, options: ['rbind', 'ro'] }], (m) => {
        seen = m;
        expect(isMountPoint(m)).toBe(true);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(isMountPoint(seen)).toBe(false);
    expect(existsSync(seen)).toBe(false);
  });

  it('fails clearly for a bad mount and leaves nothing mounted', async () => {
    const t = mk('bad');
    await expect(mountAll([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${join(dir.path, 'missing')}`] }], t)).rejects.toThrow(/mount overlay overlay on/);
    expect(mountsUnder(t)).toHaveLength(0);
  });
});
