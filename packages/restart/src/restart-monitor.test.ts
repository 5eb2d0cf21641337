import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { containers as capi, task as taskTypes, tasks as tapi } from '@berth/api';
import { isNotFound } from '@berth/errdefs';
import { cleanupShims, eventually, populateBusybox } from '@berth/tasks/test-support';
import { TestDaemon, tempDir } from '@berth/testing';
import { COUNT_LABEL, EXPLICITLY_STOPPED_LABEL, LOG_URI_LABEL, POLICY_LABEL, STATUS_LABEL } from './policy';

/** Long enough that a shim start on a loaded machine fits well within one interval. */
const INTERVAL_MS = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('io.containerd.internal.v1 restart', () => {
  const dir = tempDir('berth-restart-monitor-');
  const rootfs = populateBusybox(join(dir.path, 'rootfs'));
  let d: TestDaemon;
  const id = (name: string) => `${name}-${process.pid}`;

  beforeAll(async () => {
    d = await TestDaemon.start({ logLevel: 'info', config: `[plugins."io.containerd.internal.v1.restart"]\ninterval = "${INTERVAL_MS / 1000}s"\n` });
  });
  afterAll(async () => {
    await d?.stop();
    const leaked = d ? await cleanupShims(d.address, d.dir) : 0;
    await d?.cleanup();
    dir.remove();
    expect(leaked).toBe(0);
  });

  /** The task's status and pid; undefined when the container has no task. */
  async function task(cid: string): Promise<{ status: taskTypes.Status; pid: number } | undefined> {
    try {
      const { process } = await d.client(tapi.TasksService, 'default').get({ containerId: cid, execId: '' });
      return { status: process!.status, pid: process!.pid };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function run(cid: string, labels: Record<string, string>, args: string[]): Promise<number> {
    const flags = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    expect(await d.ctr(['run', '-d', ...flags, '--rootfs', rootfs, cid, ...args])).toMatchObject({ code: 0 });
    return (await task(cid))!.pid;
  }

  /** Waits until the task runs with another pid than `old`; resolves with the time it took. */
  async function restarted(cid: string, old: number, since: number): Promise<number> {
    await eventually(async () => {
      const t = await task(cid);
      return t?.status === taskTypes.Status.RUNNING && t.pid !== old;
    }, 6 * INTERVAL_MS);
    return Date.now() - since;
  }

  /** Takes the container out of the monitor's hands and removes it with its task. */
  async function remove(cid: string): Promise<void> {
    expect(await d.ctr(['containers', 'label', cid, `${STATUS_LABEL}=`])).toMatchObject({ code: 0 });
    if ((await task(cid))?.status === taskTypes.Status.RUNNING) await d.ctr(['tasks', 'kill', '-s', 'SIGKILL', cid]);
    await eventually(async () => (await task(cid))?.status !== taskTypes.Status.RUNNING);
    if (await task(cid)) expect(await d.ctr(['tasks', 'rm', cid])).toMatchObject({ code: 0 });
    expect(await d.ctr(['containers', 'rm', cid])).toMatchObject({ code: 0 });
  }

  it('is listed by ctr plugins ls with status ok', async () => {
    const r = await d.ctr(['plugins', 'ls', 'type==io.containerd.internal.v1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^io\.containerd\.internal\.v1\s+restart\s+-\s+ok\s*$/m);
  });

  it('runs a task labelled restart.status=running again within two intervals of a kill -9, and counts it', async () => {
    const cid = id('always');
    const pid = await run(cid, { [STATUS_LABEL]: 'running' }, ['/bin/sleep', '1000']);
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    expect(await restarted(cid, pid, t0)).toBeLessThan(2 * INTERVAL_MS);
    const c = await d.client(capi.ContainersService, 'default').get({ id: cid });
    expect(c.container?.labels[COUNT_LABEL]).toBe('1');
    await remove(cid);
  });

  it('brings such a task back across a berthd restart', async () => {
    const cid = id('across');
    const pid = await run(cid, { [STATUS_LABEL]: 'running' }, ['/bin/sleep', '1000']);
    await d.kill('SIGKILL');
    // The task dies while no daemon watches it.
    process.kill(pid, 'SIGKILL');
    await d.restart();
    const t0 = Date.now();
    expect(await restarted(cid, pid, t0)).toBeLessThan(2 * INTERVAL_MS);
    // And the restarted daemon keeps watching.
    const pid2 = (await task(cid))!.pid;
    const t1 = Date.now();
    process.kill(pid2, 'SIGKILL');
    expect(await restarted(cid, pid2, t1)).toBeLessThan(2 * INTERVAL_MS);
    await remove(cid);
  });

  it('leaves an explicitly stopped unless-stopped container stopped', async () => {
    const cid = id('stopped');
    const pid = await run(cid, { [STATUS_LABEL]: 'running', [POLICY_LABEL]: 'unless-stopped', [EXPLICITLY_STOPPED_LABEL]: 'true' }, ['/bin/sleep', '1000']);
    process.kill(pid, 'SIGKILL');
    await sleep(2.5 * INTERVAL_MS);
    expect((await task(cid))?.status).toBe(taskTypes.Status.STOPPED);
    await remove(cid);
  });

  it('stops the task of a container labelled restart.status=stopped, and does not start it again', async () => {
    const cid = id('tostop');
    await run(cid, { [STATUS_LABEL]: 'stopped' }, ['/bin/sleep', '1000']);
    await eventually(async () => (await task(cid)) === undefined, 3 * INTERVAL_MS);
    await sleep(1.5 * INTERVAL_MS);
    expect(await task(cid)).toBeUndefined();
    expect(await d.ctr(['containers', 'rm', cid])).toMatchObject({ code: 0 });
  });

  it('restarts an on-failure:1 task once after it fails, then leaves it', async () => {
    const cid = id('onfail');
    await run(cid, { [STATUS_LABEL]: 'running', [POLICY_LABEL]: 'on-failure:1' }, ['/bin/sh', '-c', 'sleep 0.3; exit 3']);
    const labels = async () => (await d.client(capi.ContainersService, 'default').get({ id: cid })).container!.labels;
    await eventually(async () => (await labels())[COUNT_LABEL] === '1', 4 * INTERVAL_MS);
    await sleep(2.5 * INTERVAL_MS);
    expect((await labels())[COUNT_LABEL]).toBe('1');
    expect((await task(cid))?.status).toBe(taskTypes.Status.STOPPED);
    await remove(cid);
  });

  it("gives the restarted task the log URI label's output", async () => {
    const cid = id('loguri');
    const log = join(dir.path, 'logs', `${cid}.log`);
    const pid = await run(cid, { [STATUS_LABEL]: 'running', [LOG_URI_LABEL]: `file://${log}` }, ['/bin/sh', '-c', 'echo hello from the restarted task; sleep 1000']);
    process.kill(pid, 'SIGKILL');
    await restarted(cid, pid, Date.now());
    await eventually(() => existsSync(log) && readFileSync(log, 'utf8').includes('hello from the restarted task\n'));
    await remove(cid);
  });
});

describe('io.containerd.internal.v1 restart config', () => {
  it('fails the plugin (not the daemon) for a bad interval, with the reason in the log', async () => {
    const d = await TestDaemon.start({ logLevel: 'info', config: `[plugins."io.containerd.internal.v1.restart"]\ninterval = "soon"\n` });
    try {
      const r = await d.ctr(['plugins', 'ls', 'type==io.containerd.internal.v1']);
      expect(r.stdout).toMatch(/^io\.containerd\.internal\.v1\s+restart\s+-\s+error\s*$/m);
      expect(d.output).toMatch(/plugin io.containerd.internal.v1.restart failed.*time: invalid duration \\?"soon\\?"/);
    } finally {
      await d.cleanup();
    }
  });
});
