import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupShims, eventually, populateBusybox } from '@berth/tasks/test-support';
import { PromFamily, TestDaemon, ctrEventsDuring, freePort, normaliseEventLine, scrapeMetrics, tempDir } from '@berth/testing';

/** The v1 memory cgroup ctr's default spec puts a task in (`/<namespace>/<id>`). */
const memoryCgroup = (ns: string, id: string) => join('/sys/fs/cgroup/memory', ns, id);
const v1 = existsSync('/sys/fs/cgroup/memory/memory.oom_control');

/** The value of `container_<name>` for one task. */
function taskValue(m: Map<string, PromFamily>, name: string, id: string): number | undefined {
  const s = m.get(`container_${name}`)?.metrics.find((x) => x.labels?.container_id === id && x.labels.namespace === 'default');
  return s === undefined ? undefined : Number(s.value);
}

(v1 ? describe : describe.skip)(`io.containerd.monitor.v1 cgroups (cgroup v1${v1 ? '' : ': skipped, this host has no v1 memory hierarchy'})`, () => {
  const dir = tempDir('berth-cgroups-monitor-');
  const rootfs = populateBusybox(join(dir.path, 'rootfs'));
  let d: TestDaemon;
  let address: string;
  const id = `mon-${process.pid}`;

  beforeAll(async () => {
    address = `127.0.0.1:${await freePort()}`;
    d = await TestDaemon.start({ logLevel: 'info', config: `[metrics]\naddress = "${address}"\n` });
  });
  afterAll(async () => {
    const leaked = d ? await cleanupShims(d.address, d.dir) : 0;
    await d?.cleanup();
    dir.remove();
    expect(leaked).toBe(0);
  });

  it('is listed by ctr plugins ls with status ok', async () => {
    const r = await d.ctr(['plugins', 'ls', 'type==io.containerd.monitor.v1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^io\.containerd\.monitor\.v1\s+cgroups\s+-\s+ok\s*$/m);
  });

  it("reports a running task's container_memory figures as its cgroup files give them", async () => {
    const limit = 64 * 1024 * 1024;
    expect(await d.ctr(['run', '-d', '--memory-limit', String(limit), '--rootfs', rootfs, id, '/bin/sleep', '1000'])).toMatchObject({ code: 0 });
    const cg = memoryCgroup('default', id);
    const read = (file: string) => Number(readFileSync(join(cg, file), 'utf8').trim());
    const stat = () => Object.fromEntries(readFileSync(join(cg, 'memory.stat'), 'utf8').trim().split('\n').map((l) => [l.split(' ')[0], Number(l.split(' ')[1])]));
    // A sleeping task's figures hold still; compare a scrape taken between two equal readings.
    await eventually(async () => {
      const before = { usage: read('memory.usage_in_bytes'), stat: stat() };
      const m = await scrapeMetrics(address);
      const after = { usage: read('memory.usage_in_bytes'), stat: stat() };
      if (JSON.stringify(before) !== JSON.stringify(after)) return false;
      expect(taskValue(m, 'memory_usage_limit_bytes', id)).toBe(limit);
      expect(taskValue(m, 'memory_usage_limit_bytes', id)).toBe(read('memory.limit_in_bytes'));
      expect(taskValue(m, 'memory_usage_usage_bytes', id)).toBe(after.usage);
      expect(taskValue(m, 'memory_usage_max_bytes', id)).toBe(read('memory.max_usage_in_bytes'));
      expect(taskValue(m, 'memory_usage_failcnt_total', id)).toBe(read('memory.failcnt'));
      for (const k of ['cache', 'rss', 'mapped_file', 'pgfault', 'total_rss', 'hierarchical_memory_limit']) {
        expect([k, taskValue(m, `memory_${k}_bytes`, id)]).toEqual([k, after.stat[k]]);
      }
      expect(taskValue(m, 'memory_oom_total', id)).toBe(0);
      expect(m.get('container_memory_oom_total')?.type).toBe('COUNTER');
      expect(m.get('container_memory_usage_usage_bytes')?.type).toBe('GAUGE');
      expect(taskValue(m, 'pids_current', id)).toBe(1);
      expect(taskValue(m, 'cpu_total_nanoseconds', id)).toBe(Number(readFileSync(`/sys/fs/cgroup/cpuacct/default/${id}/cpuacct.usage`, 'utf8')));
      return true;
    });
    await d.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await eventually(async () => (await d.ctr(['tasks', 'ls'])).stdout.includes('STOPPED'));
    expect(await d.ctr(['tasks', 'rm', id])).toMatchObject({ code: 0 });
    expect(await d.ctr(['containers', 'rm', id])).toMatchObject({ code: 0 });
    // A deleted task has no series.
    expect(taskValue(await scrapeMetrics(address), 'memory_usage_usage_bytes', id)).toBeUndefined();
  });

  it("makes ctr events print the shim's /tasks/oom for a task that runs out of its memory limit, and no second one of its own", async () => {
    const oomId = `oom-${process.pid}`;
    const lines = await ctrEventsDuring(d, ['topic~="/tasks/(oom|exit)"'], async () => {
      const r = await d.ctr(['run', '--rm', '--memory-limit', String(16 * 1024 * 1024), '--rootfs', rootfs, oomId, '/bin/sh', '-c', 'tail /dev/zero']);
      expect(r.code).toBe(137);
      // The monitor's grace period passes: an OOM the shim reported is not published a second time.
      await new Promise((r) => setTimeout(r, 2500));
    });
    // The shim reports the OOM as the kernel kills, and the exit once the process is reaped.
    const printed = lines.map(normaliseEventLine).filter((l) => !l.includes('/sync'));
    // The runc shim reports each notification of the v1 memory cgroup's OOM eventfd, and one kill can
    // notify twice: containerd 1.6 prints two /tasks/oom for one such run in about 1 of 3 (20 runs).
    const ooms = printed.filter((l) => l.includes('/tasks/oom'));
    expect(ooms.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ooms)).toEqual(new Set([`<time> default /tasks/oom {"container_id":"${oomId}"}`]));
    expect(d.output).not.toContain('published by the cgroups monitor');
    expect(printed.filter((l) => l.includes('/tasks/exit'))).toEqual([
      expect.stringMatching(new RegExp(`^<time> default /tasks/exit \\{"container_id":"${oomId}","id":"${oomId}","pid":\\d+,"exit_status":137,`)),
    ]);
  });
});
