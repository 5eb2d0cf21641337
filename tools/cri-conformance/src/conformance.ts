import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeNetns } from '@berth/cni';
import { type CritestRun, ReferenceContainerd, TestDaemon, cleanupShims, critest, runCrictl } from '@berth/testing';
import { type Comparison, compare } from './table';
import { type World, startWorld } from './world';

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /** ginkgo focus regex; default every spec. */
  focus?: string;
  /** ginkgo skip regex, added to `with digest` (a digest no local build can have). */
  skip?: string;
  /** Which daemons to run critest against, in this order; default both. */
  daemons?: readonly Daemon[];
  /** critest `--parallel` (needs the ginkgo CLI on PATH). */
  parallel?: number;
  /** Per daemon, ms; default 30 minutes. */
  timeoutMs?: number;
  /** Stops the run (critest killed, then everything cleaned up). */
  signal?: AbortSignal;
  /** Progress lines. */
  log?: (line: string) => void;
  /** critest's output as it comes. */
  onOutput?: (daemon: 'containerd' | 'berthd', chunk: string) => void;
}

/** A daemon critest runs against. */
export type Daemon = 'containerd' | 'berthd';

/** The runs (a daemon left out has none) and their comparison. */
export interface ConformanceResult {
  containerd?: CritestRun;
  berthd?: CritestRun;
  comparison: Comparison;
}

/** critest's arguments for the options. */
export function critestArgs(options: Pick<ConformanceOptions, 'focus' | 'skip' | 'parallel'>): string[] {
  const args = [`--ginkgo.skip=${['with digest', options.skip].filter(Boolean).join('|')}`];
  if (options.focus) args.push(`--ginkgo.focus=${options.focus}`);
  if (options.parallel && options.parallel > 1) args.push(`--parallel=${options.parallel}`);
  return args;
}

/** Removes every pod critest left (a spec that failed midway), then the daemon's shims. */
async function removePods(address: string): Promise<void> {
  try {
    const ids = (await runCrictl(address, ['pods', '-q'])).stdout.split('\n').filter(Boolean);
    for (const id of ids) await runCrictl(address, ['rmp', '-f', id]);
  } catch {
    /* the daemon is gone */
  }
}

async function onContainerd(world: World, args: string[], options: ConformanceOptions): Promise<CritestRun> {
  const containerd = await ReferenceContainerd.start({ config: world.criConfig, cri: true });
  try {
    return await critest(containerd.address, world.dir, args, { timeoutMs: options.timeoutMs, signal: options.signal, onOutput: (s) => options.onOutput?.('containerd', s) });
  } finally {
    await removePods(containerd.address);
    await containerd.stop();
    await cleanupShims(containerd.address, containerd.dir);
    // containerd 1.6 keeps pod network namespaces under its state dir, whatever the config says.
    const netnsDir = join(containerd.state, 'io.containerd.grpc.v1.cri', 'netns');
    if (existsSync(netnsDir)) for (const n of readdirSync(netnsDir)) await removeNetns(join(netnsDir, n)).catch(() => undefined);
    await containerd.cleanup();
  }
}

async function onBerthd(world: World, args: string[], options: ConformanceOptions): Promise<CritestRun> {
  const berthd = await TestDaemon.start({ config: world.criConfig, logLevel: 'info' });
  try {
    return await critest(berthd.address, world.dir, args, { timeoutMs: options.timeoutMs, signal: options.signal, onOutput: (s) => options.onOutput?.('berthd', s) });
  } finally {
    await removePods(berthd.address);
    await berthd.stop();
    await cleanupShims(berthd.address, berthd.dir);
    await berthd.cleanup();
  }
}

/**
 * Sets up the registry, images, hosts.toml and CNI network once, runs critest against
 * containerd 1.6.20's CRI plugin and then against berthd (one at a time, each on a temp root,
 * the same config), removes everything, and compares the two junit reports spec by spec.
 */
export async function runConformance(options: ConformanceOptions = {}): Promise<ConformanceResult> {
  const log = options.log ?? (() => undefined);
  const args = critestArgs(options);
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const daemons = options.daemons ?? ['containerd', 'berthd'];
  log('setting up the registry, images, hosts.toml and the CNI network');
  const world = await startWorld();
  try {
    const runs: { containerd?: CritestRun; berthd?: CritestRun } = {};
    for (const daemon of daemons) {
      const label = daemon === 'containerd' ? 'containerd 1.6' : 'berthd';
      log(`critest ${args.join(' ')} against ${label}`);
      const run = await (daemon === 'containerd' ? onContainerd : onBerthd)(world, args, { ...options, timeoutMs });
      if (run.killed) log(options.signal?.aborted ? `${label} run aborted` : `${label} run killed after ${timeoutMs} ms`);
      options.signal?.throwIfAborted();
      runs[daemon] = run;
    }
    return { ...runs, comparison: compare(runs.containerd?.specs, runs.berthd?.specs) };
  } finally {
    log('cleaning up');
    await world.cleanup();
  }
}
