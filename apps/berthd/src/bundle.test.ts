import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BERTHD_MAIN, TestDaemon, tempDir } from '@berth/testing';
import { SHARED_MODULES } from './shared-modules';

/**
 * The bundle berthd runs (dist/berthd.js, made by scripts/bundle.js): that plugin modules get
 * the daemon's copies of the packages they share with it (shared-modules.ts), and that
 * bin/berthd, the README's program and the tests' TestDaemon, runs it. Every test that starts a
 * TestDaemon runs the bundle.
 */
const APP = join(__dirname, '..');
const REPO = join(APP, '..', '..');
const SHARED = Object.keys(SHARED_MODULES);

describe('the berthd bundle', () => {
  it('is what bin/berthd and TestDaemon run', () => {
    expect(BERTHD_MAIN).toBe(join(APP, 'bin', 'berthd'));
    expect(readFileSync(BERTHD_MAIN, 'utf8')).toContain("require('../dist/berthd.js').main(");
  });

  it('shares what @berth/plugin-sdk loads at run time', () => {
    const sdk = readFileSync(join(REPO, 'node_modules', '@berth', 'plugin-sdk', 'dist', 'index.js'), 'utf8');
    const loads = [...new Set([...sdk.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]))];
    expect(loads).toContain('@berth/plugin');
    for (const name of loads) expect({ name, shared: SHARED.includes(name) }).toEqual({ name, shared: true });
  });

  it('calls no import() (the code cache would leave the whole bundle to Node to compile)', () => {
    const source = readFileSync(join(APP, 'dist', 'berthd.js'), 'utf8');
    expect(source.match(/\bimport\s*\(/g) ?? []).toEqual([]);
  });

  it('holds no character above U+00FF (V8 would keep its whole source at two bytes a character)', () => {
    const source = readFileSync(join(APP, 'dist', 'berthd.js'), 'utf8');
    expect(source.match(/[\u0100-\uffff]/g) ?? []).toEqual([]);
  });

  it("shares @berth/plugin with plugin modules: an SDK SkipPluginError reports skip, not error", async () => {
    const dir = tempDir('berth-bundle-');
    const sdk = join(REPO, 'node_modules', '@berth', 'plugin-sdk');
    const module = join(dir.path, 'skips.js');
    writeFileSync(
      module,
      `const { SkipPluginError, PluginTypes } = require(${JSON.stringify(sdk)});\n` +
        "exports.plugins = [{ type: PluginTypes.internal, id: 'skips', init: () => { throw new SkipPluginError('nothing to do here'); } }];\n",
    );
    const d = await TestDaemon.start({ logLevel: 'info', config: `plugin_modules = [${JSON.stringify(module)}]\n` });
    try {
      const res = await d.ctr(['plugins', 'ls', 'id==skips']);
      expect(res.stdout).toMatch(/io\.containerd\.internal\.v1\s+skips\s+\S+\s+skip\s*$/m);
      expect(d.output).toMatch(/msg="plugins initialized" ok=\d+ skip=1 error=0/);
    } finally {
      await d.cleanup();
      dir.remove();
    }
  });
});
