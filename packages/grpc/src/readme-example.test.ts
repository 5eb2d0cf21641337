import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askVersion } from '../examples/serve-version';

describe('README example: a service on a unix socket', () => {
  it('answers a call, and a handler error reaches the client as the same kind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-grpc-example-'));
    try {
      expect(await askVersion(dir)).toEqual({ version: '1.6.20-example', failure: 'NotFoundError: version of a second call: not found' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
