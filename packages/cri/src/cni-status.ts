import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sortedJson } from './image-spec';

/** One network as containerd's CNI library reports it in `crictl info` (`cniconfig.Networks`). */
export interface CniNetworkReport {
  Config: { Name: string; CNIVersion: string; Plugins: Array<{ Network: Record<string, unknown>; Source: string }>; Source: string };
  IFName: string;
}

/** What loading the CNI configs gave: the networks, or why there are not enough. */
export interface CniLoadResult {
  networks: CniNetworkReport[];
  /** Why the configs did not load (containerd's `lastCNILoadStatus` text); undefined when they did. */
  error?: string;
}

/** The loopback network containerd always adds first. */
const LOOPBACK_SOURCE = '{\n"cniVersion": "0.3.1",\n"name": "cni-loopback",\n"plugins": [{\n  "type": "loopback"\n}]\n}';
const LOOPBACK: CniNetworkReport = {
  Config: {
    Name: 'cni-loopback',
    CNIVersion: '0.3.1',
    Plugins: [{ Network: { type: 'loopback', ipam: {}, dns: {} }, Source: '{"type":"loopback"}' }],
    Source: LOOPBACK_SOURCE,
  },
  IFName: 'lo',
};

const EXTENSIONS = ['.conf', '.conflist', '.json'];

/**
 * One plugin as the CNI library's Go types hold it: the NetConf fields it knows (empty optional
 * ones left out) and its source re-encoded with sorted keys.
 */
function pluginOf(raw: Record<string, unknown>): { Network: Record<string, unknown>; Source: string } {
  const network: Record<string, unknown> = {};
  const obj = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const put = (to: Record<string, unknown>, key: string, v: unknown) => {
    if (v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && v !== null && Object.keys(v).length === 0)) to[key] = v;
  };
  put(network, 'cniVersion', raw.cniVersion);
  put(network, 'name', raw.name);
  put(network, 'type', raw.type);
  put(network, 'capabilities', raw.capabilities);
  const ipam: Record<string, unknown> = {};
  put(ipam, 'type', obj(raw.ipam).type);
  network.ipam = ipam;
  const dns: Record<string, unknown> = {};
  for (const k of ['nameservers', 'domain', 'search', 'options']) put(dns, k, obj(raw.dns)[k]);
  network.dns = dns;
  put(network, 'prevResult', raw.prevResult);
  return { Network: network, Source: sortedJson(raw) };
}

/**
 * Reads the CNI network configs as containerd 1.6's CRI plugin loads them (its CNI library): the
 * built-in loopback network, then up to `maxConfNum` files of `confDir` in name order
 * (`.conf`, `.conflist`, `.json`). Only reads and checks the files; it runs no plugin. The
 * network is ready when at least one file loaded. Error texts are containerd's.
 *
 * A stand-in until pods need CNI (packages/cni runs the plugins); it only makes NetworkReady honest.
 */
export async function loadCniConfigs(confDir: string, maxConfNum: number): Promise<CniLoadResult> {
  const fail = (reason: string): CniLoadResult => ({ networks: [LOOPBACK], error: `cni config load failed: ${reason}: failed to load cni config` });
  let names: string[];
  try {
    names = (await readdir(confDir)).filter((n) => EXTENSIONS.some((e) => n.endsWith(e))).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return fail(`failed to read config file: ${(err as Error).message}`);
    names = [];
  }
  if (names.length === 0) return fail(`no network config found in ${confDir}: cni plugin not initialized`);
  const networks: CniNetworkReport[] = [LOOPBACK];
  for (const name of names) {
    const file = join(confDir, name);
    let source: string;
    let raw: Record<string, unknown>;
    try {
      source = await readFile(file, 'utf8');
      raw = JSON.parse(source) as Record<string, unknown>;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
    } catch (err) {
      const what = name.endsWith('.conflist') ? 'CNI config list file' : 'CNI config file';
      return fail(`failed to load ${what} ${file}: ${(err as Error).message}: invalid cni config`);
    }
    let report: CniNetworkReport;
    if (name.endsWith('.conflist')) {
      const plugins = raw.plugins;
      if (!Array.isArray(plugins) || plugins.length === 0) return fail(`CNI config list in config file ${file} has no networks, skipping: invalid cni config`);
      report = {
        Config: { Name: String(raw.name ?? ''), CNIVersion: String(raw.cniVersion ?? ''), Plugins: plugins.map((p) => pluginOf(p as Record<string, unknown>)), Source: source },
        IFName: '',
      };
    } else {
      if (typeof raw.type !== 'string' || raw.type === '') return fail(`network type not found in ${file}: invalid cni config`);
      report = { Config: { Name: String(raw.name ?? ''), CNIVersion: String(raw.cniVersion ?? ''), Plugins: [pluginOf(raw)], Source: source }, IFName: '' };
    }
    report.IFName = `eth${networks.length - 1}`;
    networks.push(report);
    if (networks.length - 1 >= maxConfNum) break;
  }
  return { networks };
}
