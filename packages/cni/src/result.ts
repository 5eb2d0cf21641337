/** A CNI result as a plugin prints it on ADD (spec 0.3.0 to 1.0.0; 0.1/0.2 results are converted). */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
  [key: string]: unknown;
}

/** Which address becomes the pod IP: the first IPv4 (containerd's default), the first IPv6, or the first the plugins returned. */
export type IpPreference = 'ipv4' | 'ipv6' | 'cni';

/** One address on an interface, without the prefix length, and its gateway. */
export interface IpConfig {
  ip: string;
  gateway?: string;
}

/** One interface of a pod as the results describe it. */
export interface InterfaceConfig {
  mac?: string;
  /** The netns path for an interface inside the pod; absent for host-side interfaces. */
  sandbox?: string;
  ipConfigs: IpConfig[];
}

/** The outcome of attaching a pod to all networks, merged as go-cni merges it. */
export interface SetupResult {
  /** First IPv4 address on the default interface (eth0), or its first address; '' when none. */
  ip: string;
  /** The other addresses of the default interface. */
  additionalIps: string[];
  /** Interfaces by name, host-side ones (bridge, veth) included. */
  interfaces: Record<string, InterfaceConfig>;
  routes: { dst: string; gw?: string }[];
  dns: { nameservers: string[]; domain?: string; search: string[]; options: string[] }[];
  /** Each network's final result, by network name, as the last plugin of its chain printed it. */
  results: Record<string, CniResult>;
}

interface LegacyIp {
  ip: string;
  gateway?: string;
  routes?: { dst: string; gw?: string }[];
}

/** Reads a plugin's ADD output; 0.1.0/0.2.0 `ip4`/`ip6` results become `ips` and `routes`. */
export function parseResult(value: unknown): CniResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('result is not a JSON object');
  const r = value as CniResult & { ip4?: LegacyIp; ip6?: LegacyIp };
  if (typeof r.cniVersion !== 'string') throw new Error('result has no cniVersion');
  if (r.ip4 === undefined && r.ip6 === undefined) return r;
  const ips: NonNullable<CniResult['ips']> = [];
  const routes: NonNullable<CniResult['routes']> = [];
  for (const l of [r.ip4, r.ip6]) {
    if (!l) continue;
    ips.push({ address: l.ip, gateway: l.gateway });
    routes.push(...(l.routes ?? []));
  }
  const { ip4: _4, ip6: _6, ...rest } = r;
  return { ...rest, ips, routes };
}

const addressOf = (cidr: string) => cidr.split('/')[0];
const isIpv4 = (ip: string) => /^\d+\.\d+\.\d+\.\d+$/.test(ip);

/**
 * Merges per-network results (each attached as `ifName`) into one view: interfaces by name with
 * their addresses (an address without an interface index belongs to its network's interface),
 * and the pod IP chosen as containerd chooses it (`ip_pref`): by default the first IPv4 on
 * `defaultIfName`, the rest additional in their order.
 */
export function mergeResults(parts: { networkName: string; ifName: string; result: CniResult }[], defaultIfName: string, ipPreference: IpPreference = 'ipv4'): SetupResult {
  const out: SetupResult = { ip: '', additionalIps: [], interfaces: {}, routes: [], dns: [], results: {} };
  for (const { networkName, ifName, result } of parts) {
    out.results[networkName] = result;
    const ifaces = result.interfaces ?? [];
    for (const i of ifaces) out.interfaces[i.name] = { mac: i.mac, sandbox: i.sandbox, ipConfigs: out.interfaces[i.name]?.ipConfigs ?? [] };
    for (const ip of result.ips ?? []) {
      const name = ip.interface !== undefined && ip.interface >= 0 && ip.interface < ifaces.length ? ifaces[ip.interface].name : ifName;
      (out.interfaces[name] ??= { ipConfigs: [] }).ipConfigs.push({ ip: addressOf(ip.address), gateway: ip.gateway });
    }
    out.routes.push(...(result.routes ?? []));
    if (result.dns) out.dns.push({ nameservers: result.dns.nameservers ?? [], domain: result.dns.domain, search: result.dns.search ?? [], options: result.dns.options ?? [] });
  }
  const ips = (out.interfaces[defaultIfName]?.ipConfigs ?? []).map((c) => c.ip);
  const first = ipPreference === 'cni' ? ips[0] : (ips.find((ip) => isIpv4(ip) === (ipPreference === 'ipv4')) ?? ips[0]);
  if (first !== undefined) {
    out.ip = first;
    out.additionalIps = ips.filter((ip, i) => i !== ips.indexOf(first));
  }
  return out;
}
