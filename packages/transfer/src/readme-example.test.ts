import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, multiLayerSpec } from '@berth/fixtures';
import { TestRegistry, tempDir } from '@berth/testing';
import { pullIntoStores } from '../examples/pull-into-stores';
import { seed } from './test-support';

/** The README's example, run as written against Debian's docker-registry on loopback. */
describe('README example: pull into stores without the daemon', () => {
  it('is the code the README shows', () => {
    const readme = readFileSync(join(__dirname, '../README.md'), 'utf8');
    const code = readFileSync(join(__dirname, '../examples/pull-into-stores.ts'), 'utf8');
    expect(readme).toContain(code.trim());
  });

  it('pulls the multi-layer image, unpacking it, and records it by name', async () => {
    const registry = await TestRegistry.start();
    const work = tempDir('berth-transfer-example-');
    try {
      const img = await buildImage(multiLayerSpec());
      await seed(registry, 'berth/multi', '1', img);
      const events: string[] = [];
      const digest = await pullIntoStores(`${registry.host}/berth/multi:1`, work.path, (e) => void events.push(e.event));
      expect(digest).toBe(img.manifest.digest);
      expect(events.filter((e) => e === 'extracted')).toHaveLength(img.layers.length);
      expect(events[events.length - 1]).toBe(`Completed pull from OCI Registry (${registry.host}/berth/multi:1)`);
    } finally {
      await registry.stop();
      work.remove();
    }
  });
});
