import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const LIB = join(__dirname, '..', 'dist', 'index.js');

/**
 * Each run is its own Node process, as berthd's starts are: it installs a cache in `cacheDir`,
 * requires the module `entry`, calls its `work()`, optionally saves, and prints what happened.
 */
async function runOnce(cacheDir: string, entry: string, options: { save?: boolean; env?: Record<string, string> } = {}) {
  const script = `
    const { installCompileCache } = require(${JSON.stringify(LIB)});
    const cache = installCompileCache(${JSON.stringify(cacheDir)});
    const m = require(${JSON.stringify(entry)});
    Promise.resolve(m.work()).then((result) => {
      const saved = ${options.save ? 'cache.save()' : 'false'};
      process.stdout.write(JSON.stringify({ result, stats: cache.stats, saved, file: cache.file }));
    });`;
  const { stdout } = await run(process.execPath, ['-e', script], { env: { ...process.env, ...options.env } });
  return JSON.parse(stdout) as { result: unknown; stats: { hits: number; misses: number; rejected: number }; saved: boolean; file: string };
}

/** The cached data length of each module in a cache file. */
function entries(file: string): Record<string, { length: number }> {
  const raw = readFileSync(file);
  return JSON.parse(raw.toString('utf8', 4, 4 + raw.readUInt32LE(0))) as Record<string, { length: number }>;
}

