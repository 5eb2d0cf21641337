/**
 * Acceptance against a real berthd: kill -9 with three running pods. Each pod runs a container
 * writing a numbered log line every 200 ms; berthd is SIGKILLed and started again on the same
 * root. The pods are READY with the same IPs, the containers RUNNING with the same pids, exec
 * works in each, every log keeps growing with no line lost or repeated; once everything is
 * stopped and removed nothing is left on the host: network namespaces, veths, host-local IP
 * allocations, cgroups, mounts, shim processes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNetwork, hostLinks, hostportChainsExist, removeUnusedHostportChains } from '@berth/cni/test-helpers';
import { readMountInfo } from '@berth/mount';
import { type CrictlResult, TestDaemon, runCrictl } from '@berth/testing';
import { cleanupShims } from '@berth/tasks/test-support';
import { type CriWorld, addPauseImage, json, startCriWorld } from './test-support';

jest.setTimeout(180_000);

let world: CriWorld;
let net: TestNetwork;
let daemon: TestDaemon;
let hadHostportChains = false;
const CGROUP_PARENT = `/berth-cri-accept-${process.pid}`;
const PARENT_CGROUPS = () => (existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c, CGROUP_PARENT)).filter((d) => existsSync(d)) : []);
const IMAGE = 'docker.io/library/busybox:berth';

const crictl = (...args: string[]): Promise<CrictlResult> => runCrictl(daemon.address, args);
async function ok(...args: string[]): Promise<string> {
  const r = await crictl(...args);
  if (r.code !== 0) throw new Error(`crictl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

let seq = 0;
function podConfig(): string {
  seq += 1;
  const logDir = join(world.dir, 'logs', `pod-${seq}`);
  mkdirSync(logDir, { recursive: true });
  const path = join(world.dir, `pod-${seq}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      metadata: { name: `pod-${seq}`, namespace: 'berth-test', uid: `uid-${process.pid}-${seq}`, attempt: 0 },
      hostname: `pod-${seq}`,
      log_directory: logDir,
      linux: { cgroup_parent: CGROUP_PARENT },
    }),
  );
  return path;
}

function containerConfig(name: string, command: string[]): string {
  seq += 1;
  const path = join(world.dir, `ctr-${seq}.json`);
  writeFileSync(path, JSON.stringify({ metadata: { name }, image: { image: IMAGE }, log_path: `${name}.log`, command }));
  return path;
}

/** Processes whose command line names this daemon's socket: its shims. */
function shims(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(daemon.address);
      } catch {
        return false;
      }
    })
    .map(Number)
    .sort();
}

/** What pods may leave on the host: compared before and after. */
function hostState() {
  const veths = hostLinks().includes(net.bridge)
    ? execFileSync('ip', ['-o', 'link', 'show', 'master', net.bridge], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(': ')[1].split('@')[0])
        .sort()
    : [];
  const cgroups = PARENT_CGROUPS().flatMap((d) => readdirSync(d).filter((e) => /^[0-9a-f]{64}$/.test(e)).map((e) => join(d, e))).sort();
  const mounts = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(daemon.dir) || p.startsWith(net.dir))
    .sort();
  const netns = existsSync(net.netnsRoot) ? readdirSync(net.netnsRoot).sort() : [];
  return { netns, veths, allocations: net.allocations().sort(), cgroups, mounts, shims: shims() };
}

/** The numbers of a ticker's log lines (`<time> stdout F tick <n>`), in file order. */
function ticks(path: string): number[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\S+ stdout F tick (\d+)$/.exec(l);
      if (!m) throw new Error(`unexpected log line in ${path}: ${JSON.stringify(l)}`);
      return Number(m[1]);
    });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  hadHostportChains = hostportChainsExist();
  world = await startCriWorld();
  await addPauseImage(world);
  net = new TestNetwork();
  const section = 'plugins."io.containerd.grpc.v1.cri"';
  const config =
    `[${section}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n  restrict_oom_score_adj = true\n  netns_mounts_under = ${JSON.stringify(net.netnsRoot)}\n` +
    `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(net.confDir)}\n  cache_dir = ${JSON.stringify(net.cacheDir)}\n` +
    `[${section}.registry]\n  config_path = ${JSON.stringify(world.hostsDir)}\n`;
  daemon = await TestDaemon.start({ config, logLevel: 'info' });
  await ok('pull', IMAGE);
});

