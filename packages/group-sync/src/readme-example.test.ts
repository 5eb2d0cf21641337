import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { writeGrouped } from '../examples/grouped-writes';

describe('README example: grouped durability', () => {
  it('waits for one flush that covers every commit, and the records are there when reopened', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-group-sync-'));
    try {
      const path = join(dir, 'example.lmdb');
      expect(await writeGrouped(path, 100)).toBe(100);
      const env = open<string, string>({ path });
      try {
        expect(env.get('key-0')).toBe('value 0');
        expect(env.get('key-99')).toBe('value 99');
      } finally {
        await env.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
