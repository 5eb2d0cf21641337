import { readFileSync } from 'node:fs';
import type { BenchDaemon } from './daemons';
import { cpuMs, rssMiB } from './daemons';
import type { Workload } from './workloads';

export { cpuMs };

/*
 * The mixed run: one daemon goes through most of the other workloads in turn, three times, as an
 * operator's daemon would over a day: snapshots, images and containers, events, namespaces,
 * content in and out, an import, a collection, tasks. It reports what the other workloads cannot
 * see on their fresh daemons: the resident memory after each round (flat once warm, or growing),
 * its high-water mark, and the daemon's CPU time per workload, cold (the first round) and warm
 * (the mean of the later two).
 */

/** The workloads of a round, in order; each leaves the daemon ready to run it again. */
export const MIXED = [
  'snapshots-ctr',
  'meta-grpc',
  'events',
  'ns-grpc',
  'content-ingest',
  'content-get',
  'import-busybox',
  'gc-rm-sync',
  'run-detached',
] as const;

const ROUNDS = 3;

/** The high-water mark of a process's resident memory, in MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Builds the mixed workload over the others (passed in, to keep the module graph acyclic). */
export function mixedWorkload(workloads: Readonly<Record<string, Workload>>): Workload {
  return {
    name: `mixed run: ${MIXED.join(', ')} on one daemon, ${ROUNDS} rounds`,
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d: BenchDaemon, n: number) => {
      const cpu = new Map<string, number[]>();
      const rss: number[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        for (const name of MIXED) {
          const before = cpuMs(d.pid);
          await workloads[name].run(d, n);
          const spent = cpuMs(d.pid) - before;
          cpu.set(name, [...(cpu.get(name) ?? []), spent]);
        }
        rss.push(rssMiB(d.pid));
      }
      const out: Record<string, number> = {};
      for (let r = 0; r < ROUNDS; r++) out[`mixed: RSS after round ${r + 1} (MiB)`] = rss[r];
      out['mixed: RSS high-water (MiB)'] = peakRssMiB(d.pid);
      let cold = 0;
      let warm = 0;
      for (const [name, times] of cpu) {
        const w = times.slice(1).reduce((a, b) => a + b, 0) / (times.length - 1);
        out[`mixed: CPU ${name}, cold (total ms)`] = times[0];
        out[`mixed: CPU ${name}, warm (total ms)`] = w;
        cold += times[0];
        warm += w;
      }
      out['mixed: CPU all, cold (total ms)'] = cold;
      out['mixed: CPU all, warm (total ms)'] = warm;
      return out;
    },
  };
}
