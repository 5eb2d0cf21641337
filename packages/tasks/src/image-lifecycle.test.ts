import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '@berth/fixtures';
import { TestDaemon, tempDir } from '@berth/testing';
import { cleanupShims } from './test-support';

/**
 * The whole life of an image on one berthd, with its garbage collector on: import (ctr unpacks
 * through the Diff API), run a task from it, remove it with --sync, and find nothing left of
 * it in the content store, the snapshotter or on disk.
 */
describe('image lifecycle: import, run, rm --sync', () => {
  const work = tempDir('berth-lifecycle-');
  let d: TestDaemon;

  beforeAll(async () => {
    d = await TestDaemon.start({ logLevel: 'info' });
  });
  afterAll(async () => {
    if (d) {
      await cleanupShims(d.address, d.dir);
      await d.cleanup();
    }
    work.remove();
  });

  const ok = async (args: string[]) => {
    const res = await d.ctr(args, { timeoutMs: 60_000 });
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.stdout;
  };

  it('imports, runs, and collects everything on rm --sync', async () => {
    const tar = await buildBusyboxImage(work.path);
    await ok(['images', 'import', tar]);
    expect(await ok(['images', 'ls', '-q'])).toBe(`${BUSYBOX_IMAGE}\n`);
    expect((await ok(['snapshots', 'ls'])).trim().split('\n').length).toBe(2); // header + the one layer

    expect(await ok(['run', '--rm', BUSYBOX_IMAGE, 'lifecycle-t1', 'echo', 'hello'])).toBe('hello\n');
    expect(await ok(['containers', 'ls', '-q'])).toBe('');

    await ok(['images', 'rm', '--sync', BUSYBOX_IMAGE]);
    expect(await ok(['content', 'ls', '-q'])).toBe('');
    expect((await ok(['snapshots', 'ls'])).trim().split('\n')).toHaveLength(1);
    const blobs = join(d.root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
    expect(readdirSync(blobs)).toEqual([]);
    const snapshots = join(d.root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    expect(readdirSync(snapshots).filter((e) => /^\d+$/.test(e))).toEqual([]);
  });
});
