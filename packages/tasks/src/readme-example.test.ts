import { tempDir } from '@berth/testing';
import { tasksWithoutShims } from '../examples/tasks-without-shims';

describe('README example: the tasks service before any shim runs', () => {
  it('lists no task, answers NotFound for a container without one, and refuses a runtime not installed', async () => {
    const dir = tempDir('berth-tasks-example-');
    try {
      expect(await tasksWithoutShims(dir.path)).toEqual({
        tasks: 0,
        get: 'task web not found',
        create:
          'failed to start shim: failed to resolve runtime path: runtime "io.example.missing.v1" binary not installed "containerd-shim-missing-v1": file does not exist',
      });
    } finally {
      dir.remove();
    }
  });
});
