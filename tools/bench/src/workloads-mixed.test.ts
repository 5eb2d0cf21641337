import { MIXED, cpuMs, mixedWorkload, peakRssMiB } from './workloads-mixed';
import type { Workload } from './workloads';

describe('mixed workload', () => {
  it('reads CPU time and peak RSS from /proc', () => {
    // Burn 200 ms of CPU (however long that takes on a busy machine); /proc agrees with Node's
    // own count, to its 10 ms ticks.
    const t0 = cpuMs(process.pid);
    const u0 = process.cpuUsage();
    let x = 0;
    const used = () => {
      const u = process.cpuUsage(u0);
      return (u.user + u.system) / 1000;
    };
    while (used() < 200) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    expect(Math.abs(cpuMs(process.pid) - t0 - used())).toBeLessThan(30);
    expect(peakRssMiB(process.pid)).toBeGreaterThan(10);
  });

  it('runs every workload of a round three times on one daemon and reports RSS per round and CPU cold and warm', async () => {
    const calls: string[] = [];
    const fake = (name: string): Workload => ({ name, unit: 'ms', lowerIsBetter: true, run: async () => (calls.push(name), {}) });
    const w = mixedWorkload(Object.fromEntries(MIXED.map((m) => [m, fake(m)])));
    const d = { kind: 'berthd' as const, address: '', pid: process.pid, startMs: 0, startCpuMs: 0, ctr: async () => ({ code: 0, stdout: '', stderr: '' }), cleanup: async () => undefined };
    const out = await w.run(d, 10);
    expect(calls).toEqual([...MIXED, ...MIXED, ...MIXED]);
    for (const r of [1, 2, 3]) expect(out[`mixed: RSS after round ${r} (MiB)`]).toBeGreaterThan(10);
    expect(out['mixed: RSS high-water (MiB)']).toBeGreaterThanOrEqual(out['mixed: RSS after round 3 (MiB)'] - 1);
    for (const m of MIXED) {
      expect(out[`mixed: CPU ${m}, cold (total ms)`]).toBeGreaterThanOrEqual(0);
      expect(out[`mixed: CPU ${m}, warm (total ms)`]).toBeGreaterThanOrEqual(0);
    }
    expect(typeof out['mixed: CPU all, warm (total ms)']).toBe('number');
  });
});
