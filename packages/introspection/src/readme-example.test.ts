import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listPlugins } from '../examples/list-plugins';

describe('README example: introspecting a loaded plugin set', () => {
  it('lists the plugins of one type with their status, and keeps the server UUID', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-introspection-example-'));
    try {
      expect(await listPlugins(dir)).toEqual({
        plugins: ['starts ok', 'skips skip (nothing to do on this host: skip plugin)', 'fails error (config file missing)'],
        sameUuid: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
