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
  /** Runs the stock ctr (1.6) against berthd and containerd 1.6, ctr 2.x against containerd 2.x. */
  ctr(args: readonly string[], options?: CtrOptions): Promise<CtrResult>;
  cleanup(): Promise<void>;
}

/** Starts one daemon of a kind on a temp root. */
export async function startDaemon(kind: DaemonKind): Promise<BenchDaemon> {
  const t0 = performance.now();
  const d =
    kind === 'berthd' ? await TestDaemon.start({ logLevel: 'info' }) : kind === 'containerd' ? await ReferenceContainerd.start() : await ReferenceContainerd2.start();
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
