import { tempDir } from '@berth/testing';
import { storeBlob } from '../examples/store-blob';
import { digestOf } from './digest';

describe('README example: a blob in the local store', () => {
  it('commits the chunks against their digest, refuses a second write and reads back', async () => {
    const dir = tempDir('berth-content-example-');
    try {
      const chunks = ['{"schemaVersion":2,', '"layers":[]}'];
      expect(await storeBlob(dir.path, chunks)).toEqual({ digest: digestOf(chunks.join('')), size: 31, again: 'already exists', tail: '":[]}' });
    } finally {
      dir.remove();
    }
  });
});
