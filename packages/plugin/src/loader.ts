/**
 * The plugin loader (`@berth/plugin/loader`): what a daemon runs. This entry loads tsyringe and
 * the reflect-metadata polyfill it needs; the package index does not, so a program that only
 * uses stores (which import tokens and plugin definitions) gets neither.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { container as globalContainer, DependencyContainer } from 'tsyringe';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@berth/errdefs';
import type { Logger } from '@berth/log';
import { pluginConfig } from './config';
import { orderPlugins } from './graph';
import { Token, token, tokenName, tokenType } from './token';
import { InitContext, PluginReport, PluginStatus, Registration, SkipPluginError, pluginKey } from './types';

export { SkipPluginError, type PluginReport, type PluginStatus } from './types';

export interface LoadOptions {
  root: string;
  state: string;
  address: string;
  /** Defaults to `<address>.ttrpc`. */
  ttrpcAddress?: string;
  /** Config sections by `<type>.<id>`, from `[plugins."<type>.<id>"]`. */
  sections?: Readonly<Record<string, Record<string, unknown>>>;
  /** `<type>.<id>` of plugins not to load (reported as skip). */
  disabled?: readonly string[];
  /** `<type>.<id>` of plugins without which the daemon must not start. */
  required?: readonly string[];
  logger: Logger;
  /** The daemon's root container; a fresh child of tsyringe's root by default. */
  container?: DependencyContainer;
}

/** The token under which the daemon registers the loaded plugin set itself (for introspection). */
export const PluginSetToken: Token<LoadedPlugins> = token<LoadedPlugins>('io.containerd.internal.v1/plugins');

/** The loaded plugin graph: reports in load order, instances, and reverse-order close. */
export class LoadedPlugins {
  private readonly closers: Array<{ key: string; fn: () => void | Promise<void> }> = [];
  private closed = false;

  constructor(
    readonly container: DependencyContainer,
    private readonly logger: Logger,
    readonly reports: PluginReport[] = [],
    readonly instances = new Map<string, unknown>(),
  ) {}

  /** Returns the instances of loaded plugins of a type, by id, in load order. */
  ofType<T>(type: string): Map<string, T> {
    const out = new Map<string, T>();
    for (const r of this.reports) {
      if (r.type === type && r.status === 'ok') out.set(r.id, this.instances.get(`${r.type}.${r.id}`) as T);
    }
    return out;
  }

  /** @internal */
  addCloser(key: string, fn: () => void | Promise<void>): void {
    this.closers.push({ key, fn });
  }

