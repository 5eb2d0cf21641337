/*
 * The CRI test bed of the crictl and critest tests (not part of the package's build): the world
 * (loopback registry, images, hosts.toml), the private CNI bridge network, the CRI config TOML,
 * berthd and the reference containerd (1.6.20 or 2.4.2) on temp dirs, a test-unique cgroup
 * parent, crictl runners, pod and container config files, host-state snapshots, and one cleanup
 * that undoes all of it, also after a failed test.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeNetns } from '@berth/cni';
import { TestNetwork, bridgePorts, hostportChainsExist, iptablesOf, removeUnusedHostportChains } from '@berth/cni/test-helpers';
import { readMountInfo } from '@berth/mount';
import { cleanupShims } from '@berth/tasks/test-support';
import { CONTAINERD2_SHIM_PATH, type CrictlResult, ReferenceContainerd, ReferenceContainerd2, TestDaemon, runCrictl, runCtr } from '@berth/testing';
import { type CriWorld, addPauseImage, startCriWorld } from './test-support';

/** The busybox image of the world, as CRI names it. */
export const BUSYBOX = 'docker.io/library/busybox:berth';

const CRI = 'plugins."io.containerd.grpc.v1.cri"';

/** What every pod config file of a test file has, besides what each call adds. */
export interface PodDefaults {
  /** Pods are named `<prefix>-<n>`, in `<prefix>-<n>.json`; `pod` by default. */
  prefix?: string;
  /** `metadata.attempt`; 0 by default. */
  attempt?: number;
  /** The hostname for a pod's name; none by default. */
  hostname?: (name: string) => string;
  /**
   * `log_directory`: `own` is `logs/<name>` (made when `makeLogDir`), `shared` is `logs` (not
   * made), `none` leaves it out (the default).
   */
  logs?: 'own' | 'shared' | 'none';
  makeLogDir?: boolean;
  /** Fields after those (labels, annotations, dns_config...), given the pod's number. */
  fields?: (n: number) => Record<string, unknown>;
}

/** A pod config file the bed wrote. */
export interface PodFile {
  path: string;
  name: string;
  /** Its log_directory ('' when it has none). */
  logDir: string;
}

export interface CriTestBedOptions {
  /** Names the pods' cgroup parent, `/berth-cri-<name>-<pid>`, which cleanup removes. */
  name: string;
  /**
   * A cgroup parent that is not the bed's own (critest's pods go under `/k8s.io`): cleanup
   * removes it only when it is empty, and leaves what is under it alone.
   */
  sharedCgroupParent?: string;
  /** The private CNI bridge network, the pause image and the netns/cni keys in the config; true by default. */
  network?: boolean;
  /** Start berthd (true by default) and which reference containerd (none by default) before the tests. */
  berthd?: boolean;
  containerd?: '1.6' | '2';
  /** Pull the world's busybox ({@link BUSYBOX}) into each daemon started. */
  pullBusybox?: boolean;
  /** `restrict_oom_score_adj`; true by default. */
  restrictOomScoreAdj?: boolean;
  /**
   * Add containerd 1.6's `netns_mounts_under_state_dir = true` (berthd ignores it) even though
   * the bed does not start containerd 1.6 itself ({@link CriTestBed.startContainerd} does).
   */
  netnsUnderStateDir?: boolean;
  /** TOML after the CRI sections (runtimes...), given the world; it may make the directories it names. */
  extraConfig?: (world: CriWorld) => string;
  pod?: PodDefaults;
  /** Fields of every container config after metadata and image (log_path, labels...), given its name. */
  container?: (name: string) => Record<string, unknown>;
}

/** One daemon of the bed as the side-by-side tests address it. */
export interface CriDaemon {
  name: 'berthd' | 'containerd';
  address: string;
  dir: string;
  root: string;
  state: string;
  /** Where its network namespaces are mounted. */
  netnsDir: string;
  /** Runs the ctr of the daemon's version against it. */
  ctr(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** What a pod may leave on the host, each item sorted. */
export interface HostState {
  netns: string[];
  veths: string[];
  allocations: string[];
  iptables: string[];
  cgroups: string[];
  mounts: string[];
  shims: number[];
}

/** The processes whose command line names `address`: a daemon's shims. */
export function shimPids(address: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(address);
      } catch {
        return false;
      }
    })
    .map(Number)
    .sort();
}

/**
 * The world, network and daemons of one test file. {@link useCriTestBed} makes one and hooks its
 * start and cleanup into the enclosing describe; the fields are set once `start` has run.
 */