afterAll(async () => {
  if (daemon) {
    // What a failed test left: its pods go first (their netns, veths, addresses).
    const ids = (await crictl('pods', '-q').catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    for (const id of ids) await crictl('rmp', '-f', id);
    await daemon.stop();
    await cleanupShims(daemon.address, daemon.dir);
    await daemon.cleanup();
  }
  await net?.cleanup();
  if (!hadHostportChains) removeUnusedHostportChains();
  for (const d of PARENT_CGROUPS().flatMap((p) => [...readdirSync(p).filter((e) => /^[0-9a-f]{64}$/.test(e)).map((e) => join(p, e)), p])) {
    try {
      rmdirSync(d);
    } catch {
      /* in use */
    }
  }
  await world?.cleanup();
});

describe('berthd killed with kill -9 while 3 pods run', () => {
  it('comes back with the 3 pods READY on the same IPs, their containers RUNNING with the same pids, exec working, logs growing without loss or repeat; removing them leaves nothing', async () => {
    const before = hostState();
    const script = 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done';
    const pods: Array<{ pod: string; ctr: string; ip: string; pid: number; podPid: number; log: string }> = [];
    for (let i = 0; i < 3; i++) {
      const config = podConfig();
      const pod = (await ok('runp', config)).trim();
      const ctr = (await ok('create', '--no-pull', pod, containerConfig(`ticker-${i}`, ['sh', '-c', script]), config)).trim();
      await ok('start', ctr);
      const p = json(await ok('inspectp', pod));
      const c = json(await ok('inspect', ctr));
      pods.push({ pod, ctr, ip: p.status.network.ip, pid: c.info.pid, podPid: p.info.pid, log: c.status.logPath });
    }
    expect(new Set(pods.map((p) => p.ip)).size).toBe(3);
    const shimsBefore = shims();
    expect(shimsBefore.length).toBeGreaterThan(0);
    for (const p of pods) await waitFor(`ticks in ${p.log}`, () => ticks(p.log).length >= 3);

    const berthdPid = daemon.pid!;
    await daemon.kill('SIGKILL');
    expect(existsSync(`/proc/${berthdPid}`)).toBe(false);
    // The containers run on without berthd: their shims hold the FIFOs' other ends, and what
    // they write meanwhile waits in the FIFOs for the restarted berthd to copy it to the log.
    const down = pods.map((p) => ticks(p.log).length);
    await new Promise((r) => setTimeout(r, 2000));
    expect(pods.map((p) => ticks(p.log).length)).toEqual(down);
    for (const p of pods) expect(existsSync(`/proc/${p.pid}`) && existsSync(`/proc/${p.podPid}`)).toBe(true);
    await daemon.restart();
    // The same shims serve the tasks: none restarted, none added.
    expect(shims()).toEqual(shimsBefore);

    const listed = json(await ok('pods', '-o', 'json')).items;
    expect(listed.map((p: any) => [p.id, p.state]).sort()).toEqual(pods.map((p) => [p.pod, 'SANDBOX_READY']).sort());
    const running = json(await ok('ps', '-o', 'json')).containers;
    expect(running.map((c: any) => [c.id, c.podSandboxId, c.state]).sort()).toEqual(pods.map((p) => [p.ctr, p.pod, 'CONTAINER_RUNNING']).sort());
    for (const p of pods) {
      const ip = json(await ok('inspectp', p.pod));
      expect({ state: ip.status.state, ip: ip.status.network.ip, pid: ip.info.pid }).toEqual({ state: 'SANDBOX_READY', ip: p.ip, pid: p.podPid });
      const c = json(await ok('inspect', p.ctr));
      expect({ state: c.status.state, pid: c.info.pid }).toEqual({ state: 'CONTAINER_RUNNING', pid: p.pid });
      expect((await ok('exec', '-s', p.ctr, 'sh', '-c', 'echo alive in $(hostname)')).trim()).toBe(`alive in ${ip.status.metadata.name}`);
    }
    // Every log: holds the lines written while berthd was down, grows after, its numbers
    // contiguous from 0 (none lost, none repeated).
    for (const [i, p] of pods.entries()) {
      const seen = ticks(p.log).length;
      expect(seen).toBeGreaterThan(down[i]);
      await waitFor(`more ticks in ${p.log}`, () => ticks(p.log).length >= seen + 5);
      const all = ticks(p.log);
      expect(all).toEqual(all.map((_n, k) => k));
    }

    for (const p of pods) {
      await ok('stop', '--timeout', '0', p.ctr);
      await ok('rm', p.ctr);
      await ok('stopp', p.pod);
      await ok('rmp', p.pod);
    }
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect(json(await ok('ps', '-a', '-o', 'json')).containers).toEqual([]);
    expect((await daemon.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect((await daemon.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    for (const dir of ['sandboxes', 'containers']) expect(readdirSync(join(daemon.root, 'io.containerd.grpc.v1.cri', dir))).toEqual([]);
    // Shims exit a moment after their task is deleted.
    await waitFor('the shims to exit', () => shims().length === before.shims.length || undefined, 10_000).catch(() => undefined);
    expect(hostState()).toEqual(before);
  });
});
