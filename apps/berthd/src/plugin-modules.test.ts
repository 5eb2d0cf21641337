import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PLUGIN_MODULE_TYPE } from '@berth/plugin';
import { TestDaemon, tempDir } from '@berth/testing';

/**
 * Plugins from outside berthd: `plugin_modules` in a real daemon's config. The example package
 * (built on @berth/plugin-sdk only) loads beside the builtins; a module that cannot load and one
 * whose plugin throws in init are reported as errors while berthd serves on.
 */
describe('plugin_modules', () => {
  const dir = tempDir('berth-modules-');
  const eventsFile = join(dir.path, 'events.jsonl');
  let d: TestDaemon;

  beforeAll(async () => {
    writeFileSync(join(dir.path, 'broken.js'), "throw new Error('module top level exploded');\n");
    writeFileSync(
      join(dir.path, 'init-throws.js'),
      "exports.plugins = [{ type: 'io.containerd.internal.v1', id: 'throws', requires: ['io.containerd.event.v1'], init: () => { throw new Error('init went wrong'); } }];\n",
    );
    writeFileSync(join(dir.path, 'esm.mjs'), "export const plugins = [{ type: 'io.containerd.internal.v1', id: 'esm', init: (ctx) => { ctx.exports.hello = 'esm'; return {}; } }];\n");
    d = await TestDaemon.start({
      logLevel: 'info',
      config:
        `plugin_modules = ["@berth/example-plugin", ${JSON.stringify(join(dir.path, 'broken.js'))}, ${JSON.stringify(join(dir.path, 'init-throws.js'))}, ${JSON.stringify(join(dir.path, 'esm.mjs'))}]\n` +
        `[plugins."io.containerd.internal.v1.event-log"]\npath = ${JSON.stringify(eventsFile)}\nfilters = ['topic~="/namespaces/"']\n`,
    });
  });
  afterAll(async () => {
    await d?.cleanup();
    dir.remove();
  });

  it('lists module plugins in ctr plugins ls with their outcome', async () => {
    const res = await d.ctr(['plugins', 'ls']);
    expect(res.code).toBe(0);
    const lines = res.stdout.split('\n');
    const row = (type: string, id: string) => lines.find((l) => l.split(/\s+/)[0] === type && l.split(/\s+/)[1] === id);
    expect(row('io.containerd.internal.v1', 'event-log')).toMatch(/\sok\s*$/);
    expect(row('io.containerd.internal.v1', 'esm')).toMatch(/\sok\s*$/);
    expect(row('io.containerd.internal.v1', 'throws')).toMatch(/\serror\s*$/);
    expect(row(PLUGIN_MODULE_TYPE, join(dir.path, 'broken.js'))).toMatch(/\serror\s*$/);
  });

  it('reports why a module failed, through introspection and in the startup log', async () => {
    const res = await d.ctr(['plugins', 'ls', '--detailed', `type==${PLUGIN_MODULE_TYPE}`]);
    expect(res.stdout).toContain(join(dir.path, 'broken.js'));
    expect(res.stdout).toContain('module top level exploded');
    const throws = await d.ctr(['plugins', 'ls', '--detailed', 'id==throws']);
    expect(throws.stdout).toContain('init went wrong');
    expect(d.output).toMatch(/msg="plugin io.containerd.internal.v1.event-log loaded" type=io.containerd.internal.v1 id=event-log ms=/);
    expect(d.output).toMatch(/msg="plugin io.containerd.internal.v1.throws failed" .*error="init went wrong"/);
    expect(d.output).toMatch(/msg="plugins initialized" ok=\d+ skip=0 error=2/);
  });

  it('runs the example plugin with its config: namespace events land in its file', async () => {
    expect((await d.ctr(['namespaces', 'create', 'from-module'])).code).toBe(0);
    expect((await d.ctr(['namespaces', 'rm', 'from-module'])).code).toBe(0);
    let lines: Array<{ topic: string; namespace: string; type: string }> = [];
    for (let i = 0; i < 100 && lines.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      lines = readFileSync(eventsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    }
    expect(lines.map((l) => [l.topic, l.type])).toEqual([
      ['/namespaces/create', 'containerd.events.NamespaceCreate'],
      ['/namespaces/delete', 'containerd.events.NamespaceDelete'],
    ]);
  });

  it('refuses to start when a required module plugin did not load', async () => {
    const failed = await TestDaemon.start({
      expectExit: true,
      config: `plugin_modules = [${JSON.stringify(join(dir.path, 'init-throws.js'))}]\nrequired_plugins = ["io.containerd.internal.v1.throws"]\n`,
    });
    try {
      expect(await failed.waitExit()).toBe(1);
      expect(failed.output).toContain('required plugins did not load: io.containerd.internal.v1.throws (error: init went wrong)');
    } finally {
      await failed.cleanup();
    }
  });
});
