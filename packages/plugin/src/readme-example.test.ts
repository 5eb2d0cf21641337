import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGreeters } from '../examples/wrap-a-provider';

describe('README example: a provider wrapped through the same token', () => {
  it('loads in dependency order and hands the app the wrapper', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-plugin-example-'));
    try {
      expect(await loadGreeters(dir)).toEqual({
        order: ['io.example.greeter.v1.plain ok', 'io.example.greeter.v1.loud ok', 'io.example.app.v1.app ok'],
        said: 'HELLO BERTH!',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
