import { fileSystemOf } from '../examples/mount-info';

describe('README example: run a helper off the event loop', () => {
  it('reports the file system of /proc, and a path findmnt refuses as an error', async () => {
    expect(await fileSystemOf('/proc')).toBe('proc');
    await expect(fileSystemOf('/no/such/path/at/all')).rejects.toThrow(/findmnt \/no\/such\/path\/at\/all/);
  });
});
