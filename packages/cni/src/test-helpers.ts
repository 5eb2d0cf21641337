import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '@berth/testing';
import { CniNetworkPlugin, type CniOptions } from './cni';
import type { PluginConfig } from './config';
import type { SetupResult } from './result';
import { removeNetns } from './netns';

/** Where Debian's containernetworking-plugins puts the plugins (tools/setup.sh installs them). */
export const DEBIAN_CNI_BIN = '/usr/lib/cni';

const sh = (file: string, args: string[], input?: string) => execFileSync(file, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

/** What iptables-save prints (of every table, or of one), without comments and counters. */
function saved(table?: string): string[] {
  return sh('iptables-save', table ? ['-t', table] : [])
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
}

/** The nat table as iptables-save prints it, without comments and counters. */
export function natTable(): string[] {
  return saved('nat');
}

/**
 * Every table's chains and rules (iptables-save, no comments or counters) that are this network's:
 * those that name its bridge, its subnet or the network, and the CNI chains those rules use (the
 * chains portmap makes per pod), declaration and rules. The CNI chains all networks share
 * (CNI-HOSTPORT-*) count only with rules that name this network. Other programs' rules, and other
 * networks' (tests beside this one make theirs meanwhile), are left out.
 */
export function iptablesOf(net: { name: string; bridge: string; subnet: string }): string[] {
  const lines = saved();
  const mine = (l: string) => l.includes(net.bridge) || l.includes(`${net.subnet}.`) || l.includes(net.name);
  const chains = new Set(
    lines
      .filter(mine)
      .flatMap((l) => [...l.matchAll(/(?:^-A |-j |-g )(CNI-[\w-]+)/g)].map((m) => m[1]))
      .filter((c) => !c.startsWith('CNI-HOSTPORT-')),
  );
  const chainOf = (l: string) => /^(?::|-A )(\S+)/.exec(l)?.[1];
  return lines.filter((l) => mine(l) || chains.has(chainOf(l) ?? ''));
}

/** The nat rules portmap made for a network (their comment names it) and the chains they jump to. */
export function portmapRulesOf(networkName: string): { rules: string[]; chains: string[] } {
  const rules = natTable().filter((l) => l.startsWith('-A ') && l.includes(`name: \\"${networkName}\\"`));
  const chains = [...new Set(rules.map((l) => / -j (CNI-DN-[0-9a-f]+)/.exec(l)?.[1]).filter((c): c is string => !!c))];
  return { rules, chains };
}

/** Deletes rules and chains with iptables-restore (it parses iptables-save's quoting itself). */
function natDelete(rules: string[], chains: string[]): void {
  if (rules.length === 0 && chains.length === 0) return;
  const lines = ['*nat', ...rules.map((r) => r.replace(/^-A /, '-D ')), ...chains.flatMap((c) => [`-F ${c}`, `-X ${c}`]), 'COMMIT', ''];
  sh('iptables-restore', ['--noflush'], lines.join('\n'));
}

const HOSTPORT_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'];

/** Whether portmap's shared chains exist (they outlive every pod, as with containerd). */
export function hostportChainsExist(): boolean {
  return natTable().some((l) => l.startsWith(':CNI-HOSTPORT-DNAT '));
}

/**
 * Removes portmap's shared chains and the jumps to them, but only when no pod uses them (no rule
 * in CNI-HOSTPORT-DNAT): for tests that found none when they started.
 */
export function removeUnusedHostportChains(): void {
  const nat = natTable();
  if (!nat.some((l) => l.startsWith(':CNI-HOSTPORT-DNAT '))) return;
  if (nat.some((l) => l.startsWith('-A CNI-HOSTPORT-DNAT '))) return;
  const rules = nat.filter((l) => l.startsWith('-A ') && HOSTPORT_CHAINS.some((c) => l.includes(`-j ${c}`) || l.startsWith(`-A ${c} `)));
  natDelete(rules, HOSTPORT_CHAINS.filter((c) => nat.some((l) => l.startsWith(`:${c} `))));
}

/** Interfaces of the host network namespace. */
export function hostLinks(): string[] {
  return sh('ip', ['-o', 'link', 'show']).split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]);
}

/** The host ends of a pod's veths in its setup result (the interfaces with no sandbox). */
export function hostVeths(result: SetupResult): string[] {
  return Object.entries(result.interfaces)
    .filter(([name, i]) => name.startsWith('veth') && !i.sandbox)
    .map(([name]) => name);
}

/**
 * The links enslaved to a bridge (the host ends of its pods' veths), sorted; none when the bridge
 * is not there. A test's own leftovers, where a look at all the host's links would also see what
 * the tests running beside it made meanwhile.
 */
