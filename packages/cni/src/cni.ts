import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnknownError, wrap } from '@berth/errdefs';
import { type Logger, nullLogger } from '@berth/log';
import { type CacheEntry, DEFAULT_CACHE_DIR, ResultCache, decodeConfig, encodeConfig } from './cache';
import { type GoCniConfig, LOOPBACK_NETWORK, type Network, type NetworkConfigList, type PluginConfig, compareVersions, goCniConfig, goCniLoadStatus, loadNetworks } from './config';
import { type CniCommand, invokePlugin } from './invoke';
import { isNetns } from './netns';
import { type CniResult, type IpPreference, type SetupResult, mergeResults, parseResult } from './result';

/** go-cni's error when fewer networks than required are loaded; containerd reports it as is. */
export const NOT_INITIALIZED = 'cni plugin not initialized';
/** containerd's NetworkReady=false reason. */
export const NETWORK_NOT_READY_REASON = 'NetworkPluginNotReady';

/** Where plugins and configurations are, as containerd's `[plugins."io.containerd.grpc.v1.cri".cni]`. */
export interface CniOptions {
  /** Plugin binary directories (CNI_PATH), searched in order. Default: `/opt/cni/bin`. */
  binDir?: string | readonly string[];
  /** Network configuration directory. Default: `/etc/cni/net.d`. */
  confDir?: string;
  /** How many configuration files to load; 0 or less loads all. Default: 1. */
  maxConfNum?: number;
  /** Result cache directory (libcni's). Default: `/var/lib/cni`. */
  cacheDir?: string;
  /** SIGKILL a plugin that runs longer than this, in milliseconds. Default: 60000. */
  pluginTimeoutMs?: number;
  /** Whether the built-in loopback network comes first. Default: true. */
  loopback?: boolean;
  /** Interface name prefix of the configured networks (eth0, eth1, ...). Default: `eth`. */
  ifPrefix?: string;
  /** Networks needed to be ready. Default: 2 with loopback (lo + eth0), else 1 (containerd's count). */
  minNetworks?: number;
  /** Which address of eth0 is the pod IP (containerd's `ip_pref`). Default: ipv4. */
  ipPreference?: IpPreference;
  /** Default: logs nothing. */
  logger?: Logger;
}

/** A port to forward from the host to the pod (the `portMappings` capability). */
export interface PortMapping {
  /** Entries with a host port of 0 or less are left out, as containerd does. */
  hostPort: number;
  containerPort: number;
  /** Default: tcp. Lowercased before it reaches the plugin. */
  protocol?: string;
  /** Default: '' (every address). */
  hostIP?: string;
}

/** The `dns` capability. */
export interface DnsConfig {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

/** The `bandwidth` capability, in bits per second and bits. */
export interface BandwidthConfig {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** Who the pod is and what it asks of the network; the same for setup, check and teardown. */
export interface AttachOptions {
  /** Becomes K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID (the id) and K8S_POD_UID. */
  pod?: { namespace: string; name: string; uid: string };
  /** More CNI_ARGS, after those. */
  args?: [string, string][];
  portMappings?: PortMapping[];
  dns?: DnsConfig;
  bandwidth?: BandwidthConfig;
  /** The `io.kubernetes.cri.pod-annotations` capability. Default: {}. */
  podAnnotations?: Record<string, string>;
}

/** containerd's view of the network plugin, for CRI Status. */
export interface NetworkStatus {
  ready: boolean;
  /** '' when ready, else `NetworkPluginNotReady`. */
  reason: string;
  /** '' when ready, else `Network plugin returns error: cni plugin not initialized`. */
  message: string;
  /** The networks loaded, loopback first (only loopback after a failed load, as with go-cni). */
  networks: NetworkConfigList[];
  /** Why the last load failed (a file that does not parse, an empty directory); '' if it did not. */
  lastLoadError: string;
  /** The same in containerd's words for `lastCNILoadStatus`: `OK`, or `cni config load failed: ...`. */
  lastLoadStatus: string;
}

/** Attaches pods to networks and detaches them. */
export interface NetworkPlugin {
  status(): NetworkStatus;
  setup(id: string, netnsPath: string, options?: AttachOptions): Promise<SetupResult>;
  check(id: string, netnsPath: string, options?: AttachOptions): Promise<void>;
  teardown(id: string, netnsPath: string, options?: AttachOptions): Promise<void>;
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

interface Target {
  config: NetworkConfigList;
  ifName: string;
  cached?: CacheEntry;
}

/**
 * CNI as containerd's CRI plugin drives it through go-cni: loopback plus the first configuration
 * of `confDir`, plugins run from `binDir`, results cached under `cacheDir`. The configuration
 * directory is read again at every call (status, setup, check, teardown): that is a few stats
 * and small reads, cheaper than one plugin run, and unlike a watch it needs no lifetime and
 * cannot miss the directory being created later.
 */
export class CniNetworkPlugin implements NetworkPlugin {
  private readonly binDirs: readonly string[];
  private readonly confDir: string;
  private readonly maxConfNum: number;
  private readonly timeoutMs: number;
  private readonly loopback: boolean;
  private readonly ifPrefix: string;
  private readonly minNetworks: number;
  private readonly cache: ResultCache;
  private readonly log: Logger;
  private readonly ipPreference: IpPreference;

