import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@berth/testing';
import { networkReady } from '../examples/network-ready';

describe('README example: network readiness from a CNI config directory', () => {
  it('is not ready without a config, and ready once one loads', async () => {
    const dir = tempDir('berth-cri-example-');
    try {
      expect(await networkReady(dir.path)).toEqual({ ready: false, reason: 'NetworkPluginNotReady', message: 'Network plugin returns error: cni plugin not initialized' });
      writeFileSync(join(dir.path, '10-pods.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'pods', plugins: [{ type: 'bridge' }] }));
      expect(await networkReady(dir.path)).toEqual({ ready: true, reason: '', message: '' });
    } finally {
      dir.remove();
    }
  });
});