export function bridgePorts(bridge: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${bridge}/brif`).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Picks a 10.99.x.0/24 that no host route uses and reserves it with a lock file (test files run
 * in parallel, and a bridge's route appears only with its first pod); a reservation older than
 * an hour is a crashed run's and is taken over.
 */
function reserveSubnet(): { subnet: string; release(): void } {
  const routes = sh('ip', ['-4', 'route', 'show']);
  for (;;) {
    const x = 100 + (randomBytes(1)[0] % 150);
    if (routes.includes(`10.99.${x}.`)) continue;
    const lock = join(tmpdir(), `berth-cni-subnet-10.99.${x}`);
    try {
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 3600_000) rmSync(lock, { force: true });
      closeSync(openSync(lock, 'wx'));
    } catch {
      continue;
    }
    return { subnet: `10.99.${x}`, release: () => rmSync(lock, { force: true }) };
  }
}

/** What a test network's plugin list gets to build on. */
export interface NetworkParts {
  name: string;
  bridge: string;
  subnet: string;
  dataDir: string;
  bridgePlugin: PluginConfig;
  portmapPlugin: PluginConfig;
}

/**
 * A private test network: a temp dir with conf/cache/ipam/netns/bin directories, a conflist for a
 * test-unique bridge (isGateway, no masquerade, no default route) on a free 10.99.x.0/24 with
 * host-local, and portmap. `cleanup` removes what setups left even when a test failed: namespaces,
 * portmap rules naming the network, the bridge, the directory.
 */
export class TestNetwork {
  readonly dir: string;
  readonly name: string;
  readonly bridge: string;
  /** The first three octets, e.g. `10.99.123`. */
  readonly subnet: string;
  readonly confDir: string;
  readonly cacheDir: string;
  readonly dataDir: string;
  readonly netnsRoot: string;
  /** A bin dir searched before the Debian plugins, for plugins a test writes. */
  readonly binDir: string;
  private readonly remove: () => void;
  private readonly releaseSubnet: () => void;
  private readonly children = new Set<ChildProcess>();

  constructor(plugins?: (parts: NetworkParts) => PluginConfig[], cniVersion = '1.0.0') {
    const t = tempDir('berth-cni-');
    this.dir = t.path;
    this.remove = t.remove;
    const id = randomBytes(3).toString('hex');
    this.name = `berth-test-${id}`;
    this.bridge = `bt${id}`;
    const reservation = reserveSubnet();
    this.subnet = reservation.subnet;
    this.releaseSubnet = reservation.release;
    this.confDir = join(this.dir, 'conf');
    this.cacheDir = join(this.dir, 'cache');
    this.dataDir = join(this.dir, 'ipam');
    this.netnsRoot = join(this.dir, 'netns');
    this.binDir = join(this.dir, 'bin');
    for (const d of [this.confDir, this.binDir]) mkdirSync(d, { recursive: true });
    const bridgePlugin: PluginConfig = {
      type: 'bridge',
      bridge: this.bridge,
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: `${this.subnet}.0/24` }]], dataDir: this.dataDir },
    };
    const portmapPlugin: PluginConfig = { type: 'portmap', capabilities: { portMappings: true } };
    const parts = { name: this.name, bridge: this.bridge, subnet: this.subnet, dataDir: this.dataDir, bridgePlugin, portmapPlugin };
    this.writeConfig('10-test.conflist', { cniVersion, name: this.name, plugins: plugins ? plugins(parts) : [bridgePlugin, portmapPlugin] });
  }

  writeConfig(file: string, value: unknown): void {
    writeFileSync(join(this.confDir, file), typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  }

  /** A plugin reading this network's directories, with the Debian plugins after `binDir`. */
  plugin(options: CniOptions = {}): CniNetworkPlugin {
    return new CniNetworkPlugin({ binDir: [this.binDir, DEBIAN_CNI_BIN], confDir: this.confDir, cacheDir: this.cacheDir, pluginTimeoutMs: 30_000, ...options });
  }

  /** The addresses host-local holds for this network (one file per address). */
  allocations(): string[] {
    const d = join(this.dataDir, this.name);
    return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
  }

  /** Starts a TCP server inside a namespace that answers every connection with `reply`. */
  async listen(netnsPath: string, port: number, reply: string): Promise<void> {
    const script = `require('net').createServer((s) => s.end(${JSON.stringify(reply)})).listen(${port}, () => console.log('listening'))`;
    const child = spawn('nsenter', [`--net=${netnsPath}`, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (b) => (err += b));
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`listener in ${netnsPath} exited (${code}): ${err}`)));
    });
  }

  async cleanup(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    if (existsSync(this.netnsRoot)) for (const n of readdirSync(this.netnsRoot)) await removeNetns(join(this.netnsRoot, n));
    const { rules, chains } = portmapRulesOf(this.name);
    natDelete(rules, chains);
    if (hostLinks().includes(this.bridge)) sh('ip', ['link', 'delete', this.bridge]);
    this.remove();
    this.releaseSubnet();
  }
}

/** Connects over TCP and resolves with everything the peer sent before closing. */
export function fetchTcp(host: string, port: number, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let data = '';
    const timer = setTimeout(() => s.destroy(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`)), timeoutMs);
    s.on('data', (b) => (data += b));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
