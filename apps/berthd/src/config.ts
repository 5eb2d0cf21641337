import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { InvalidArgumentError } from '@berth/errdefs';
import { Registration, pluginKey } from '@berth/plugin';

/** Where berthd looks for its config when no --config is given; absent means built-in defaults. */
export const DEFAULT_CONFIG_PATH = '/etc/berth/config.toml';

/** The daemon's config, in containerd's version 2 layout. */
export interface DaemonConfig {
  version: number;
  root: string;
  state: string;
  disabled_plugins: string[];
  required_plugins: string[];
  /**
   * Berth's own key: modules whose exported registrations join the plugin graph beside the
   * builtins (package names, or paths; relative paths are from the config file's directory).
   * Default none.
   */
  plugin_modules: string[];
  /**
   * `[proxy_plugins.<name>]` as containerd's: an external Snapshots (`type = "snapshot"`) or
   * Content (`type = "content"`) gRPC server at `address` (a unix socket path), used as the
   * snapshotter or content store `<name>`.
   */
  proxy_plugins: Record<string, ProxyPluginConfig>;
  grpc: {
    address: string;
    uid: number;
    gid: number;
    max_recv_message_size: number;
    max_send_message_size: number;
  };
  /** `[debug]`: the debug endpoint (a unix socket; empty means none) and the log format. */
  debug: {
    address: string;
    uid: number;
    gid: number;
    /** A log level; the `--log-level` flag wins. Empty means info. */
    level: string;
    /** `text` (logfmt, the default; an empty string means the same) or `json`. */
    format: string;
  };
  /** `[metrics]`: Prometheus metrics at `http://<address>/v1/metrics` (TCP; empty means none). */
  metrics: {
    address: string;
    /** Records grpc_server_handling_seconds. Default false. */
    grpc_histogram: boolean;
  };
  /** Per-plugin sections, by `<type>.<id>`. */
  plugins: Record<string, Record<string, unknown>>;
}

/** One `[proxy_plugins.<name>]` table. */
export interface ProxyPluginConfig {
  /** `snapshot` or `content` (containerd also takes the plugin type strings). */
  type: string;
  /** The server's unix socket path (or `unix://` address). */
  address: string;
}

/** Returns the built-in defaults. */
export function defaultConfig(): DaemonConfig {
  return {
    version: 2,
    root: '/var/lib/berth',
    state: '/run/berth',
    disabled_plugins: [],
    required_plugins: [],
    plugin_modules: [],
    proxy_plugins: {},
    grpc: {
      address: '/run/berth/berthd.sock',
      uid: 0,
      gid: 0,
      max_recv_message_size: 16 * 1024 * 1024,
      max_send_message_size: 16 * 1024 * 1024,
    },
    debug: { address: '', uid: 0, gid: 0, level: '', format: '' },
    metrics: { address: '', grpc_histogram: false },
    plugins: {},
  };
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

function stringList(v: unknown, name: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new InvalidArgumentError(`config: ${name} must be a list of strings`);
  return v as string[];
}

/** Parses TOML config text over the defaults, checking the types of the keys it knows. */
export function parseConfig(text: string, source = 'config'): DaemonConfig {
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`${source}: ${(err as Error).message.split('\n')[0]}`);
  }
  const cfg = defaultConfig();
  if (raw.version !== undefined && raw.version !== 2) {
    throw new InvalidArgumentError(`${source}: unsupported config version ${String(raw.version)} (berthd reads version 2)`);
  }
  for (const key of ['root', 'state'] as const) {
    if (raw[key] !== undefined) {
      if (typeof raw[key] !== 'string') throw new InvalidArgumentError(`${source}: ${key} must be a string`);
      cfg[key] = raw[key] as string;
    }
  }
  if (raw.disabled_plugins !== undefined) cfg.disabled_plugins = stringList(raw.disabled_plugins, 'disabled_plugins');
  if (raw.required_plugins !== undefined) cfg.required_plugins = stringList(raw.required_plugins, 'required_plugins');
  if (raw.plugin_modules !== undefined) cfg.plugin_modules = stringList(raw.plugin_modules, 'plugin_modules');
  if (raw.proxy_plugins !== undefined) {
    if (!isTable(raw.proxy_plugins)) throw new InvalidArgumentError(`${source}: proxy_plugins must be a table`);
    for (const [name, v] of Object.entries(raw.proxy_plugins)) {
      if (!isTable(v)) throw new InvalidArgumentError(`${source}: proxy_plugins.${name} must be a table`);
      for (const key of ['type', 'address'] as const) {
        if (typeof v[key] !== 'string' || v[key] === '') throw new InvalidArgumentError(`${source}: proxy_plugins.${name}.${key} must be a non-empty string`);
      }
      cfg.proxy_plugins[name] = { type: v.type as string, address: v.address as string };
    }
  }
  for (const table of ['grpc', 'debug', 'metrics'] as const) {
    const section = raw[table];
    if (section === undefined) continue;
    if (!isTable(section)) throw new InvalidArgumentError(`${source}: ${table} must be a table`);
    const into = cfg[table] as Record<string, unknown>;
    for (const [k, v] of Object.entries(section)) {
      if (!(k in into)) continue;
      const want = typeof into[k];
      if (typeof v !== want) throw new InvalidArgumentError(`${source}: ${table}.${k} must be a ${want}`);
      into[k] = v;
    }
  }
  if (cfg.metrics.address !== '') {
    // Loaded only here: @berth/metrics brings prom-client, which a daemon without metrics never needs.
    const { parseTcpAddress } = require('@berth/metrics') as typeof import('@berth/metrics');
    try {
      parseTcpAddress(cfg.metrics.address);
    } catch (err) {
      throw new InvalidArgumentError(`${source}: ${(err as Error).message}`);
    }
  }
  if (!['', 'text', 'json'].includes(cfg.debug.format)) {
    throw new InvalidArgumentError(`${source}: debug.format must be "text" or "json", not ${JSON.stringify(cfg.debug.format)}`);
  }
  if (raw.plugins !== undefined) {
    if (!isTable(raw.plugins)) throw new InvalidArgumentError(`${source}: plugins must be a table`);
    for (const [k, v] of Object.entries(raw.plugins)) {
      if (!isTable(v)) throw new InvalidArgumentError(`${source}: plugins."${k}" must be a table`);
      cfg.plugins[k] = v;
    }
  }
  return cfg;
}

/** Loads the config file; a missing default file means defaults, a missing explicit one is an error. */
export function loadConfig(path: string | undefined): DaemonConfig {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && path === undefined) return defaultConfig();
    throw new InvalidArgumentError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  const cfg = parseConfig(text, file);
  // Relative module paths are the config file's, as containerd's relative imports are.
  cfg.plugin_modules = cfg.plugin_modules.map((m) => (m.startsWith('./') || m.startsWith('../') ? resolve(dirname(file), m) : m));
  return cfg;
}

/** Renders the default config, with every plugin's defaults, as `berthd config default` prints it. */
export function renderDefaultConfig(registrations: readonly Registration[]): string {
  const cfg = defaultConfig();
  for (const reg of registrations) {
    if (!reg.config) continue;
    const defaults = reg.config.defaults();
    if (isTable(defaults)) cfg.plugins[pluginKey(reg)] = defaults;
  }
  return stringify(cfg) + '\n';
}