  /** Closes plugins in reverse load order; a failing close is logged and the rest still close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const { key, fn } of [...this.closers].reverse()) {
      try {
        await fn();
      } catch (err) {
        this.logger.error('failed to close plugin', { plugin: key, error: (err as Error)?.message ?? String(err) });
      }
    }
  }
}

function requireDeclared(reg: Registration, type: string): void {
  const req = reg.requires ?? [];
  if (!req.includes(type) && !req.includes('*')) {
    throw new InvalidArgumentError(`plugin ${pluginKey(reg)} looks up ${type} without declaring it in requires`);
  }
}

/**
 * Initializes plugins in dependency order. A plugin that throws is reported as `error` and the
 * plugins that need its type (with no other plugin of that type loaded) are skipped; the rest
 * still load. Throws only for a broken graph or a required plugin that did not load, after
 * closing what had loaded.
 */
export async function loadPlugins(registrations: readonly Registration[], options: LoadOptions): Promise<LoadedPlugins> {
  const { logger } = options;
  const root = options.container ?? globalContainer.createChildContainer();
  const disabled = new Set(options.disabled ?? []);
  const ordered = orderPlugins(registrations);
  const set = new LoadedPlugins(root, logger);
  root.registerInstance(PluginSetToken, set);
  const statusOf = new Map<string, PluginStatus>();
  const started = performance.now();

  for (const reg of ordered) {
    const key = pluginKey(reg);
    const plog = logger.with({ type: reg.type, id: reg.id });
    const t0 = performance.now();
    const exportsMap: Record<string, string> = {};
    let status: PluginStatus = 'ok';
    let error: string | undefined;

    const blocked = blockedBy(reg, registrations, statusOf);
    if (disabled.has(key)) {
      status = 'skip';
      error = `plugin ${key} is disabled: skip plugin`;
    } else if (blocked) {
      status = 'skip';
      error = `required plugin ${pluginKey(blocked)} did not load: skip plugin`;
    } else {
      plog.debug(`loading plugin "${key}"...`);
      try {
        const provided: Array<[Token<unknown>, unknown]> = [];
        const instance = await initOne(reg, key, exportsMap, set, options, provided);
        set.instances.set(key, instance);
        root.register(pluginToken(reg.type, reg.id), { useValue: instance });
        for (const t of reg.provides ?? []) root.register(t, { useValue: instance });
        for (const [t, value] of provided) root.register(t, { useValue: value });
      } catch (err) {
        if (err instanceof SkipPluginError) {
          status = 'skip';
          error = err.message;
        } else {
          status = 'error';
          error = (err as Error)?.message ?? String(err);
          plog.debug('plugin init stack', { stack: (err as Error)?.stack });
        }
      }
    }

    const ms = Math.round((performance.now() - t0) * 100) / 100;
    statusOf.set(key, status);
    set.reports.push({
      type: reg.type,
      id: reg.id,
      requires: reg.requires ?? [],
      platforms: reg.platforms ?? [],
      capabilities: reg.capabilities ?? [],
      exports: exportsMap,
      status,
      error,
      ms,
    });
    if (status === 'ok') plog.info(`plugin ${key} loaded`, { ms });
    else if (status === 'skip') plog.info(`plugin ${key} skipped`, { ms, reason: error });
    else plog.warn(`plugin ${key} failed`, { ms, error });
  }

  const count = (s: PluginStatus) => set.reports.filter((r) => r.status === s).length;
  logger.info('plugins initialized', {
    ok: count('ok'),
    skip: count('skip'),
    error: count('error'),
    ms: Math.round(performance.now() - started),
  });

  const missing = (options.required ?? []).filter((k) => statusOf.get(k) !== 'ok');
  if (missing.length > 0) {
    await set.close();
    const why = missing.map((k) => {
      const r = set.reports.find((p) => pluginKey(p) === k);
      return r ? `${k} (${r.status}: ${r.error})` : `${k} (not registered)`;
    });
    throw new FailedPreconditionError(`required plugins did not load: ${why.join('; ')}`);
  }
  return set;
}

/** The token of one plugin instance, by type and id. */
export function pluginToken<T>(type: string, id: string): Token<T> {
  return token<T>(`${type}/plugin:${id}`);
}

/** Returns a required type's plugin that failed when no plugin of that type loaded. */
function blockedBy(reg: Registration, all: readonly Registration[], statusOf: Map<string, PluginStatus>): Registration | undefined {
  const self = all.indexOf(reg);
  for (const type of reg.requires ?? []) {
    if (type === '*') continue;
    // Of its own type, a plugin needs only those registered before it (see dependenciesOf).
    const ofType = all.filter((r, i) => r.type === type && r !== reg && (type !== reg.type || i < self));
    if (ofType.length > 0 && !ofType.some((r) => statusOf.get(pluginKey(r)) === 'ok')) return ofType[0];
  }
  return undefined;
}

async function initOne(
  reg: Registration,
  key: string,
  exportsMap: Record<string, string>,
  set: LoadedPlugins,
  options: LoadOptions,
  provided: Array<[Token<unknown>, unknown]>,
): Promise<unknown> {
  const plog = options.logger.with({ type: reg.type, id: reg.id });
  const config = pluginConfig(reg, options.sections?.[key], plog);
  const child = set.container.createChildContainer();
  const ctx: InitContext<unknown> = {
    type: reg.type,
    id: reg.id,
    root: join(options.root, key),
    state: join(options.state, key),
    address: options.address,
    ttrpcAddress: options.ttrpcAddress ?? `${options.address}.ttrpc`,
    config,
    logger: plog,
    exports: exportsMap,
    container: child,
    plugins: set,
    getAll<T>(type: string): Map<string, T> {
      requireDeclared(reg, type);
      return set.ofType<T>(type);
    },
    getSingle<T>(type: string): T {
      requireDeclared(reg, type);
      const first = set.ofType<T>(type).values().next();
      if (first.done) throw new NotFoundError(`no plugin of type ${type} loaded`);
      return first.value;
    },
    getById<T>(type: string, id: string): T {
      requireDeclared(reg, type);
      const found = set.ofType<T>(type);
      if (!found.has(id)) throw new NotFoundError(`plugin ${type}.${id} is not loaded`);
      return found.get(id) as T;
    },
    get<T>(t: Token<T>): T {
      requireDeclared(reg, tokenType(t));
      // The provider of a declared type did not load (failed, skipped or disabled): this plugin
      // cannot run either, which is a skip, not a failure of its own.
      if (!child.isRegistered(t, true)) throw new SkipPluginError(`${tokenName(t)} is not available`);
      // Through the plugin's own container: what the plugin registered there for itself wins,
      // then the provider registered last in the daemon's (a later plugin wraps an earlier one).
      return child.resolve(t);
    },
    getAllOf<T>(t: Token<T>): T[] {
      requireDeclared(reg, tokenType(t));
      return child.isRegistered(t, true) ? child.resolveAll(t) : [];
    },
    provide<T>(t: Token<T>, value: T): void {
      if (tokenType(t) !== reg.type) {
        throw new InvalidArgumentError(`plugin ${key} cannot provide ${tokenName(t)}, a token of another plugin type`);
      }
      provided.push([t, value]);
    },
    onClose(fn) {
      set.addCloser(key, fn);
    },
  };
  return await reg.init(ctx);
}
