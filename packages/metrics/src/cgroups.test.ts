import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parsePrometheusText, tempDir } from '@berth/testing';
import { cgroupMounts, cgroupPathsOf, readCgroupStats } from './cgroups';
import { registerTaskMetrics } from './task-metrics';

/**
 * cgroup v2 reading, on a v1 host: a temp dir stands in for a unified hierarchy that mountinfo
 * puts where this process's `0::<path>` line points.
 */
describe('cgroup v2 figures', () => {
  const dir = tempDir('berth-cgroup2-');
  afterAll(() => dir.remove());

  it('reads the unified files and reports them with containerd v2 names', async () => {
    const mounts = cgroupMounts(`30 23 0:27 / ${dir.path} rw,nosuid - cgroup2 cgroup2 rw\n`);
    const paths = await cgroupPathsOf(process.pid, mounts);
    expect(paths?.version).toBe(2);
    const cg = paths!.dirs[''];
    const files: Record<string, string> = {
      'cpu.stat': 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n',
      'memory.current': '8192\n',
      'memory.max': 'max\n',
      'memory.stat': 'anon 4096\nfile 2048\nfile_mapped 1024\n',
      'memory.events': 'low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n',
      'memory.swap.current': '0\n',
      'memory.swap.max': '1048576\n',
      'pids.current': '3\n',
      'pids.max': '64\n',
    };
    for (const [f, text] of Object.entries(files)) writeFileSync(join(cg, f), text);
    const stats = await readCgroupStats(paths!);
    expect(stats).toMatchObject({
      version: 2,
      cpu: { total: 1500, user: 1000, kernel: 500, periods: 4, throttledPeriods: 1, throttledTime: 20 },
      memory: { usage: 8192, limit: Number.MAX_SAFE_INTEGER, oomKills: 1, swap: { usage: 0, limit: 1048576 }, stat: { anon: 4096, file: 2048 } },
      pids: { current: 3, limit: 64 },
    });

    const registry = new Registry();
    registerTaskMetrics(registry, { stats: async () => [{ namespace: 'ns', id: 'c1', stats: stats! }] }, 2);
    const families = new Map((await parsePrometheusText(await registry.metrics())).map((f) => [f.name, f]));
    const value = (name: string) => Number(families.get(name)?.metrics.find((m) => m.labels?.container_id === 'c1' && m.labels.namespace === 'ns')?.value);
    expect(value('container_cpu_usage_microseconds')).toBe(1500);
    expect(value('container_cpu_kernel_usage_microseconds')).toBe(500);
    expect(value('container_memory_usage_bytes')).toBe(8192);
    expect(value('container_memory_swap_Limit_bytes')).toBe(1048576);
    expect(value('container_memory_file_mapped_bytes')).toBe(1024);
    expect(value('container_memory_oom_total')).toBe(1);
    expect(value('container_pids_limit')).toBe(64);
  });
});
