import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '@berth/log';
import { Registration, pluginKey } from './types';
import { nativeImport } from './native-import';

/**
 * The plugin type under which a plugin module that could not be used is reported (its own
 * plugins are unknown then): the id is the module as the config names it.
 */
export const PLUGIN_MODULE_TYPE = 'io.berth.plugin-module.v1';

/** Options of {@link loadPluginModules}. */
export interface PluginModuleOptions {
  /** Where relative paths (`./x.js`) and package names resolve from first: the config file's directory. */
  baseDir: string;
  /** Registrations already in the graph (the builtins): a module plugin with the same `<type>.<id>` is refused. */
  existing?: readonly Registration[];
  logger?: Logger;
}

/**
 * What a plugin module exports, in the order looked for: `plugins` (an array of registrations),
 * a default export (an array or one registration), or the module itself (an array or one
 * registration). Registrations are the values `definePlugin` returns.
 */
export type PluginModuleExports =
  | { plugins: readonly Registration[] }
  | { default: readonly Registration[] | Registration | { plugins: readonly Registration[] } }
  | readonly Registration[]
  | Registration;

/**
 * Loads the modules `plugin_modules` names and returns their registrations, to be put in the
 * graph after the builtins. A module that cannot be resolved, throws while loading, exports no
 * registrations or a malformed one, or registers a `<type>.<id>` already taken, is not an error
 * here: it becomes a stand-in registration (type {@link PLUGIN_MODULE_TYPE}, id the module
 * name) whose init fails with the reason, so the startup report and introspection show it as
 * `error` and the daemon serves on unless something required is missing.
 */
export async function loadPluginModules(specs: readonly string[], options: PluginModuleOptions): Promise<Registration[]> {
  const out: Registration[] = [];
  const taken = new Set((options.existing ?? []).map(pluginKey));
  for (const spec of specs) {
    let regs: Registration[];
    try {
      regs = registrationsOf(await importModule(spec, options.baseDir), spec);
      for (const r of regs) {
        const key = pluginKey(r);
        if (taken.has(key)) throw new Error(`it registers ${key}, which is already registered`);
      }
    } catch (err) {
      const reason = `plugin module ${spec}: ${(err as Error)?.message ?? String(err)}`;
      options.logger?.warn('cannot load plugin module', { module: spec, error: (err as Error)?.message ?? String(err) });
      const failed = out.some((r) => r.type === PLUGIN_MODULE_TYPE && r.id === spec);
      if (!failed) out.push(failedModule(spec, reason));
      continue;
    }
    for (const r of regs) taken.add(pluginKey(r));
    options.logger?.debug('loaded plugin module', { module: spec, plugins: regs.map(pluginKey).join(',') });
    out.push(...regs);
  }
  return out;
}

function failedModule(spec: string, reason: string): Registration {
  return {
    type: PLUGIN_MODULE_TYPE,
    id: spec,
    init: () => {
      throw new Error(reason);
    },
  };
}

/** Resolves a module name the way `require` would, from `baseDir` first (relative paths from there only). */
function resolveModule(spec: string, baseDir: string): string {
  if (isAbsolute(spec)) return require.resolve(spec);
  if (spec.startsWith('./') || spec.startsWith('../')) return require.resolve(resolve(baseDir, spec));
  return require.resolve(spec, { paths: [baseDir, process.cwd(), __dirname] });
}

async function importModule(spec: string, baseDir: string): Promise<unknown> {
  let file: string;
  try {
    file = resolveModule(spec, baseDir);
  } catch {
    throw new Error(`cannot find module ${JSON.stringify(spec)} (looked from ${baseDir})`);
  }
  try {
    return require(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
    return nativeImport(pathToFileURL(file).href);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function registrationsOf(mod: unknown, spec: string): Registration[] {
  let found: unknown;
  if (isRecord(mod) && 'plugins' in mod) found = mod.plugins;
  else if (isRecord(mod) && 'default' in mod) found = isRecord(mod.default) && 'plugins' in mod.default ? mod.default.plugins : mod.default;
  else found = mod;
  const list = Array.isArray(found) ? found : [found];
  if (list.length === 0) throw new Error('it exports no plugins (export `plugins`, an array of registrations)');
  return list.map((r, i) => checkRegistration(r, `${spec} plugin ${i}`));
}

function checkRegistration(r: unknown, where: string): Registration {
  if (!isRecord(r)) throw new Error(`${where} is not a registration (export \`plugins\`, an array of registrations)`);
  for (const field of ['type', 'id'] as const) {
    if (typeof r[field] !== 'string' || r[field] === '') throw new Error(`${where} has no ${field}`);
  }
  if (typeof r.init !== 'function') throw new Error(`${where} (${r.type}.${r.id}) has no init function`);
  if (r.requires !== undefined && (!Array.isArray(r.requires) || r.requires.some((t) => typeof t !== 'string'))) {
    throw new Error(`${where} (${r.type}.${r.id}): requires must be a list of plugin types`);
  }
  return r as unknown as Registration;
}