  constructor(options: CniOptions = {}) {
    this.binDirs = typeof options.binDir === 'string' ? [options.binDir] : [...(options.binDir ?? ['/opt/cni/bin'])];
    this.confDir = options.confDir ?? '/etc/cni/net.d';
    this.maxConfNum = options.maxConfNum ?? 1;
    this.timeoutMs = options.pluginTimeoutMs ?? 60_000;
    this.loopback = options.loopback ?? true;
    this.ifPrefix = options.ifPrefix ?? 'eth';
    this.minNetworks = options.minNetworks ?? (this.loopback ? 2 : 1);
    this.cache = new ResultCache(options.cacheDir ?? DEFAULT_CACHE_DIR);
    this.log = options.logger ?? nullLogger;
    this.ipPreference = options.ipPreference ?? 'ipv4';
  }

  /** Loads the networks; after a failed load only loopback is left, as with go-cni. */
  private load(): { networks: Network[]; error?: Error } {
    try {
      return { networks: loadNetworks({ confDir: this.confDir, maxConfNum: this.maxConfNum, loopback: this.loopback, ifPrefix: this.ifPrefix }) };
    } catch (err) {
      return { networks: this.loopback ? [{ config: LOOPBACK_NETWORK, ifName: 'lo' }] : [], error: err as Error };
    }
  }

  /** Describes the networks as go-cni's GetConfig does (containerd's verbose `cniconfig`). */
  cniConfig(): GoCniConfig {
    return goCniConfig(this.load().networks, { binDirs: this.binDirs, confDir: this.confDir, maxConfNum: this.maxConfNum, ifPrefix: this.ifPrefix });
  }

  /** Reads the configuration directory and reports readiness as containerd's CRI Status does. */
  status(): NetworkStatus {
    const { networks, error } = this.load();
    const ready = networks.length >= this.minNetworks;
    return {
      ready,
      reason: ready ? '' : NETWORK_NOT_READY_REASON,
      message: ready ? '' : `Network plugin returns error: ${NOT_INITIALIZED}`,
      networks: networks.map((n) => n.config),
      lastLoadError: error?.message ?? '',
      lastLoadStatus: goCniLoadStatus(error),
    };
  }

  private readyNetworks(): Network[] {
    const { networks, error } = this.load();
    if (networks.length >= this.minNetworks) return networks;
    throw new FailedPreconditionError(error ? `${NOT_INITIALIZED}: ${error.message}` : NOT_INITIALIZED, { bare: true, cause: error });
  }

  /**
   * Attaches the pod `id` in the namespace at `netnsPath` to every network (in parallel, as
   * go-cni), each through its plugin chain with prevResult handed on, and caches each network's
   * result. When any plugin fails, every network is detached again (so the plugins that did
   * their part undo it) before the error is thrown.
   */
  async setup(id: string, netnsPath: string, options: AttachOptions = {}): Promise<SetupResult> {
    checkId(id);
    if (netnsPath === '') throw new InvalidArgumentError('setup needs a network namespace path');
    if (!isNetns(netnsPath)) throw new NotFoundError(`network namespace ${netnsPath}`);
    const networks = this.readyNetworks();
    const args = cniArgs(id, options);
    const caps = capabilityArgs(options);
    const outcomes = await Promise.allSettled(networks.map((n) => this.addNetwork(n, id, netnsPath, args, caps)));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) {
      await this.detach(
        networks.map((n) => ({ config: n.config, ifName: n.ifName, cached: this.cache.get(n.config.name, id, n.ifName) })),
        id,
        netnsPath,
        args,
        caps,
      ).catch((err) => this.log.warn('undoing a failed network setup failed too', { id, error: (err as Error).message }));
      throw wrap(failed.reason, `failed to setup network for sandbox "${id}"`);
    }
    const parts = networks.map((n, i) => ({ networkName: n.config.name, ifName: n.ifName, result: (outcomes[i] as PromiseFulfilledResult<CniResult>).value }));
    return mergeResults(parts, networks.find((n) => n.ifName !== 'lo')?.ifName ?? 'eth0', this.ipPreference);
  }