describe('compile cache', () => {
  let dir: string;
  let cacheDir: string;
  let entry: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-compile-cache-test-'));
    cacheDir = join(dir, 'cache');
    entry = join(dir, 'entry.js');
    // A module with a relative require, __dirname and require.resolve, and one with a dynamic
    // import (which Node compiles itself: see install()).
    writeFileSync(join(dir, 'helper.js'), 'exports.twice = (n) => n * 2;\n');
    writeFileSync(join(dir, 'data.mjs'), 'export const value = 21;\n');
    writeFileSync(join(dir, 'dynamic.js'), "exports.value = () => import('./data.mjs').then((m) => m.value);\n");
    writeFileSync(
      entry,
      [
        "const { twice } = require('./helper');",
        "const dynamic = require('./dynamic');",
        "const path = require('node:path');",
        'exports.work = async () => ({',
        '  n: twice(await dynamic.value()),',
        "  dir: path.dirname(require.resolve('./helper')) === __dirname,",
        '});',
        '',
      ].join('\n'),
    );
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('compiles without data at first, serves the next run from the saved file, and modules behave the same', async () => {
    const first = await runOnce(cacheDir, entry, { save: true });
    expect(first.result).toEqual({ n: 42, dir: true });
    expect(first.stats).toEqual({ hits: 0, misses: 2, rejected: 0 }); // entry and helper, not dynamic
    expect(first.saved).toBe(true);
    expect(Object.keys(entries(first.file)).sort()).toEqual([entry, join(dir, 'helper.js')].sort());

    const second = await runOnce(cacheDir, entry);
    expect(second.result).toEqual({ n: 42, dir: true });
    expect(second.stats).toEqual({ hits: 2, misses: 0, rejected: 0 });
  });

  it('compiles a module again when its file changed, and runs the new code', async () => {
    await runOnce(cacheDir, entry, { save: true });
    // Same length, other behaviour, and a later mtime: the cached data must not be used.
    writeFileSync(join(dir, 'helper.js'), 'exports.twice = (n) => n * 3;\n');
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(dir, 'helper.js'), later, later);
    const run2 = await runOnce(cacheDir, entry);
    expect(run2.result).toEqual({ n: 63, dir: true });
    expect(run2.stats).toEqual({ hits: 1, misses: 1, rejected: 0 });
  });

  it('saves what ran, not only what loaded: the data grows once the functions were called', async () => {
    // Saved right after loading (work() not called yet) ...
    const script = `
      const { installCompileCache } = require(${JSON.stringify(LIB)});
      const cache = installCompileCache(${JSON.stringify(cacheDir)});
      const m = require(${JSON.stringify(entry)});
      cache.save();
      process.stdout.write(cache.file);`;
    const { stdout: file } = await run(process.execPath, ['-e', script]);
    const before = entries(file)[join(dir, 'helper.js')].length;
    // ... then by a process that called them: the larger data is kept.
    await runOnce(cacheDir, entry, { save: true });
    expect(entries(file)[join(dir, 'helper.js')].length).toBeGreaterThan(before);
  });

  it('drops the modules of files that changed or went, and keeps other programs\' live ones', async () => {
    const other = join(dir, 'other.js');
    writeFileSync(other, 'exports.work = () => 1;\n');
    await runOnce(cacheDir, other, { save: true });
    const gone = join(dir, 'gone.js');
    writeFileSync(gone, 'exports.work = () => 2;\n');
    const { file } = await runOnce(cacheDir, gone, { save: true });
    rmSync(gone);
    await runOnce(cacheDir, entry, { save: true });
    expect(Object.keys(entries(file)).sort()).toEqual([entry, join(dir, 'helper.js'), other].sort());
  });

  it('leaves ES modules to Node: require() of an .mjs, and ES syntax in a .js file', async () => {
    writeFileSync(join(dir, 'esm.mjs'), 'export const work = () => 7;\n');
    writeFileSync(join(dir, 'esm-syntax.js'), 'export const work = () => 8;\n');
    const script = `
      const { installCompileCache } = require(${JSON.stringify(LIB)});
      installCompileCache(${JSON.stringify(cacheDir)});
      const out = [];
      for (const f of ['esm.mjs', 'esm-syntax.js']) {
        try { out.push(require(${JSON.stringify(dir)} + '/' + f).work()); } catch (e) { out.push(e.code ?? e.name); }
      }
      process.stdout.write(JSON.stringify(out));`;
    // Without the cache, as Node itself loads them (require(esm) exists from Node 20.19).
    const plain = script.replace(/installCompileCache\([^)]*\);/, '');
    const [{ stdout: withCache }, { stdout: without }] = await Promise.all([
      run(process.execPath, ['--no-warnings', '-e', script]),
      run(process.execPath, ['--no-warnings', '-e', plain]),
    ]);
    expect(JSON.parse(withCache)).toEqual(JSON.parse(without));
  });

  it('a damaged cache file is ignored and replaced', async () => {
    const first = await runOnce(cacheDir, entry, { save: true });
    writeFileSync(first.file, Buffer.from('not a cache file at all'));
    const second = await runOnce(cacheDir, entry, { save: true });
    expect(second.result).toEqual({ n: 42, dir: true });
    expect(second.stats.misses).toBe(2);
    expect((await runOnce(cacheDir, entry)).stats).toEqual({ hits: 2, misses: 0, rejected: 0 });
  });

  it('processes saving at once leave a whole file', async () => {
    await Promise.all([1, 2, 3, 4].map(() => runOnce(cacheDir, entry, { save: true })));
    expect((await runOnce(cacheDir, entry)).stats).toEqual({ hits: 2, misses: 0, rejected: 0 });
  });

  it('BERTH_COMPILE_CACHE=off leaves the loader alone', async () => {
    const script = `
      const { installCompileCache } = require(${JSON.stringify(LIB)});
      process.stdout.write(String(installCompileCache() === undefined));`;
    const { stdout } = await run(process.execPath, ['-e', script], { env: { ...process.env, BERTH_COMPILE_CACHE: 'off' } });
    expect(stdout).toBe('true');
  });

  it('leaves the loader to Node under --enable-source-maps, so that stack traces are mapped', async () => {
    writeFileSync(join(dir, 'thrower.js'), 'exports.work = () => { throw new Error("mapped?"); };\n//# sourceMappingURL=thrower.js.map\n');
    const map = { version: 3, file: 'thrower.js', sources: ['thrower.ts'], names: [], mappings: 'AAAA' };
    writeFileSync(join(dir, 'thrower.js.map'), JSON.stringify(map));
    const script = `
      const { installCompileCache } = require(${JSON.stringify(LIB)});
      const cache = installCompileCache(${JSON.stringify(cacheDir)});
      try { require(${JSON.stringify(join(dir, 'thrower.js'))}).work(); } catch (err) {
        process.stdout.write(JSON.stringify({ installed: cache !== undefined, frame: err.stack.split('\\n')[1] }));
      }`;
    const { stdout } = await run(process.execPath, ['--enable-source-maps', '-e', script]);
    const out = JSON.parse(stdout) as { installed: boolean; frame: string };
    expect(out.installed).toBe(false);
    expect(out.frame).toContain('thrower.ts');
  });

  it('saveIfStale writes after misses, and not again while the file is fresh and every module hit', async () => {
    const script = (label: string) => `
      const { installCompileCache } = require(${JSON.stringify(LIB)});
      const cache = installCompileCache(${JSON.stringify(cacheDir)});
      require(${JSON.stringify(entry)});
      process.stdout.write(${JSON.stringify(label)} + ':' + cache.saveIfStale(60000));`;
    expect((await run(process.execPath, ['-e', script('first')])).stdout).toBe('first:true');
    expect((await run(process.execPath, ['-e', script('second')])).stdout).toBe('second:false');
  });
});
