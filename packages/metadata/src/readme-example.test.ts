import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordImages } from '../examples/image-records';

describe('README example: image records in the metadata database', () => {
  it('keeps records per namespace across a reopen, and lists them with a filter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-metadata-example-'));
    try {
      expect(await recordImages(dir)).toEqual({ namespaces: ['builds', 'default'], web: ['example.com/web:1 sha256:11111'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