  /**
   * Runs CHECK for every network against its cached result. Networks whose cniVersion predates
   * CHECK (0.4.0), such as the built-in loopback at 0.3.1, and those with `disableCheck` are
   * skipped.
   */
  async check(id: string, netnsPath: string, options: AttachOptions = {}): Promise<void> {
    checkId(id);
    const args = cniArgs(id, options);
    const caps = capabilityArgs(options);
    for (const n of this.readyNetworks()) {
      if (compareVersions(n.config.cniVersion, '0.4.0') < 0 || n.config.disableCheck) continue;
      const cached = this.cache.get(n.config.name, id, n.ifName);
      if (!cached) throw new FailedPreconditionError(`cannot check network "${n.config.name}" of sandbox "${id}": no cached result`, { bare: true });
      await this.runChain('CHECK', n.config, n.config.plugins, id, netnsPath, n.ifName, args, caps, cached.result);
    }
  }

  /**
   * Detaches the pod `id`: DEL through each network's chain in reverse, with the configuration,
   * arguments and result its ADD cached (so a restarted caller, or a changed configuration
   * directory, still undoes exactly what was done), and for configured networks without a cache
   * entry with the current configuration. A `netnsPath` that is gone is sent as '' (plugins then
   * release what lives outside the namespace); "not found" answers count as done. Safe to repeat.
   */
  async teardown(id: string, netnsPath: string, options: AttachOptions = {}): Promise<void> {
    checkId(id);
    const given = Object.values(options).some((v) => v !== undefined);
    const cached = new Map<string, Target>();
    for (const e of this.cache.list(id)) {
      const config = decodeConfig(e.config);
      if (config) cached.set(`${e.networkName}/${e.ifName}`, { config, ifName: e.ifName, cached: e });
    }
    // In the configured order (loopback first, as go-cni removes), then what only the cache knows.
    const { networks, error } = this.load();
    const targets: Target[] = [];
    for (const n of networks) {
      const key = `${n.config.name}/${n.ifName}`;
      targets.push(cached.get(key) ?? { config: n.config, ifName: n.ifName });
      cached.delete(key);
    }
    targets.push(...cached.values());
    if (targets.length === 0) {
      // Nothing was cached for this pod and nothing is configured: there is nothing to undo.
      this.log.warn('network teardown: no cached result and no configured network', { id, error: error?.message });
      return;
    }
    await this.detach(targets, id, netnsPath, given ? cniArgs(id, options) : undefined, given ? capabilityArgs(options) : undefined);
  }

  private async detach(targets: Target[], id: string, netnsPath: string, args?: [string, string][], caps?: Record<string, unknown>): Promise<void> {
    const netns = netnsPath !== '' && isNetns(netnsPath) ? netnsPath : '';
    const errors: Error[] = [];
    for (const t of targets) {
      try {
        await this.delNetwork(t, id, netns, args ?? t.cached?.cniArgs ?? cniArgs(id, {}), caps ?? t.cached?.capabilityArgs ?? capabilityArgs({}));
      } catch (err) {
        if (isIgnorableDelError(err as Error, netns)) {
          await this.cache.delete(t.config.name, id, t.ifName);
          continue;
        }
        errors.push(err as Error);
      }
    }
    if (errors.length > 0) throw wrap(errors[0], `failed to destroy network for sandbox "${id}"`);
  }

  private async addNetwork(n: Network, id: string, netns: string, args: [string, string][], caps: Record<string, unknown>): Promise<CniResult> {
    const result = await this.runChain('ADD', n.config, n.config.plugins, id, netns, n.ifName, args, caps, undefined);
    await this.cache.put({ kind: 'cniCacheV1', containerId: id, config: encodeConfig(n.config), ifName: n.ifName, networkName: n.config.name, cniArgs: args, capabilityArgs: caps, result: result! });
    return result!;
  }

  private async delNetwork(t: Target, id: string, netns: string, args: [string, string][], caps: Record<string, unknown>): Promise<void> {
    // libcni hands the cached result to DEL from 0.4.0 on; earlier versions had no prevResult on DEL.
    const prev = compareVersions(t.config.cniVersion, '0.4.0') >= 0 ? t.cached?.result : undefined;
    await this.runChain('DEL', t.config, [...t.config.plugins].reverse(), id, netns, t.ifName, args, caps, prev);
    await this.cache.delete(t.config.name, id, t.ifName);
  }

