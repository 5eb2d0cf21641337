import { BUSYBOX_IMAGE, buildBusyboxImage, busyboxImage } from '@berth/fixtures';
import { TestDaemon, tempDir } from '@berth/testing';
import { cleanUpNamespace } from '../examples/namespace-cleanup';

describe('README example: usage, explain and cascade delete of a namespace', () => {
  const work = tempDir('berth-system-example-');
  let d: TestDaemon;
  afterAll(async () => {
    await d?.cleanup();
    work.remove();
  });

  it('measures the namespace, names what keeps its layer, and removes it all', async () => {
    d = await TestDaemon.start({ logLevel: 'info' });
    const img = await busyboxImage();
    const imported = await d.ctr(['images', 'import', await buildBusyboxImage(work.path)], { namespace: 'scratch', timeoutMs: 60_000 });
    expect(imported.code).toBe(0);

    const result = await cleanUpNamespace(d.address, 'scratch', img.layers[0].digest);
    expect(result.exclusiveBytes).toBeGreaterThan(1_000_000);
    expect(result.keptBy).toEqual([
      `images ${BUSYBOX_IMAGE} (root)`,
      `blobs ${img.manifest.digest} (target)`,
      `blobs ${img.layers[0].digest} (label containerd.io/gc.ref.content.l.0)`,
    ]);
    // The collector may take the blobs and the layer snapshot once the image is gone, before the
    // cascade reaches them (the daemon's collector runs on deletions): they count where removed.
    expect(result.removed).toMatchObject({ tasks: 0, containers: 0, images: 1, leases: 0, ingests: 0 });
    expect(result.removed.snapshots + result.removed.blobs).toBeLessThanOrEqual(4);
    expect((await d.ctr(['namespaces', 'ls', '-q'])).stdout).toBe('');
  }, 120_000);
});
