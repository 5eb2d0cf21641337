import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tasks as tapi } from '@berth/api';
import { readMountInfo } from '@berth/mount';
import { TestDaemon, tempDir } from '@berth/testing';
import { cleanupShims, eventually, ociSpec, populateBusybox, shimSocket, shimsOf } from './test-support';

/** What `criu check` says on this machine; checkpoint/restore needs it to pass. */
const criu = spawnSync('criu', ['check'], { timeout: 20_000 });
const criuWorks = criu.status === 0;
const criuWhy = criuWorks ? '' : criu.error ? 'criu is not installed' : (criu.stderr?.toString().trim().split('\n').pop() || `criu check exited with ${criu.status}`);
/** Chooses at definition time, so a run without criu reports a skip with its reason, never a pass. */
const withCriu = criuWorks ? it : it.skip;
const withoutCriu = criuWorks ? it.skip : it;

describe('tasks across a berthd crash, dead shims and checkpoint', () => {
  const dir = tempDir('berth-tasks-restart-');
  const rootfs = populateBusybox(join(dir.path, 'rootfs'));
  let d: TestDaemon;
  const ids = [0, 1, 2, 3, 4].map((i) => `r${i}-${process.pid}`);

  beforeAll(async () => {
    d = await TestDaemon.start({ logLevel: 'info' });
  });
  afterAll(async () => {
    const leaked = d ? await cleanupShims(d.address, d.dir) : 0;
    await d?.cleanup();
    dir.remove();
    expect(leaked).toBe(0);
  });

  it('keeps 5 tasks running through kill -9 of berthd; after restart they list, wait, kill and delete', async () => {
    for (const id of ids.slice(0, 4)) expect(await d.ctr(['run', '-d', '--rootfs', rootfs, id, '/bin/sleep', '1000'])).toMatchObject({ code: 0 });
    // The fifth exits 7 on SIGTERM.
    expect(await d.ctr(['run', '-d', '--rootfs', rootfs, ids[4], '/bin/sh', '-c', "trap 'exit 7' TERM; while true; do sleep 0.1; done"])).toMatchObject({ code: 0 });
    const before = (await d.ctr(['tasks', 'ls'])).stdout;
    expect(shimsOf(d.address)).toHaveLength(5);

    await d.kill('SIGKILL');
    await d.restart();
    expect((await d.ctr(['tasks', 'ls'])).stdout).toBe(before);
    expect(before.match(/RUNNING/g)).toHaveLength(5);

    const tasks = d.client(tapi.TasksService, 'default');
    const waits = ids.map((id) => tasks.wait({ containerId: id, execId: '' }));
    expect(await d.ctr(['tasks', 'kill', ids[4]])).toMatchObject({ code: 0 });
    for (const id of ids.slice(0, 4)) expect(await d.ctr(['tasks', 'kill', '-s', 'SIGKILL', id])).toMatchObject({ code: 0 });
    expect((await Promise.all(waits)).map((w) => w.exitStatus)).toEqual([137, 137, 137, 137, 7]);
    for (const id of ids) {
      const del = await tasks.delete({ containerId: id });
      expect(del.exitStatus).toBe(id === ids[4] ? 7 : 137);
      expect(await d.ctr(['containers', 'rm', id])).toMatchObject({ code: 0 });
    }
    await eventually(() => shimsOf(d.address).length === 0);
    for (const id of ids) expect(existsSync(shimSocket(d.address, 'default', id))).toBe(false);
    expect(readdirSync(join(d.state, 'io.containerd.runtime.v2.task', 'default'))).toEqual([]);
    expect(readMountInfo().filter((m) => m.mountPoint.startsWith(d.dir))).toEqual([]);
  });

  it('reports a shim that dies as exited and deleted, and cleans up after it', async () => {
    const id = `dead-${process.pid}`;
    expect(await d.ctr(['run', '-d', '--rootfs', rootfs, id, '/bin/sleep', '1000'])).toMatchObject({ code: 0 });
    const [s] = shimsOf(d.address);
    const tasks = d.client(tapi.TasksService, 'default');
    const wait = tasks.wait({ containerId: id, execId: '' }).catch((e) => e);
    process.kill(s.pid, 'SIGKILL');
    await wait;
    await eventually(async () => (await d.ctr(['tasks', 'ls'])).stdout.trim() === 'TASK    PID    STATUS');
    expect(existsSync(join(d.state, 'io.containerd.runtime.v2.task', 'default', id))).toBe(false);
    expect(existsSync(shimSocket(d.address, 'default', id))).toBe(false);
    expect(spawnSync('runc', ['--root', '/run/containerd/runc/default', 'state', id]).status).not.toBe(0);
    expect(await d.ctr(['containers', 'rm', id])).toMatchObject({ code: 0 });
  });

  it('shuts down a shim that was started for a task the daemon never created (killed in between)', async () => {
    // What a SIGKILL between the shim's start and Tasks.Create leaves: a bundle, and a shim
    // serving from it with no task (found by tools/reliability's kill points).
    const id = `leak-${process.pid}`;
    const bundle = join(d.state, 'io.containerd.runtime.v2.task', 'default', id);
    mkdirSync(join(bundle, 'rootfs'), { recursive: true });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociSpec(['/bin/sleep', '1000'])));
    // The shim writes its log to the bundle's FIFO, which the daemon holds open for reading.
    spawnSync('mkfifo', ['-m', '0700', join(bundle, 'log')]);
    const logReader = openSync(join(bundle, 'log'), constants.O_RDONLY | constants.O_NONBLOCK);
    const start = spawnSync('containerd-shim-runc-v2', ['-namespace', 'default', '-address', d.address, '-publish-binary', process.execPath, '-id', id, 'start'], {
      cwd: bundle,
      env: { ...process.env, TTRPC_ADDRESS: `${d.address}.ttrpc` },
    });
    expect(start.status).toBe(0);
    expect(shimsOf(d.address).map((s) => s.id)).toEqual([id]);

    await d.kill('SIGKILL');
    await d.restart();
    closeSync(logReader);
    expect(d.output).toMatch(new RegExp(`msg="cleaning leaked shim process" .*id=${id}`));
    await eventually(() => shimsOf(d.address).length === 0);
    expect(existsSync(bundle)).toBe(false);
    expect(existsSync(shimSocket(d.address, 'default', id))).toBe(false);
    expect((await d.ctr(['tasks', 'ls'])).stdout.trim()).toBe('TASK    PID    STATUS');
  });

  withoutCriu(`answers Checkpoint with the shim's error when criu cannot run (${criuWorks ? 'skipped: criu works here' : `criu check: ${criuWhy}`})`, async () => {
    const id = `cp-${process.pid}`;
    expect(await d.ctr(['run', '-d', '--rootfs', rootfs, id, '/bin/sleep', '1000'])).toMatchObject({ code: 0 });
    const tasks = d.client(tapi.TasksService, 'default');
    const err = await tasks.checkpoint({ containerId: id, parentCheckpoint: '', options: undefined }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/criu|checkpoint/i);
    await d.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await tasks.wait({ containerId: id, execId: '' });
    await tasks.delete({ containerId: id });
    await d.ctr(['containers', 'rm', id]);
  });

  // Debian's criu 3.17 cannot read this kernel's vDSO, so `criu check` fails and runc cannot
  // checkpoint; the round trip runs on a kernel criu supports.
  withCriu(`checkpoints a running task with criu and restores it with its memory (${criuWorks ? 'criu check: ok' : `skipped: ${criuWhy}`})`, async () => {
    const id = `criu-${process.pid}`;
    const count = join(rootfs, `count-${id}`);
    // The count lives in the shell's memory: a restored process goes on from it, a new one would start at 1.
    const loop = `i=0; while true; do i=$((i+1)); echo $i > /count-${id}; sleep 0.05; done`;
    expect(await d.ctr(['run', '-d', '--rootfs', rootfs, id, '/bin/sh', '-c', loop])).toMatchObject({ code: 0 });
    const read = () => (existsSync(count) ? Number(readFileSync(count, 'utf8').trim() || 0) : 0);
    await eventually(() => read() >= 10);
    const tasks = d.client(tapi.TasksService, 'default');
    const { descriptors } = await tasks.checkpoint({ containerId: id, parentCheckpoint: '', options: undefined });
    const image = descriptors.find((desc) => desc.mediaType === 'application/vnd.containerd.container.criu.checkpoint.criu.tar');
    expect(image).toBeDefined();
    await d.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await tasks.wait({ containerId: id, execId: '' });
    await tasks.delete({ containerId: id });
    writeFileSync(count, '0\n');

    await tasks.create({ containerId: id, rootfs: [], stdin: '', stdout: '', stderr: '', terminal: false, checkpoint: image, runtimePath: '' });
    await tasks.start({ containerId: id, execId: '' });
    await eventually(() => read() > 0);
    // At least 10 before the checkpoint: the restored shell's next count is above that.
    expect(read()).toBeGreaterThan(10);
    expect((await d.ctr(['tasks', 'ls'])).stdout).toMatch(new RegExp(`${id}\\s+\\d+\\s+RUNNING`));
    await d.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await tasks.wait({ containerId: id, execId: '' });
    await tasks.delete({ containerId: id });
    expect(await d.ctr(['containers', 'rm', id])).toMatchObject({ code: 0 });
  });
});