export class CriTestBed {
  world!: CriWorld;
  net!: TestNetwork;
  berthd!: TestDaemon;
  containerd!: ReferenceContainerd;
  /** The pods' cgroup parent (`linux.cgroup_parent` of every pod config written here). */
  readonly cgroupParent: string;
  /** The number of the last pod or container config written. */
  seq = 0;
  private hadHostportChains = false;
  private containerdConfig = '';
  private readonly started: Array<TestDaemon | ReferenceContainerd> = [];

  constructor(readonly options: CriTestBedOptions) {
    this.cgroupParent = options.sharedCgroupParent ?? `/berth-cri-${options.name}-${process.pid}`;
  }

  private get network(): boolean {
    return this.options.network ?? true;
  }

  /** The world's temp dir. */
  get dir(): string {
    return this.world.dir;
  }

  /** Starts the world, the network and the daemons the options name. */
  async start(): Promise<void> {
    this.hadHostportChains = hostportChainsExist();
    this.world = await startCriWorld();
    if (this.network) {
      await addPauseImage(this.world);
      this.net = new TestNetwork();
    }
    if (this.options.berthd ?? true) this.berthd = await this.startBerthd();
    if (this.options.containerd) this.containerd = await this.startContainerd();
    if (this.options.pullBusybox) for (const d of this.daemons()) await this.okAt(d.address, 'pull', BUSYBOX);
  }

  /**
   * The CRI config of berthd and containerd 1.6 (each ignores the other's keys:
   * netns_mounts_under and cni.cache_dir are berthd's, netns_mounts_under_state_dir is 1.6's).
   * Without the network it is the world's config.
   */
  config(over: { sandboxImage?: string } = {}): string {
    if (!this.network) return this.world.criConfig + (this.options.extraConfig?.(this.world) ?? '');
    const stateDir = this.options.containerd === '1.6' || this.options.netnsUnderStateDir ? '  netns_mounts_under_state_dir = true\n' : '';
    return (
      `[${CRI}]\n  sandbox_image = ${JSON.stringify(over.sandboxImage ?? 'registry.k8s.io/pause:3.6')}\n  restrict_oom_score_adj = ${this.options.restrictOomScoreAdj ?? true}\n  netns_mounts_under = ${JSON.stringify(this.net.netnsRoot)}\n${stateDir}` +
      `[${CRI}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(this.net.confDir)}\n  cache_dir = ${JSON.stringify(this.net.cacheDir)}\n` +
      `[${CRI}.registry]\n  config_path = ${JSON.stringify(this.world.hostsDir)}\n` +
      (this.options.extraConfig?.(this.world) ?? '')
    );
  }

  /**
   * containerd 2.x's config (version 3: the CRI runtime and images are plugins of their own),
   * everything it would otherwise read or make on the machine pointed into the test's dirs, its
   * pods run by its own runc shim (it cannot start Debian's 1.6 shim).
   */
  private containerd2Config(): string {
    const rt = 'plugins."io.containerd.cri.v1.runtime"';
    const im = 'plugins."io.containerd.cri.v1.images"';
    for (const d of ['cdi', 'opt']) mkdirSync(join(this.world.dir, d), { recursive: true });
    return (
      `[${im}]\n  snapshotter = "overlayfs"\n[${im}.pinned_images]\n  sandbox = "registry.k8s.io/pause:3.6"\n[${im}.registry]\n  config_path = ${JSON.stringify(this.world.hostsDir)}\n` +
      `[${rt}]\n  restrict_oom_score_adj = ${this.options.restrictOomScoreAdj ?? true}\n  netns_mounts_under_state_dir = true\n  cdi_spec_dirs = [${JSON.stringify(join(this.world.dir, 'cdi'))}]\n` +
      `[${rt}.containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n  runtime_path = ${JSON.stringify(CONTAINERD2_SHIM_PATH)}\n` +
      `[${rt}.cni]\n  bin_dirs = ["/usr/lib/cni"]\n  conf_dir = ${JSON.stringify(this.net.confDir)}\n` +
      `[plugins."io.containerd.internal.v1.opt"]\n  path = ${JSON.stringify(join(this.world.dir, 'opt'))}\n`
    );
  }

  /** Starts a berthd on the bed's config (or `config`); {@link cleanup} stops it unless {@link stopDaemon} did. */
  async startBerthd(config = this.config()): Promise<TestDaemon> {
    const d = await TestDaemon.start({ config, logLevel: 'info' });
    this.started.push(d);
    return d;
  }

  /** Starts the reference containerd of the options (1.6 unless they say 2). */
  async startContainerd(): Promise<ReferenceContainerd> {
    let d: ReferenceContainerd;
    if (this.options.containerd === '2') {
      this.containerdConfig ||= this.containerd2Config();
      d = await ReferenceContainerd2.start({ config: this.containerdConfig, cri: true });
    } else d = await ReferenceContainerd.start({ config: this.config(), cri: true });
    this.started.push(d);
    return d;
  }

