import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@berth/testing';
import { WALK_LIMIT, diskUsage, walkUsage } from './fs-util';

describe('diskUsage', () => {
  it('counts what the walk counts: blocks of distinct inodes, hard links once, byte names, the root included', async () => {
    const dir = tempDir('berth-du-');
    try {
      const root = join(dir.path, 'tree');
      await fsp.mkdir(join(root, 'a/b'), { recursive: true });
      await fsp.writeFile(join(root, 'a/b/file'), Buffer.alloc(100_000, 1));
      await fsp.link(join(root, 'a/b/file'), join(root, 'a/hardlink'));
      await fsp.symlink('b/file', join(root, 'a/symlink'));
      await fsp.writeFile(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0xe9, 0xff])]), 'not utf-8');
      const sparse = await fsp.open(join(root, 'sparse'), 'w');
      await sparse.truncate(10 << 20);
      await sparse.close();

      const walked = await walkUsage(root);
      expect(walked?.inodes).toBe(7);
      expect(await diskUsage(root)).toEqual(walked);
      // Past the walk's limit du counts: the same figures.
      await fsp.mkdir(join(root, 'many'));
      for (let i = 0; i < WALK_LIMIT; i++) await fsp.writeFile(join(root, 'many', String(i)), 'x');
      expect(await walkUsage(root, WALK_LIMIT)).toBeUndefined();
      expect(await diskUsage(root)).toEqual(await walkUsage(root));
    } finally {
      dir.remove();
    }
  });

  it('fails for a missing tree', async () => {
    await expect(diskUsage('/nonexistent/berth-du')).rejects.toThrow(/ENOENT/);
  });
});
