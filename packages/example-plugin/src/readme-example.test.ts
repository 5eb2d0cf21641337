import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logEvents } from '../examples/load-as-berthd-does';

describe('README example: the module loaded as berthd loads plugin_modules', () => {
  it('joins the graph after the exchange and logs the events its filters match', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-example-plugin-'));
    try {
      expect(await logEvents(dir)).toEqual({
        status: ['io.containerd.event.v1.exchange ok', 'io.containerd.internal.v1.event-log ok'],
        topics: ['/namespaces/create', '/namespaces/delete'],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
