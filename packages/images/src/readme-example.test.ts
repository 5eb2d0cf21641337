import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { unmountAll } from '@berth/mount';
import { tempDir } from '@berth/testing';
// tools/ packages are not in jest's @berth/* source mapping for relative use; the index is mapped.
import { BUSYBOX_IMAGE, buildBusyboxImage } from '@berth/fixtures';
import { unpackTarball } from '../examples/unpack-tarball';

/** The README's library example, run as written: import busybox, unpack, mount a view. */
describe('README example: import and unpack a tarball without the daemon', () => {
  it.each(['docker', 'oci'] as const)('imports the busybox %s archive, unpacks it and mounts a view with /bin/busybox', async (format) => {
    const work = tempDir('berth-images-example-');
    const rootfs = join(work.path, 'rootfs');
    try {
      const tar = await buildBusyboxImage(join(work.path, 'fixtures'), { format });
      const name = await unpackTarball(tar, join(work.path, 'root'), rootfs);
      expect(name).toBe(BUSYBOX_IMAGE);
      expect(statSync(join(rootfs, 'bin/busybox')).mode & 0o777).toBe(0o755);
      expect(readFileSync(join(rootfs, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    } finally {
      if (existsSync(rootfs)) await unmountAll(rootfs).catch(() => undefined);
      work.remove();
    }
  });
});
