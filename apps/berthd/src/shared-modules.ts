import Module from 'node:module';
import { dirname } from 'node:path';

/**
 * The packages a plugin module (`plugin_modules`) reaches through @berth/plugin-sdk, by the
 * names it requires them by, with how berthd loads its own copy. A plugin module must get the
 * daemon's copy of each: the loader tells a skip from a failure by `instanceof SkipPluginError`,
 * and tsyringe keeps its registrations in module state. What these load in turn needs no entry:
 * a package given from the cache runs none of its own requires.
 */
export const SHARED_MODULES: Readonly<Record<string, () => unknown>> = {
  '@berth/plugin': () => require('@berth/plugin'),
  '@berth/plugin/loader': () => require('@berth/plugin/loader'),
  '@berth/context': () => require('@berth/context'),
  '@berth/errdefs': () => require('@berth/errdefs'),
  '@berth/identifiers': () => require('@berth/identifiers'),
  '@berth/log': () => require('@berth/log'),
  tsyringe: () => require('tsyringe'),
  'reflect-metadata': () => require('reflect-metadata'),
};

interface ModuleInternals {
  _nodeModulePaths(dir: string): string[];
}

/**
 * Makes berthd's copies of {@link SHARED_MODULES} the ones a plugin module's `require` finds.
 * Unbundled (dist/main.js), berthd loaded them from their files and this changes nothing. Bundled
 * (dist/berthd.js), its copies are inside the bundle: each is entered in Node's module cache
 * under the file the name resolves to from here, which is where a plugin module's require of
 * the same package lands (Node's documentation allows adding to `require.cache`). Called before
 * the first plugin module loads, so a daemon without plugin modules spends nothing on it.
 */
export function shareWithPluginModules(): void {
  for (const [name, load] of Object.entries(SHARED_MODULES)) {
    let file: string;
    try {
      file = require.resolve(name);
    } catch {
      continue; // Not installed beside berthd: a plugin module cannot reach it either.
    }
    if (require.cache[file]) continue;
    const m = new Module(file);
    m.filename = file;
    m.paths = (Module as unknown as ModuleInternals)._nodeModulePaths(dirname(file));
    m.exports = load();
    m.loaded = true;
    require.cache[file] = m;
  }
}