  /**
   * Stops the reference containerd (its shims and containers run on), runs `whileDown`, waits
   * `pauseMs`, and starts it again on the same dirs.
   */
  async restartContainerd(pauseMs: number, whileDown?: () => Promise<void>): Promise<void> {
    const old = this.containerd;
    await old.stop();
    await whileDown?.();
    await new Promise((r) => setTimeout(r, pauseMs));
    const options = { dir: old.dir, config: this.options.containerd === '2' ? this.containerdConfig : this.config(), cri: true };
    this.containerd = this.options.containerd === '2' ? await ReferenceContainerd2.start(options) : await ReferenceContainerd.start(options);
    this.started.splice(this.started.indexOf(old), 1, this.containerd);
  }

  /** The daemons the bed started, berthd first, as the side-by-side tests address them. */
  daemons(): CriDaemon[] {
    const out: CriDaemon[] = [];
    if (this.berthd) {
      const b = this.berthd;
      out.push({ name: 'berthd', address: b.address, dir: b.dir, root: b.root, state: b.state, netnsDir: this.net?.netnsRoot ?? '', ctr: (args) => b.ctr(args) });
    }
    if (this.containerd) {
      const c = this.containerd;
      out.push({ name: 'containerd', address: c.address, dir: c.dir, root: c.root, state: c.state, netnsDir: join(c.state, 'io.containerd.grpc.v1.cri', 'netns'), ctr: (args) => runCtr(c.address, args, { ctr: c.ctrPath }) });
    }
    return out;
  }

  /** crictl against berthd. */
  crictl = (...args: string[]): Promise<CrictlResult> => runCrictl(this.berthd.address, args);

  /** crictl against berthd that must succeed: its stdout. */
  ok = async (...args: string[]): Promise<string> => this.okAt(this.berthd.address, ...args);

