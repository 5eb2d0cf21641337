import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CtrOptions, CtrResult, ReferenceContainerd, TestDaemon } from '@berth/testing';

/** What a workload sees of either daemon. */
export interface BenchDaemon {
  readonly kind: 'berthd' | 'containerd';
  readonly address: string;
  readonly pid: number;
  /** Milliseconds from spawn until the daemon reported it was serving. */
  readonly startMs: number;
  ctr(args: readonly string[], options?: CtrOptions): Promise<CtrResult>;
  cleanup(): Promise<void>;
}

/** Starts one daemon of a kind on a temp root. */
export async function startDaemon(kind: BenchDaemon['kind']): Promise<BenchDaemon> {
  const t0 = performance.now();
  const d = kind === 'berthd' ? await TestDaemon.start({ logLevel: 'info' }) : await ReferenceContainerd.start();
  const startMs = performance.now() - t0;
  return {
    kind,
    address: d.address,
    pid: d.pid!,
    startMs,
    ctr: (args, options) => d.ctr(args, options),
    cleanup: () => d.cleanup(),
  };
}

/** Resident set size of a process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}
