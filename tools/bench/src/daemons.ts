import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CtrOptions, CtrResult, ReferenceContainerd, ReferenceContainerd2, TestDaemon } from '@berth/testing';

export { rssMiB } from '@berth/testing';

/**
 * The daemons a workload runs on: berthd, Debian's containerd 1.6 (`containerd`), and
 * containerd 2.x from tools/reference-tools.sh (`containerd2`).
 */
export type DaemonKind = 'berthd' | 'containerd' | 'containerd2';

/** What a workload sees of a daemon. */
export interface BenchDaemon {
  readonly kind: DaemonKind;
  readonly address: string;
  readonly pid: number;
  /** Milliseconds from spawn until the daemon reported it was serving. */
  readonly startMs: number;
  /**
   * The daemon's CPU time (all its threads) from spawn until it served, in milliseconds: what the
   * start cost, which a loaded machine distorts less than the wall time.
   */
  readonly startCpuMs: number;
  /** Runs the stock ctr (1.6) against berthd and containerd 1.6, ctr 2.x against containerd 2.x. */
  ctr(args: readonly string[], options?: CtrOptions): Promise<CtrResult>;
  cleanup(): Promise<void>;
}

/** What a workload needs of its daemons beyond the defaults (the same for each kind). */
export interface DaemonSetup {
  /** TOML both daemons get (berthd and containerd each ignore the other's keys). */
  config?: string;
  /** containerd 1.6 keeps its CRI plugin (berthd always has its own). */
  cri?: boolean;
  /** berthd writes a V8 CPU profile (.cpuprofile) into this directory when it stops. */
  profileDir?: string;
}

/** Starts one daemon of a kind on a temp root. */
export async function startDaemon(kind: DaemonKind, setup: DaemonSetup = {}): Promise<BenchDaemon> {
  const t0 = performance.now();
  const d =
    kind === 'berthd'
      ? await TestDaemon.start({ logLevel: 'info', config: setup.config, ...(setup.profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${setup.profileDir}`] } : {}) })
      : kind === 'containerd'
        ? await ReferenceContainerd.start({ config: setup.config, cri: setup.cri })
        : await ReferenceContainerd2.start({ config: setup.config });
  const startMs = performance.now() - t0;
  const startCpuMs = cpuMs(d.pid!);
  return {
    kind,
    address: d.address,
    pid: d.pid!,
    startMs,
    startCpuMs,
    ctr: (args, options) => d.ctr(args, options),
    cleanup: () => d.cleanup(),
  };
}

/**
 * A process's CPU times from /proc/<pid>/stat, in milliseconds: its own threads' (`own`), and with
 * the children it waited for (`withChildren`: mount and copy helpers, runc when the daemon runs it).
 */
function cpuTimes(pid: number): { own: number; withChildren: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which may hold spaces and parentheses: utime, stime,
  // cutime and cstime are the 14th to 17th fields overall.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = Number(f[11]) + Number(f[12]);
  const children = Number(f[13]) + Number(f[14]);
  return { own: (own * 1000) / CLOCK_TICKS, withChildren: ((own + children) * 1000) / CLOCK_TICKS };
}

/** CPU time of a process and of the children it waited for, in milliseconds. */
export function cpuMs(pid: number): number {
  return cpuTimes(pid).withChildren;
}

/** CPU time of the process's own threads (not its children's), in milliseconds. */
export function ownCpuMs(pid: number): number {
  return cpuTimes(pid).own;
}

/** USER_HZ: the unit of /proc's CPU times (100 on every Linux this runs on). */
const CLOCK_TICKS = 100;
