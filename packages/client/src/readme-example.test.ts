import { busyboxImage } from '@berth/fixtures';
import { TestDaemon, TestRegistry, cleanupShims } from '@berth/testing';
import { eventsOfARun } from '../examples/events-of-a-run';
import { pullAndRun } from '../examples/pull-and-run';
import { seed } from './test-support';

/** The README's example, run as printed against a real berthd and a loopback registry. */
describe('README examples: pull with progress and run echo hello; events of a run', () => {
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

  it('sees the task created, started, exited and deleted, and the exit code', async () => {
    // After the first case, which pulled the image into the example namespace.
    const r = await eventsOfARun(daemon.address, `${registry.host}/library/busybox:1`);
    expect(r).toEqual({ topics: ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete'], code: 3 });
  });
});
