import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@berth/log';
import { loadPlugins } from './loader';
import { PLUGIN_MODULE_TYPE, loadPluginModules } from './modules';
import { Registration, pluginKey } from './types';

describe('loadPluginModules', () => {
  let dir: string;
  const logger = createLogger({ level: 'error', write: () => undefined });
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-modules-'));
    const files: Record<string, string> = {
      'named.js': `exports.plugins = [{ type: 'test.a.v1', id: 'one', init: () => 1 }, { type: 'test.a.v1', id: 'two', requires: ['test.a.v1'], init: () => 2 }];`,
      'single.js': `module.exports = { type: 'test.b.v1', id: 'single', init: () => 'b' };`,
      'default.js': `exports.default = [{ type: 'test.c.v1', id: 'dflt', init: () => 'c' }];`,
      'esm.mjs': `export const plugins = [{ type: 'test.d.v1', id: 'esm', init: () => 'd' }];`,
      'throws.js': `throw new Error('module top level exploded');`,
      'empty.js': `exports.plugins = [];`,
      'malformed.js': `exports.plugins = [{ type: 'test.e.v1', id: 'e' }];`,
      'dup.js': `exports.plugins = [{ type: 'builtin.v1', id: 'x', init: () => 0 }];`,
      'init-fails.js': `exports.plugins = [{ type: 'test.f.v1', id: 'boom', init: () => { throw new Error('no disk for me'); } }];`,
    };
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const keys = (regs: Registration[]) => regs.map(pluginKey);

  // ES modules are loaded through a native import(), which jest's module sandbox does not run:
  // apps/berthd's plugin-modules test loads one into a real berthd.
  it('reads `plugins`, a single registration and a default export, resolving paths from the base dir', async () => {
    const regs = await loadPluginModules(['./named.js', join(dir, 'single.js'), './default.js'], { baseDir: dir, logger });
    expect(keys(regs)).toEqual(['test.a.v1.one', 'test.a.v1.two', 'test.b.v1.single', 'test.c.v1.dflt']);
  });

  it.each([
    ['./throws.js', 'plugin module ./throws.js: module top level exploded'],
    ['./missing.js', 'plugin module ./missing.js: cannot find module "./missing.js" (looked from /tmp/'],
    ['@nobody/berth-nothing', 'plugin module @nobody/berth-nothing: cannot find module "@nobody/berth-nothing"'],
    ['./empty.js', 'plugin module ./empty.js: it exports no plugins'],
    ['./malformed.js', 'plugin module ./malformed.js: ./malformed.js plugin 0 (test.e.v1.e) has no init function'],
    ['./dup.js', 'plugin module ./dup.js: it registers builtin.v1.x, which is already registered'],
  ])('turns %s into a failing stand-in', async (spec, reason) => {
    const existing: Registration[] = [{ type: 'builtin.v1', id: 'x', init: () => 0 }];
    const regs = await loadPluginModules([spec], { baseDir: dir, existing, logger });
    expect(keys(regs)).toEqual([`${PLUGIN_MODULE_TYPE}.${spec}`]);
    const set = await loadPlugins([...existing, ...regs], { root: dir, state: dir, address: join(dir, 's.sock'), logger });
    expect(set.reports[1]).toMatchObject({ type: PLUGIN_MODULE_TYPE, id: spec, status: 'error' });
    expect(set.reports[1].error).toContain(reason);
  });

  it('loads module plugins beside the builtins; one failing in init is an error and the rest load', async () => {
    const builtin: Registration = { type: 'builtin.v1', id: 'x', init: () => 0 };
    const regs = await loadPluginModules(['./init-fails.js', './named.js'], { baseDir: dir, existing: [builtin], logger });
    const set = await loadPlugins([builtin, ...regs], { root: dir, state: dir, address: join(dir, 's.sock'), logger });
    expect(set.reports.map((r) => `${pluginKey(r)}=${r.status}`)).toEqual(['builtin.v1.x=ok', 'test.f.v1.boom=error', 'test.a.v1.one=ok', 'test.a.v1.two=ok']);
    expect(set.reports[1].error).toBe('no disk for me');
  });
});
