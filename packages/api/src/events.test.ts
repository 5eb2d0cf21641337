import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const packagesDir = join(__dirname, '..', '..');
const repoRoot = join(packagesDir, '..');

/**
 * Loads `entry` in a fresh Node process (plain CommonJS loader, TypeScript via esbuild-register,
 * @berth/* mapped to sources) and returns every loaded file under @grpc/grpc-js. A child process
 * sees exactly what a consumer's process would load, submodules included.
 */
function grpcFilesLoadedBy(entry: string): string[] {
  const script = `
    const Module = require('node:module');
    const path = require('node:path');
    require('esbuild-register/dist/node').register({ target: 'node20' });
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      const m = /^@berth\\/([a-z0-9-]+)$/.exec(request);
      if (m) request = path.join(${JSON.stringify(packagesDir)}, m[1], 'src', 'index.ts');
      return resolve.call(this, request, ...rest);
    };
    require(${JSON.stringify(entry)});
    const loaded = Object.keys(require.cache).filter((f) => f.includes('/@grpc/grpc-js/'));
    process.stdout.write(JSON.stringify(loaded));
  `;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: repoRoot, encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

describe('@berth/api/events entry point', () => {
  it('loads no @grpc/grpc-js module', () => {
    expect(grpcFilesLoadedBy(join(__dirname, 'events.ts'))).toEqual([]);
  });

  it('detects grpc-js when it is loaded (the full index does load it)', () => {
    expect(grpcFilesLoadedBy(join(__dirname, 'index.ts')).length).toBeGreaterThan(0);
  });

  it('exports every event payload, the envelopes and the helpers', () => {
    const events = require('./events') as Record<string, unknown>;
    for (const name of [
      'ContainerCreate', 'ContainerUpdate', 'ContainerDelete', 'ContentDelete',
      'NamespaceCreate', 'NamespaceUpdate', 'NamespaceDelete',
      'SnapshotPrepare', 'SnapshotCommit', 'SnapshotRemove',
      'TaskCreate', 'TaskStart', 'TaskDelete', 'TaskExit', 'TaskOOM', 'TaskExecAdded',
      'TaskExecStarted', 'TaskPaused', 'TaskResumed', 'TaskCheckpointed',
      'ImageCreate', 'ImageUpdate', 'ImageDelete', 'Envelope', 'TtrpcEnvelope', 'Any',
      'packAny', 'unpackAny', 'unpackAnyAs', 'typeUrlOf', 'packJsonAny', 'unpackJsonAny',
      'isZeroTime', 'orZeroTime', 'GO_ZERO_TIME',
    ]) {
      expect(events).toHaveProperty(name);
    }
  });
});
