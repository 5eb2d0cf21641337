import { readFileSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@berth/errdefs';

/** One plugin's configuration as written in a network configuration: `type` and its own keys. */
export interface PluginConfig {
  /** The plugin binary's name, looked up in the bin dirs. */
  type: string;
  /** Runtime capabilities the plugin takes in `runtimeConfig` (`portMappings`, `dns`, ...). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A network configuration list (a `.conflist`, or a `.conf` turned into a one-plugin list). */
export interface NetworkConfigList {
  name: string;
  cniVersion: string;
  /** Whether CHECK is skipped for this network. */
  disableCheck: boolean;
  plugins: PluginConfig[];
  /** The file it was read from; '' for a list built in code. */
  source: string;
  /** The list as JSON text: the file as written, or (for a `.conf`) the list made from it, as libcni keeps it. */
  text: string;
}

/** A network a pod is attached to: its configuration and the interface name inside the pod. */
export interface Network {
  config: NetworkConfigList;
  ifName: string;
}

/** CNI spec versions the plugins of containernetworking-plugins 1.1 speak. */
export const SUPPORTED_CNI_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;

/** The loopback network go-cni adds in front of the configured ones (interface `lo`). */
export const LOOPBACK_NETWORK: NetworkConfigList = Object.freeze({
  name: 'cni-loopback',
  cniVersion: '0.3.1',
  disableCheck: false,
  plugins: [{ type: 'loopback' }],
  source: '',
  // The text go-cni parses for it, which `crictl info` shows as this network's Source.
  text: '{\n"cniVersion": "0.3.1",\n"name": "cni-loopback",\n"plugins": [{\n  "type": "loopback"\n}]\n}',
});

/** File extensions go-cni reads from the configuration directory. */
export const CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Compares two CNI versions ("0.3.1" < "0.4.0" < "1.0.0"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Returned when a network configuration does not parse or lacks what a plugin run needs; names
 * the file. `goCniReason` words the same failure as go-cni does, for containerd's
 * `lastCNILoadStatus`.
 */
export class CniConfigError extends InvalidArgumentError {
  readonly file: string;
  readonly detail: string;
  readonly goCniReason: string;

  constructor(file: string, detail: string, problem: 'no-type' | 'no-plugins' | 'other' = 'other') {
    super(`invalid CNI network configuration ${file || '(inline)'}: ${detail}`);
    this.file = file;
    this.detail = detail;
    if (problem === 'no-type') this.goCniReason = `network type not found in ${file}: invalid cni config`;
    else if (problem === 'no-plugins') this.goCniReason = `CNI config list in config file ${file} has no networks, skipping: invalid cni config`;
    else this.goCniReason = `failed to load CNI config ${file.endsWith('.conflist') ? 'list file' : 'file'} ${file}: ${detail}: invalid cni config`;
  }
}

function invalid(source: string, what: string, problem?: 'no-type' | 'no-plugins'): CniConfigError {
  return new CniConfigError(source, what, problem);
}

/**
 * Words a load outcome as containerd's CRI Status shows it in `lastCNILoadStatus`: `OK`, or
 * `cni config load failed: <go-cni's reason>: failed to load cni config`.
 */
export function goCniLoadStatus(err: unknown): string {
  if (err === undefined) return 'OK';
  const reason = (err as { goCniReason?: unknown }).goCniReason;
  return `cni config load failed: ${typeof reason === 'string' ? reason : (err as Error).message}: failed to load cni config`;
}

function checkVersion(source: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw invalid(source, 'no cniVersion');
  if (!(SUPPORTED_CNI_VERSIONS as readonly string[]).includes(v)) throw invalid(source, `unsupported cniVersion ${JSON.stringify(v)} (supported: ${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  return v;
}

function checkName(source: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw invalid(source, 'no network name');
  if (!NAME_RE.test(v)) throw invalid(source, `network name ${JSON.stringify(v)} must be letters, digits, '_', '.' and '-', starting with a letter or digit`);
  return v;
}

function checkPlugin(source: string, p: unknown, where: string): PluginConfig {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) throw invalid(source, `${where} is not an object`);
  const type = (p as { type?: unknown }).type;
  if (typeof type !== 'string' || type === '') throw invalid(source, `${where} has no plugin type`);
  if (type.includes('/')) throw invalid(source, `${where}: plugin type ${JSON.stringify(type)} must be a file name`);
  const caps = (p as { capabilities?: unknown }).capabilities;
  if (caps !== undefined && (caps === null || typeof caps !== 'object' || Array.isArray(caps))) throw invalid(source, `${where}: capabilities must be an object`);
  return p as PluginConfig;
}

function parseJson(source: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw invalid(source, (err as Error).message);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(source, 'not a JSON object');
  return v as Record<string, unknown>;
}

/** Parses a `.conflist`: `{name, cniVersion, plugins: [...]}`. Errors name `source`. */
export function parseConfigList(text: string, source = ''): NetworkConfigList {
  const o = parseJson(source, text);
  const name = checkName(source, o.name);
  const cniVersion = checkVersion(source, o.cniVersion);
  if (!Array.isArray(o.plugins)) throw invalid(source, "no 'plugins' list");
  if (o.plugins.length === 0) throw invalid(source, 'the plugins list is empty', 'no-plugins');
  const plugins = o.plugins.map((p, i) => checkPlugin(source, p, `plugin ${i}`));
  return { name, cniVersion, disableCheck: o.disableCheck === true, plugins, source, text };
}

/** Parses a single-plugin `.conf`/`.json` and turns it into a one-plugin list. Errors name `source`. */
export function parseConfig(text: string, source = ''): NetworkConfigList {
  const o = parseJson(source, text);
  // A conflist saved as .conf has no type: say so rather than failing on a missing binary.
  if (typeof o.type !== 'string' || o.type === '') throw invalid(source, Array.isArray(o.plugins) ? 'network type not found (a plugins list belongs in a .conflist file)' : 'network type not found', 'no-type');
  const name = checkName(source, o.name);
  const cniVersion = checkVersion(source, o.cniVersion);
  const plugin = checkPlugin(source, o, 'the plugin');
  return { name, cniVersion, disableCheck: false, plugins: [plugin], source, text: goJson({ name, cniVersion, plugins: [plugin] }) };
}

/** How {@link loadNetworks} reads the configuration directory. */
export interface LoadOptions {
  /** Directory of network configurations. */
  confDir: string;
  /** How many files to load, in name order; 0 or less loads all. Default: 1, as containerd. */
  maxConfNum?: number;
  /** Interface name prefix; the networks get `<prefix>0`, `<prefix>1`, ... Default: `eth`. */
  ifPrefix?: string;
  /** Whether the loopback network (`lo`) comes first. Default: true. */
  loopback?: boolean;
}

/**
 * Loads networks as go-cni does: loopback (`lo`), then the configuration files of `confDir`
 * (`.conf`, `.conflist`, `.json`) in name order, up to `maxConfNum`, attached as eth0, eth1, ...
 * A file that does not parse fails the whole load with an error naming it; an empty or missing
 * directory is a NotFoundError ("no network config found in <dir>").
 */
export function loadNetworks(options: LoadOptions): Network[] {
  const max = options.maxConfNum ?? 1;
  const prefix = options.ifPrefix ?? 'eth';
  let names: string[];
  try {
    names = readdirSync(options.confDir, { withFileTypes: true })
      .filter((d) => !d.isDirectory() && (CONFIG_EXTENSIONS as readonly string[]).includes(extname(d.name)))
      .map((d) => d.name)
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    names = [];
  }
  if (names.length === 0) throw Object.assign(new NotFoundError(`no network config found in ${options.confDir}`), { goCniReason: `no network config found in ${options.confDir}: cni plugin not initialized` });
  const networks: Network[] = options.loopback === false ? [] : [{ config: LOOPBACK_NETWORK, ifName: 'lo' }];
  let i = 0;
  for (const name of names) {
    const file = join(options.confDir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw invalid(file, `cannot read it: ${(err as Error).message}`);
    }
    const config = name.endsWith('.conflist') ? parseConfigList(text, file) : parseConfig(text, file);
    networks.push({ config, ifName: `${prefix}${i}` });
    i++;
    if (i === max) break;
  }
  return networks;
}

/**
 * Marshals a JSON value as Go's encoding/json marshals a map[string]interface{}: compact, object
 * keys sorted, and <, > and & escaped; objects at paths `isStruct` accepts keep their key order,
 * as Go structs do. libcni keeps plugin and generated list bytes this way.
 */
export function goJson(value: unknown, isStruct: (path: readonly string[]) => boolean = () => false): string {
  // A Go struct marshals in field order (here: the order the object was built in), a map sorted.
  const sortKeys = (v: unknown, path: string[]): unknown => {
    if (Array.isArray(v)) return v.map((x, i) => sortKeys(x, [...path, String(i)]));
    if (v === null || typeof v !== 'object') return v;
    const keys = Object.keys(v);
    if (!isStruct(path)) keys.sort();
    return Object.fromEntries(keys.map((k) => [k, sortKeys((v as Record<string, unknown>)[k], [...path, k])]));
  };
  return JSON.stringify(sortKeys(value, [])).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One plugin as go-cni's GetConfig shows it: libcni's parsed NetConf and its bytes. */
export interface GoCniPluginConfig {
  Network: { cniVersion?: string; name?: string; type?: string; capabilities?: Record<string, boolean>; ipam: { type?: string }; dns: Record<string, unknown> };
  Source: string;
}

/** go-cni's ConfigResult, which containerd's CRI Status puts under `cniconfig` in its verbose info. */
export interface GoCniConfig {
  PluginDirs: string[];
  PluginConfDir: string;
  PluginMaxConfNum: number;
  Prefix: string;
  Networks: { Config: { Name: string; CNIVersion: string; Plugins: GoCniPluginConfig[]; Source: string }; IFName: string }[];
}

/** Describes loaded networks as go-cni's GetConfig does. */
export function goCniConfig(networks: Network[], where: { binDirs: readonly string[]; confDir: string; maxConfNum: number; ifPrefix: string }): GoCniConfig {
  // libcni's NetConf, in its field order, with empty fields left out as its omitempty tags say
  // (ipam and dns are structs, so they always appear).
  const netConf = (p: PluginConfig): GoCniPluginConfig['Network'] => {
    const ipam = p.ipam as { type?: unknown } | undefined;
    const dns = (p.dns ?? {}) as Record<string, unknown>;
    const present = (v: unknown) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0);
    return {
      ...(typeof p.cniVersion === 'string' && p.cniVersion ? { cniVersion: p.cniVersion } : {}),
      ...(typeof p.name === 'string' && p.name ? { name: p.name } : {}),
      type: p.type,
      ...(p.capabilities && Object.keys(p.capabilities).length > 0 ? { capabilities: p.capabilities } : {}),
      ipam: typeof ipam?.type === 'string' && ipam.type ? { type: ipam.type } : {},
      dns: Object.fromEntries(['nameservers', 'domain', 'search', 'options'].filter((k) => present(dns[k])).map((k) => [k, dns[k]])),
    };
  };
  return {
    PluginDirs: [...where.binDirs],
    PluginConfDir: where.confDir,
    PluginMaxConfNum: where.maxConfNum,
    Prefix: where.ifPrefix,
    Networks: networks.map((n) => ({
      Config: { Name: n.config.name, CNIVersion: n.config.cniVersion, Plugins: n.config.plugins.map((p) => ({ Network: netConf(p), Source: goJson(p) })), Source: n.config.text },
      IFName: n.ifName,
    })),
  };
}
