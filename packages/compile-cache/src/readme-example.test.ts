import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const EXAMPLE = join(__dirname, '../examples/require-cached.ts');

describe('README example: a module loaded through the code cache', () => {
  it('is the code the README shows', () => {
    const readme = readFileSync(join(__dirname, '../README.md'), 'utf8');
    expect(readme).toContain(readFileSync(EXAMPLE, 'utf8').trim());
  });

  it('compiles the module in the first process and serves the second from the cache', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-compile-cache-example-'));
    try {
      const entry = join(dir, 'greet.js');
      writeFileSync(entry, "exports.greet = (name) => 'hello ' + name;\n");
      // Each start is its own process, with the example's TypeScript loaded by esbuild-register.
      const start = async () => {
        const script = `
          const { requireCached } = require(${JSON.stringify(EXAMPLE)});
          const { module, fromCache } = requireCached(${JSON.stringify(join(dir, 'cache'))}, ${JSON.stringify(entry)});
          process.stdout.write(JSON.stringify({ said: module.greet('berth'), fromCache }));`;
        const { stdout } = await run(process.execPath, ['-r', 'esbuild-register', '-e', script], { cwd: join(__dirname, '..') });
        return JSON.parse(stdout) as { said: string; fromCache: number };
      };
      expect(await start()).toEqual({ said: 'hello berth', fromCache: 0 });
      expect(await start()).toEqual({ said: 'hello berth', fromCache: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
