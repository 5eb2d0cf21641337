import { tempDir } from '@berth/testing';
import { forwardEvents } from '../examples/forward-events';

describe('README example: a shim forwarding events over ttrpc', () => {
  it('delivers each envelope with the namespace of the call', async () => {
    const dir = tempDir('berth-ttrpc-example-');
    try {
      expect(await forwardEvents(dir.path, ['/tasks/start', '/tasks/exit'])).toEqual(['default default /tasks/exit', 'default default /tasks/start']);
    } finally {
      dir.remove();
    }
  });
});