  private async runChain(
    command: CniCommand,
    list: NetworkConfigList,
    plugins: PluginConfig[],
    id: string,
    netns: string,
    ifName: string,
    args: [string, string][],
    caps: Record<string, unknown>,
    prevResult: CniResult | undefined,
  ): Promise<CniResult | undefined> {
    let prev = prevResult;
    let delError: Error | undefined;
    for (const plugin of plugins) {
      const config = pluginStdin(list, plugin, prev, caps);
      const started = Date.now();
      const call = invokePlugin({ command, type: plugin.type, containerId: id, netns, ifName, args, config }, { binDirs: this.binDirs, timeoutMs: this.timeoutMs }).finally(() => {
        if (this.log.enabled('debug')) this.log.debug('CNI plugin ran', { id, network: list.name, plugin: plugin.type, command, ifname: ifName, ms: Date.now() - started });
      });
      if (command === 'DEL') {
        // Unlike libcni, a failing DEL does not stop the plugins before it in the chain from
        // releasing theirs (an address, a veth); the first error is still reported.
        // One that no longer finds its part has done its DEL.
        await call.catch((err: Error) => {
          if (isIgnorableDelError(err, netns)) return;
          delError ??= err;
          this.log.warn('CNI DEL failed, going on with the rest of the chain', { id, plugin: plugin.type, error: err.message });
        });
        continue;
      }
      const out = await call;
      if (command === 'ADD') {
        try {
          prev = parseResult(out);
        } catch (err) {
          throw new UnknownError(`plugin type="${plugin.type}" (add) printed an invalid result: ${(err as Error).message}`);
        }
      }
    }
    if (delError) throw delError;
    return prev;
  }
}

/** As containerd: a DEL that no longer finds what it would delete has nothing left to do. */
function isIgnorableDelError(err: Error, netns: string): boolean {
  return err.message.includes('not found') || (netns === '' && err.message.includes('no such file or directory'));
}

/**
 * Builds one plugin's stdin as libcni does: its own keys, the list's name and cniVersion, the
 * previous result, and `runtimeConfig` with only the capabilities it declares.
 */
export function pluginStdin(list: NetworkConfigList, plugin: PluginConfig, prevResult: CniResult | undefined, caps: Record<string, unknown>): Record<string, unknown> {
  const config: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  // libcni hands prevResult on as it re-reads it, with an empty dns object when there was none.
  if (prevResult !== undefined) config.prevResult = { dns: {}, ...prevResult };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) if (on && caps[cap] !== undefined) runtimeConfig[cap] = caps[cap];
  if (Object.keys(runtimeConfig).length > 0) config.runtimeConfig = runtimeConfig;
  return config;
}

function checkId(id: string): void {
  if (!ID_RE.test(id)) throw new InvalidArgumentError(`invalid sandbox id ${JSON.stringify(id)}: letters, digits, '_', '.' and '-' only`);
}

/** CNI_ARGS as containerd sends them: IgnoreUnknown=1, then the K8S_POD_* values, then the extras. */
export function cniArgs(id: string, options: AttachOptions): [string, string][] {
  const out: [string, string][] = [['IgnoreUnknown', '1']];
  if (options.pod) {
    out.push(['K8S_POD_NAMESPACE', options.pod.namespace], ['K8S_POD_NAME', options.pod.name], ['K8S_POD_INFRA_CONTAINER_ID', id], ['K8S_POD_UID', options.pod.uid]);
  }
  out.push(...(options.args ?? []));
  for (const [k, v] of out) {
    if (k === '' || /[;=]/.test(k) || v.includes(';')) throw new InvalidArgumentError(`CNI_ARGS pair ${JSON.stringify(`${k}=${v}`)}: keys cannot be empty or hold ';' or '=', values cannot hold ';'`);
  }
  return out;
}

/**
 * The capability arguments containerd passes: port mappings with a host port, dns, bandwidth,
 * pod annotations. Keys are spelled as containerd sends them (go-cni's structs carry no JSON
 * tags, so `HostPort`, `Servers`, `IngressRate`, and all four bandwidth fields, zeros included);
 * the plugins, in Go, read keys without regard to case.
 */
export function capabilityArgs(options: AttachOptions): Record<string, unknown> {
  const caps: Record<string, unknown> = { 'io.kubernetes.cri.pod-annotations': options.podAnnotations ?? {} };
  const ports = (options.portMappings ?? [])
    .filter((p) => p.hostPort > 0)
    .map((p) => ({ HostPort: p.hostPort, ContainerPort: p.containerPort, Protocol: (p.protocol ?? 'tcp').toLowerCase(), HostIP: p.hostIP ?? '' }));
  if (ports.length > 0) caps.portMappings = ports;
  if (options.dns) caps.dns = { Servers: options.dns.servers ?? [], Searches: options.dns.searches ?? [], Options: options.dns.options ?? [] };
  if (options.bandwidth) {
    const b = options.bandwidth;
    caps.bandwidth = { IngressRate: b.ingressRate ?? 0, IngressBurst: b.ingressBurst ?? 0, EgressRate: b.egressRate ?? 0, EgressBurst: b.egressBurst ?? 0 };
  }
  return caps;
}