  /** crictl against the daemon at `address` that must succeed: its stdout. */
  async okAt(address: string, ...args: string[]): Promise<string> {
    const r = await runCrictl(address, args);
    if (r.code !== 0) throw new Error(`crictl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** The same crictl command against berthd, then containerd. */
  async both(...args: string[]): Promise<{ berthd: CrictlResult; containerd: CrictlResult }> {
    const b = await runCrictl(this.berthd.address, args);
    const c = await runCrictl(this.containerd.address, args);
    return { berthd: b, containerd: c };
  }

  /** Removes every pod of the daemon at `address` (`rmp -f`, their containers with them). */
  async removePods(address: string): Promise<void> {
    const ids = (await runCrictl(address, ['pods', '-q']).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    for (const id of ids) await runCrictl(address, ['rmp', '-f', id]);
  }

  /** Writes a pod config (the file's {@link PodDefaults}, then `over`, then the cgroup parent under `linux`). */
  pod(over: Record<string, unknown> = {}): PodFile {
    const d = this.options.pod ?? {};
    this.seq += 1;
    const n = this.seq;
    const name = `${d.prefix ?? 'pod'}-${n}`;
    const logs = d.logs ?? 'none';
    const logDir = logs === 'own' ? join(this.world.dir, 'logs', name) : logs === 'shared' ? join(this.world.dir, 'logs') : '';
    if (logs === 'own' && d.makeLogDir) mkdirSync(logDir, { recursive: true });
    const config = {
      metadata: { name, namespace: 'berth-test', uid: `uid-${process.pid}-${n}`, attempt: d.attempt ?? 0 },
      ...(d.hostname ? { hostname: d.hostname(name) } : {}),
      ...(logDir ? { log_directory: logDir } : {}),
      ...(d.fields?.(n) ?? {}),
      ...over,
      // A test-unique cgroup parent: other runs' pods (containerd's default /k8s.io) stay out of the comparison.
      linux: { cgroup_parent: this.cgroupParent, ...((over.linux as object | undefined) ?? {}) },
    };
    const path = join(this.world.dir, `${name}.json`);
    writeFileSync(path, JSON.stringify(config));
    return { path, name, logDir };
  }

  /** Writes a container config of the busybox image (the file's defaults, then `over`) and returns its path. */
  containerConfig(name: string, over: Record<string, unknown> = {}): string {
    this.seq += 1;
    const path = join(this.world.dir, `${this.options.pod?.prefix ?? 'pod'}-ctr-${this.seq}.json`);
    writeFileSync(path, JSON.stringify({ metadata: { name }, image: { image: BUSYBOX }, ...(this.options.container?.(name) ?? {}), ...over }));
    return path;
  }

  /** The cgroup parent in each controller where it exists. */
  private parentCgroups(): string[] {
    if (!existsSync('/sys/fs/cgroup')) return [];
    return readdirSync('/sys/fs/cgroup')
      .map((c) => join('/sys/fs/cgroup', c, this.cgroupParent))
      .filter((d) => existsSync(d));
  }

  /**
   * What pods may leave on the host, for a daemon (berthd by default): its network namespaces,
   * the veths on the bridge, host-local's addresses, the network's iptables rules (the shared
   * CNI-HOSTPORT chains aside), the pod cgroups under the parent, the mounts under its dir and
   * the network's, and its shims. Only `keys` when given.
   */
  hostState<K extends keyof HostState = keyof HostState>(keys?: readonly K[], d: CriDaemon = this.daemons()[0]): Pick<HostState, K> {
    const want = (k: keyof HostState) => !keys || (keys as readonly string[]).includes(k);
    const state: Partial<HostState> = {};
    if (want('netns')) state.netns = existsSync(d.netnsDir) ? readdirSync(d.netnsDir).sort() : [];
    // The host ends of the pods' veths are the ports of this network's bridge.
    if (want('veths')) state.veths = bridgePorts(this.net.bridge);
    if (want('allocations')) state.allocations = this.net.allocations().sort();
    if (want('iptables')) state.iptables = iptablesOf(this.net).filter((l) => !l.startsWith(':CNI-HOSTPORT') && !/-j CNI-HOSTPORT-/.test(l) && !l.startsWith('-A CNI-HOSTPORT-'));
    if (want('cgroups')) state.cgroups = this.parentCgroups().flatMap((p) => readdirSync(p).filter((e) => /^[0-9a-f]{64}$/.test(e)).map((e) => join(p, e))).sort();
    if (want('mounts'))
      state.mounts = readMountInfo()
        .map((m) => m.mountPoint)
        .filter((p) => p.startsWith(d.dir) || p.startsWith(this.net.dir))
        .sort();
    if (want('shims')) state.shims = shimPids(d.address);
    return state as Pick<HostState, K>;
  }

  /** Stops a daemon the bed started and removes what it left: pods, shims, netns, its dirs. */
  async stopDaemon(d: TestDaemon | ReferenceContainerd): Promise<void> {
    const i = this.started.indexOf(d);
    if (i >= 0) this.started.splice(i, 1);
    // Pods a failed test left behind go first (their netns, veths and rules).
    await this.removePods(d.address);
    await d.stop();
    await cleanupShims(d.address, d.dir);
    if (d instanceof ReferenceContainerd) {
      // containerd mounts its network namespaces under its state dir, and leaves some.
      const netnsDir = join(d.state, 'io.containerd.grpc.v1.cri', 'netns');
      if (existsSync(netnsDir)) for (const n of readdirSync(netnsDir)) await removeNetns(join(netnsDir, n));
    }
    await d.cleanup();
  }

  /** Undoes everything: the daemons (and their pods), the network, the hostport chains it made, the cgroups, the world. */
  async cleanup(): Promise<void> {
    for (const d of [...this.started]) await this.stopDaemon(d);
    await this.net?.cleanup();
    if (!this.hadHostportChains) removeUnusedHostportChains();
    // rmdir removes only an empty cgroup; under a shared parent, others' pods are left alone.
    const own = !this.options.sharedCgroupParent;
    for (const d of this.parentCgroups().flatMap((p) => [...(own ? readdirSync(p).filter((e) => /^[0-9a-f]{64}$/.test(e)).map((e) => join(p, e)) : []), p])) {
      try {
        rmdirSync(d);
      } catch {
        /* in use */
      }
    }
    await this.world?.cleanup();
  }
}

/** The gRPC error crictl's stderr quotes inside err="...", unescaped, ids as `<id>` (or the exit code and all of stderr). */
export const errorOf = (r: CrictlResult): string => {
  const m = /rpc error: (code = \w+ desc = .*?)"?\n/.exec(r.stderr.replace(/\\"/g, '"'));
  return m ? m[1].replace(/[0-9a-f]{64}/g, '<id>') : `exit ${r.code}: ${r.stderr}`;
};

/** Polls `fn` every 200 ms until it gives something other than undefined or false, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A {@link CriTestBed} started in beforeAll and cleaned up in afterAll of the enclosing describe. */
export function useCriTestBed(options: CriTestBedOptions): CriTestBed {
  const bed = new CriTestBed(options);
  beforeAll(() => bed.start());
  afterAll(() => bed.cleanup());
  return bed;
}
