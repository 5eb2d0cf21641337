import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskOOM, unpackAnyAs } from '@berth/api/events';
import { context } from '@berth/context';
import { Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { tempDir } from '@berth/testing';
import { CgroupsMonitor } from './cgroups-monitor';

/**
 * The monitor's own OOM reports, for runtimes whose shim does not watch cgroups. The kernel's
 * memory cgroup cannot be made to count an OOM without a shim that reports it too, so a temp dir
 * stands in for the v1 memory hierarchy (mounted, as mountinfo says, where the test puts it);
 * the event exchange is the real one.
 */
describe('CgroupsMonitor OOM reports', () => {
  const dir = tempDir('berth-oom-report-');
  const memoryPath = /^\d+:memory:(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
  const cgroup = join(dir.path, memoryPath);
  const mountinfo = `40 31 0:33 / ${dir.path} rw,relatime - cgroup cgroup rw,memory\n`;
  const setKills = (n: number) => writeFileSync(join(cgroup, 'memory.oom_control'), `oom_kill_disable 0\nunder_oom 0\noom_kill ${n}\n`);
  let exchange: Exchange;
  let monitor: CgroupsMonitor;
  const seen: Array<{ namespace: string; id: string }> = [];

  beforeAll(async () => {
    mkdirSync(cgroup, { recursive: true });
    setKills(2);
    exchange = new Exchange({ logger: nullLogger });
    const sub = exchange.subscribe(context(), ['topic=="/tasks/oom"']);
    void (async () => {
      for await (const env of sub) seen.push({ namespace: env.namespace, id: unpackAnyAs(env.event!, TaskOOM).containerId });
    })();
    monitor = new CgroupsMonitor({
      tasks: () => [{ namespace: 'ns1', id: 'task1', pid: process.pid }],
      publisher: exchange,
      subscriber: exchange,
      logger: nullLogger,
      pollMs: 20,
      graceMs: 200,
      mountinfo,
    });
    monitor.start();
    await new Promise((r) => setTimeout(r, 100));
  });
  afterAll(async () => {
    await monitor?.close();
    exchange?.close();
    dir.remove();
  });

  const settle = () => new Promise((r) => setTimeout(r, 400));

  it('does not report kills from before it watched the task', async () => {
    await settle();
    expect(seen).toEqual([]);
    expect(monitor.published).toBe(0);
  });

  it('publishes /tasks/oom when the count rises and no shim reports it', async () => {
    setKills(3);
    await settle();
    expect(seen).toEqual([{ namespace: 'ns1', id: 'task1' }]);
    expect(monitor.published).toBe(1);
  });

  it('stays quiet when the shim reports the OOM itself', async () => {
    seen.length = 0;
    setKills(4);
    await exchange.publish(context({ namespace: 'ns1' }), '/tasks/oom', TaskOOM, { containerId: 'task1' });
    await settle();
    expect(seen).toEqual([{ namespace: 'ns1', id: 'task1' }]);
    expect(monitor.published).toBe(1);
  });

  it('reads the figures of the cgroup it found', async () => {
    writeFileSync(join(cgroup, 'memory.usage_in_bytes'), '4096\n');
    writeFileSync(join(cgroup, 'memory.stat'), 'cache 1\nrss 2\n');
    const [t] = await monitor.stats();
    expect(t).toMatchObject({ namespace: 'ns1', id: 'task1', stats: { version: 1, memory: { usage: 4096, oomKills: 4, stat: { cache: 1, rss: 2 } } } });
  });
});
