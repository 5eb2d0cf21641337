import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffAndApply } from '../examples/diff-and-apply';

describe('README example: a layer from two trees, applied onto a third', () => {
  it('turns a copy of the old tree into the new one, with the same diff ID on both sides', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-diff-example-'));
    try {
      const r = await diffAndApply(dir);
      expect(r.written).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(r).toEqual({ written: r.written, applied: r.written, files: ['a.txt', 'c.txt'], a: 'two\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
