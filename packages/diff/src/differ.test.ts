import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LocalContentStore } from '@berth/content';
import { context } from '@berth/context';
import { WalkingDiffer } from './differ';
import { TarType } from './tar';
import { buildTar, tempDir } from './test-helpers';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('WalkingDiffer.apply', () => {
  it('tells onProgress the compressed bytes it has read, up to the whole blob', async () => {
    const dir = tempDir();
    try {
      const content = await LocalContentStore.open(join(dir, 'content'));
      const payload = randomBytes(3 << 20);
      const layerTar = await buildTar([[{ name: 'data.bin', type: TarType.File, mode: 0o644 }, payload]]);
      const blob = gzipSync(layerTar);
      const w = await content.writer({ ref: 'layer', total: blob.length });
      await w.write(blob);
      await w.commit(blob.length, sha(blob));
      const target = join(dir, 'rootfs');
      mkdirSync(target);

      const seen: number[] = [];
      const differ = new WalkingDiffer(() => content);
      const out = await differ.apply(
        context(),
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(blob), size: blob.length, annotations: {} },
        [{ type: 'bind', source: target, options: ['rbind', 'rw'] }],
        { onProgress: (n) => seen.push(n) },
      );
      expect(out.digest).toBe(sha(layerTar));
      expect(readFileSync(join(target, 'data.bin')).equals(payload)).toBe(true);
      expect(seen.length).toBeGreaterThan(1);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(seen[seen.length - 1]).toBe(blob.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
