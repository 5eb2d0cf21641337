import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const packagesDir = join(__dirname, '..', '..');

/**
 * Loads the client's entry in a fresh Node process (sources via esbuild-register), optionally
 * calls `connect` on a socket nobody serves, and lists the heavy modules it loaded.
 */
function heavyModulesLoaded(connect: boolean): { grpc: number; api: number } {
  const script = `
    const Module = require('node:module');
    const path = require('node:path');
    require('esbuild-register/dist/node').register({ target: 'node20' });
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      const m = /^@berth\\/([a-z0-9-]+)(?:\\/([a-z0-9-]+))?$/.exec(request);
      if (m) request = path.join(${JSON.stringify(packagesDir)}, m[1], 'src', (m[2] ?? 'index') + '.ts');
      return resolve.call(this, request, ...rest);
    };
    const client = require(${JSON.stringify(join(__dirname, 'index.ts'))});
    const report = () => {
      const files = Object.keys(require.cache);
      process.stdout.write(JSON.stringify({ grpc: files.filter((f) => f.includes('/@grpc/grpc-js/')).length, api: files.filter((f) => f.includes('/packages/api/')).length }));
    };
    if (${connect}) client.connect({ address: '/nonexistent/berth.sock', timeout: 50 }).catch(report);
    else report();
  `;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: join(packagesDir, '..'), encoding: 'utf8' }));
}

describe('the cost of importing @berth/client', () => {
  it('the entry loads neither grpc-js nor the generated messages (spec helpers are usable without them)', () => {
    expect(heavyModulesLoaded(false)).toEqual({ grpc: 0, api: 0 });
  });

  it('connect() loads them (so the check above can fail)', () => {
    const loaded = heavyModulesLoaded(true);
    expect(loaded.grpc).toBeGreaterThan(0);
    expect(loaded.api).toBeGreaterThan(0);
  });
});
