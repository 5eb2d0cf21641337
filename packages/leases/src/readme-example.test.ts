import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holdWhileWriting } from '../examples/hold-while-writing';

describe('README example: a lease held while writing', () => {
  it('lists the lease and what it holds, and a sync delete returns once collected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-leases-example-'));
    try {
      expect(await holdWhileWriting(dir)).toEqual({ leases: ['pull-busybox'], resources: ['content sha256:aaaaaaaa'], after: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
