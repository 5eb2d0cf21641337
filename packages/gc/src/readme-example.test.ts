import { tempDir } from '@berth/testing';
import { collectUnreferenced } from '../examples/collect-unreferenced';

describe('README example: collecting unreferenced blobs', () => {
  it('keeps what the image reaches and removes the rest, record and file', async () => {
    const dir = tempDir('berth-gc-example-');
    try {
      expect(await collectUnreferenced(dir.path)).toEqual({ removed: { leases: 0, blobs: 1, ingests: 0 }, files: 1, left: ['layer', 'manifest'] });
    } finally {
      dir.remove();
    }
  });
});
