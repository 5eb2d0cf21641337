import { InvalidArgumentError } from '@berth/errdefs';
import type { Logger } from '@berth/log';
import { Registration, pluginKey } from './types';

/**
 * Merges a plugin's TOML section over its defaults. Each key must have the default's type
 * (arrays stay arrays, tables stay tables); unknown keys are kept out and logged, as a
 * misspelt key should not silently change nothing.
 */
export function mergeSection<C>(defaults: C, section: Record<string, unknown>, where: string, logger?: Logger): C {
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults)) return defaults;
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [key, value] of Object.entries(section)) {
    if (!(key in out)) {
      logger?.warn('ignoring unknown config key', { plugin: where, key });
      continue;
    }
    const want = out[key];
    const kindOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
    if (want !== undefined && kindOf(want) !== kindOf(value)) {
      throw new InvalidArgumentError(`config of ${where}: ${key} must be ${kindOf(want) === 'object' ? 'a table' : `a ${kindOf(want)}`}`);
    }
    out[key] = value;
  }
  return out as C;
}

/** Builds a plugin's config from its section of the daemon config. */
export function pluginConfig<C>(reg: Registration<C>, section: Record<string, unknown> | undefined, logger?: Logger): C {
  if (!reg.config) {
    return undefined as C;
  }
  const defaults = reg.config.defaults();
  const where = `plugins."${pluginKey(reg)}"`;
  if (reg.config.parse) return reg.config.parse(section ?? {}, defaults);
  return mergeSection(defaults, section ?? {}, where, logger);
}
