import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSystemOf } from '../examples/mount-info';

describe('README example: run a helper off the event loop', () => {
  it('is the code the README shows', () => {
    const readme = readFileSync(join(__dirname, '../README.md'), 'utf8');
    expect(readme).toContain(readFileSync(join(__dirname, '../examples/mount-info.ts'), 'utf8').trim());
  });

  it('reports the file system of /proc, and a path findmnt refuses as an error', async () => {
    expect(await fileSystemOf('/proc')).toBe('proc');
    await expect(fileSystemOf('/no/such/path/at/all')).rejects.toThrow(/findmnt \/no\/such\/path\/at\/all/);
  });
});
