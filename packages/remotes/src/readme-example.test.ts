import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, multiLayerSpec } from '@berth/fixtures';
import { chainIds } from '@berth/images';
import { TestRegistry, tempDir } from '@berth/testing';
import { pullAndUnpack } from '../examples/pull-and-unpack';
import { RegistryClient } from './registry-client';
import { staticHosts } from './static-hosts';

/** The README's example, run as written against Debian's docker-registry on loopback. */
describe('README example: pull and unpack without the daemon', () => {
  it('is the code the README shows', () => {
    const readme = readFileSync(join(__dirname, '../README.md'), 'utf8');
    const code = readFileSync(join(__dirname, '../examples/pull-and-unpack.ts'), 'utf8');
    expect(readme).toContain(code.trim());
  });

  it('pulls the multi-layer image from a registry and unpacks it; a second run finds it all stored', async () => {
    const registry = await TestRegistry.start();
    const work = tempDir('berth-remotes-example-');
    try {
      const img = await buildImage(multiLayerSpec());
      const ref = `${registry.host}/berth/multi:1`;
      const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
      for (const d of [...img.layers, img.config]) await client.push(ref, d, img.blobs.get(d.digest)!);
      await client.push(ref, img.manifest, img.blobs.get(img.manifest.digest)!);
      await client.close();

      const root = join(work.path, 'root');
      const top = chainIds(img.diffIds).pop();
      expect(await pullAndUnpack(ref, root, { plainHttp: true })).toBe(top);
      expect(await pullAndUnpack(ref, root, { plainHttp: true })).toBe(top);
    } finally {
      await registry.stop();
      work.remove();
    }
  });
});
