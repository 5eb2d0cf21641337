import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { namespaceLifecycle } from '../examples/namespace-lifecycle';

describe('README example: a namespace created, relabelled and deleted', () => {
  it('applies label paths one by one and publishes an event per change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-namespaces-example-'));
    try {
      expect(await namespaceLifecycle(dir)).toEqual({
        labels: { tier: 'gold' },
        events: ['ci /namespaces/create', 'ci /namespaces/update', 'ci /namespaces/delete'],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
