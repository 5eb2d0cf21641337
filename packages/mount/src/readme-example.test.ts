import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeLayers } from '../examples/merge-layers';
import { unmountAll } from './mount';

describe('README example: an overlay of two layers', () => {
  it('shows both layers merged, and keeps what was written in the upper directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-mount-example-'));
    try {
      expect(await mergeLayers(dir)).toEqual({ merged: ['app.js', 'hostname', 'written'], mounted: true, upper: ['written'] });
      expect(readdirSync(dir).sort()).toEqual(['lower', 'middle', 'upper', 'work']);
    } finally {
      await unmountAll(dir, { lazyFallback: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
