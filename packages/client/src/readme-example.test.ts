import { busyboxImage } from '@berth/fixtures';
import { TestDaemon, TestRegistry, cleanupShims } from '@berth/testing';
import { pullAndRun } from '../examples/pull-and-run';
import { seed } from './test-support';

/** The README's example, run as printed against a real berthd and a loopback registry. */
describe('README example: pull with progress, then run echo hello', () => {
  let registry: TestRegistry;
  let daemon: TestDaemon;

  beforeAll(async () => {
    registry = await TestRegistry.start();
    await seed(registry, 'library/busybox', '1', await busyboxImage());
    daemon = await TestDaemon.start();
  }, 120_000);

  afterAll(async () => {
    if (daemon) {
      await daemon.stop();
      await cleanupShims(daemon.address, daemon.dir);
      await daemon.cleanup();
    }
    await registry?.stop();
  }, 60_000);

  it('prints the layer extracted, the image saved, and hello', async () => {
    const ref = `${registry.host}/library/busybox:1`;
    const image = await busyboxImage();
    const r = await pullAndRun(daemon.address, ref);
    expect(r).toEqual({ progress: expect.arrayContaining([`layer ${image.layers[0].digest.slice(7, 19)} extracted`, `saved ${ref}`]), output: 'hello\n', code: 0 });
  });
});
