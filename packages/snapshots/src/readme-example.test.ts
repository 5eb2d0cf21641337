import { tempDir } from '@berth/testing';
import { layerSnapshots } from '../examples/layer-snapshots';

describe('README example: layers with the overlayfs snapshotter', () => {
  it('shows both layers through a view of the top one, the upper file winning', async () => {
    const dir = tempDir('berth-snapshots-example-');
    try {
      expect(await layerSnapshots(dir.path)).toEqual({
        files: ['app.js', 'config.json', 'os-release'],
        config: '{"debug":true}\n',
        snapshots: ['app committed parent=base', 'base committed parent=', 'inspect view parent=app'],
      });
    } finally {
      dir.remove();
    }
  });
});
