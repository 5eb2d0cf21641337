import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerRecords } from '../examples/container-records';

describe('README example: container records', () => {
  it('finds by label, refuses a duplicate id, and publishes each change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-containers-example-'));
    try {
      expect(await containerRecords(dir)).toEqual({
        found: ['worker'],
        again: 'container "web": already exists',
        events: ['/containers/create', '/containers/create', '/containers/update', '/containers/delete', '/containers/delete'],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
