import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { containers as capi, snapshots as sapi, tasks as tapi } from '@berth/api';
import { createClient } from '@berth/grpc';
import { readMountInfo } from '@berth/mount';
import { CTR_PATH, type CtrOptions, CtrResult, ReferenceContainerd, TestDaemon, ctrEventsDuring, tempDir } from '@berth/testing';
import { cleanupShims, ociSpec, populateBusybox, runcContainer, shimsOf } from './test-support';

/**
 * Tasks through the stock ctr against berthd and containerd 1.6 side by side, with Debian's
 * containerd-shim-runc-v2 and runc, on a busybox rootfs directory (`ctr run --rootfs`) and on
 * a snapshot (containers created through the API, `ctr tasks start`). Both daemons share the
 * runc root /run/containerd/runc/default, so task ids carry a per-daemon suffix.
 */
const dir = tempDir('berth-tasks-');
const rootfs = populateBusybox(join(dir.path, 'rootfs'));

type Daemon = { ctr(args: readonly string[], o?: CtrOptions): Promise<CtrResult>; address: string };

/** Output with the per-daemon suffix, pids, times and metric values made comparable. */
function normalize(r: CtrResult, suffix: string): CtrResult {
  const clean = (s: string) =>
    s
      .split(suffix)
      .join('')
      .replace(/time="[^"]+"/g, 'time="T"')
      .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+ \+0000 UTC/g, 'T')
      .replace(/\b\d+\b/g, 'N')
      .replace(/\s+\n/g, '\n')
      .replace(/ {2,}/g, ' ');
  return { code: r.code, stdout: clean(r.stdout), stderr: clean(r.stderr) };
}

describe('tasks: ctr against berthd and containerd 1.6', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;
  let pairs: Array<[Daemon, string]>;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([TestDaemon.start({ logLevel: 'info' }), ReferenceContainerd.start()]);
    pairs = [
      [berthd, `b${process.pid}`],
      [containerd, `c${process.pid}`],
    ];
  });
  afterAll(async () => {
    const leaked = (await Promise.all([berthd && cleanupShims(berthd.address, berthd.dir), containerd && cleanupShims(containerd.address, containerd.dir)])) as number[];
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
    dir.remove();
    expect(leaked[0]).toBe(0);
  });

  /**
   * Waits until `ctr tasks ls` shows the task STOPPED (or gone): the shim has reaped it. After
   * 10 s it returns anyway, and the side-by-side comparison shows what ctr saw.
   */
  async function stoppedOn(d: Daemon, id: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const row = (await d.ctr(['tasks', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${id} `));
      if (!row || row.includes('STOPPED') || Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs the same ctr script on both daemons; returns berthd's and containerd's normalized results. */
  async function both(script: Array<(id: (name: string) => string) => string[]>): Promise<[CtrResult[], CtrResult[]]> {
    const results = await Promise.all(
      pairs.map(async ([d, suffix]) => {
        const out: CtrResult[] = [];
        for (const step of script) {
          const args = step((name) => `${name}${suffix}`);
          out.push(normalize(await d.ctr(args, { input: '' }), suffix));
          if (args.includes('SIGKILL')) await stoppedOn(d, args[args.length - 1]);
          else if (args.includes('kill')) await new Promise((r) => setTimeout(r, 300));
        }
        return out;
      }),
    );
    return [results[0], results[1]];
  }

  it('ctr run --rm prints hello, as containerd', async () => {
    let [ours, theirs] = await both([(id) => ['run', '--rm', '--rootfs', rootfs, id('t1'), '/bin/echo', 'hello']]);
    expect(ours[0].stdout).toBe('hello\n');
    // ctr 1.6 against containerd 1.6 itself once exited 0 here without printing anything, in a
    // clean-clone CI run: the reference gets a second try, berthd none.
    if (theirs[0].stdout === '') theirs = [normalize(await containerd.ctr(['run', '--rm', '--rootfs', rootfs, `t1again${pairs[1][1]}`, '/bin/echo', 'hello'], { input: '' }), pairs[1][1])];
    expect(ours).toEqual(theirs);
  });

  it('runs a detached task through ls, ps, pause, resume, exec, metrics, kill and rm as containerd', async () => {
    const [ours, theirs] = await both([
      (id) => ['run', '-d', '--rootfs', rootfs, id('t2'), '/bin/sleep', '1000'],
      () => ['tasks', 'ls'],
      (id) => ['tasks', 'ps', id('t2')],
      (id) => ['tasks', 'pause', id('t2')],
      () => ['tasks', 'ls'],
      (id) => ['tasks', 'resume', id('t2')],
      (id) => ['tasks', 'exec', '--exec-id', 'e1', id('t2'), '/bin/echo', 'exec-ok'],
      (id) => ['tasks', 'metrics', id('t2')],
      (id) => ['containers', 'rm', id('t2')],
      (id) => ['tasks', 'rm', id('t2')],
      (id) => ['tasks', 'kill', id('t2')],
      () => ['tasks', 'ls'],
      (id) => ['tasks', 'kill', '-s', 'SIGKILL', id('t2')],
      () => ['tasks', 'ls'],
      (id) => ['tasks', 'kill', id('t2')],
      (id) => ['tasks', 'rm', id('t2')],
      (id) => ['tasks', 'ls'],
      (id) => ['containers', 'rm', id('t2')],
      (id) => ['tasks', 'ps', id('t2')],
    ]);
    expect(ours[6].stdout).toBe('exec-ok\n');
    expect(ours[7].stdout).toMatch(/memory.usage_in_bytes/);
    expect(ours).toEqual(theirs);
  });

  it('answers bad input with containerd errors and leaks nothing', async () => {
    const [ours, theirs] = await both([
      (id) => ['run', '--rm', '--runtime', 'io.containerd.nope.v1', '--rootfs', rootfs, id('bad1'), '/bin/true'],
      (id) => ['run', '--rm', '--rootfs', join(dir.path, 'missing'), id('bad2'), '/bin/true'],
      (id) => ['run', '--rm', '--rootfs', rootfs, id('bad3'), '/no/such/binary'],
      (id) => ['run', '-d', '--rootfs', rootfs, id('bad4'), '/bin/sleep', '1000'],
      (id) => ['tasks', 'exec', '-d', '--exec-id', 'x1', id('bad4'), '/bin/sleep', '1000'],
      (id) => ['tasks', 'exec', '--exec-id', 'x1', id('bad4'), '/bin/echo', 'dup'],
      (id) => ['tasks', 'exec', '--exec-id', 'Bad!', id('bad4'), '/bin/echo', 'bad'],
      (id) => ['tasks', 'kill', '-s', 'SIGKILL', id('bad4')],
      (id) => ['tasks', 'kill', id('bad4')],
      (id) => ['tasks', 'delete', id('bad4')],
      (id) => ['containers', 'rm', id('bad4')],
      () => ['containers', 'ls', '-q'],
      () => ['tasks', 'ls'],
    ]);
    expect(ours[0].stderr).toMatch(/binary not installed "containerd-shim-nope-v1"/);
    expect(ours[1].stderr).toMatch(/invalid rootfs/);
    expect(ours[5].stderr).toMatch(/id x1: already exists/);
    expect(ours).toEqual(theirs);
    const bundles = join(berthd.state, 'io.containerd.runtime.v2.task', 'default');
    expect(existsSync(bundles) ? readdirSync(bundles) : []).toEqual([]);
    expect(shimsOf(berthd.address)).toEqual([]);
    expect(readMountInfo().filter((m) => m.mountPoint.startsWith(berthd.dir))).toEqual([]);
  });

  it('a spec runc rejects fails Tasks.Create as containerd, and nothing is left', async () => {
    const outcomes = await Promise.all(
      pairs.map(async ([d, suffix]) => {
        const id = `rej${suffix}`;
        const spec = ociSpec(['/bin/true'], (s) => ((s.process.cwd = 'relative'), (s.root.path = rootfs)));
        const client = createClient(capi.ContainersService, d.address, { namespace: 'default' });
        const tasks = createClient(tapi.TasksService, d.address, { namespace: 'default' });
        try {
          await client.create({ container: runcContainer(id, spec) });
          const err = await tasks
            .create({ containerId: id, rootfs: [], stdin: '', stdout: '', stderr: '', terminal: false, runtimePath: '' })
            .then(() => undefined, (e: any) => ({ code: e.cause?.code, details: String(e.cause?.details).split(suffix).join('') }));
          const get = await tasks.get({ containerId: id, execId: '' }).then(() => 'found', (e: any) => e.cause?.details.split(suffix).join(''));
          await client.delete({ id });
          return { err, get };
        } finally {
          tasks.close();
          client.close();
        }
      }),
    );
    expect(outcomes[0].err?.details).toMatch(/failed to create shim task: OCI runtime create failed/);
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(shimsOf(berthd.address)).toEqual([]);
  });

  it('starts a task on a snapshot with ctr tasks start (the shim mounts the rootfs)', async () => {
    const snaps = berthd.client(sapi.SnapshotsService, 'default');
    const containers = berthd.client(capi.ContainersService, 'default');
    const id = `snap${process.pid}`;
    // The gc.root label keeps the collector off the snapshot until the container references it
    // (ctr uses a lease for the same purpose).
    const { mounts } = await snaps.prepare({ snapshotter: 'overlayfs', key: id, parent: '', labels: { 'containerd.io/gc.root': new Date().toISOString() } });
    expect(mounts[0].type).toBe('bind');
    populateBusybox(mounts[0].source);
    const spec = ociSpec(['/bin/sleep', '1000']);
    await containers.create({ container: runcContainer(id, spec, { snapshotter: 'overlayfs', key: id }) });
    expect(await berthd.ctr(['tasks', 'start', '-d', id])).toMatchObject({ code: 0, stderr: '' });
    const bundleRootfs = join(berthd.state, 'io.containerd.runtime.v2.task', 'default', id, 'rootfs');
    expect(readMountInfo().some((m) => m.mountPoint === bundleRootfs)).toBe(true);
    expect((await berthd.ctr(['tasks', 'exec', '--exec-id', 'ls', id, '/bin/ls', '/bin/busybox'])).stdout).toBe('/bin/busybox\n');
    // A container with a task cannot be deleted.
    const refused = await containers.delete({ id }).catch((e: any) => e.cause);
    expect({ code: refused.code, details: refused.details }).toEqual({ code: 9, details: `cannot delete running task ${id}: failed precondition` });
    expect((await berthd.ctr(['tasks', 'kill', '-s', 'SIGKILL', id])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    const rm = await berthd.ctr(['tasks', 'rm', id]);
    expect(rm).toMatchObject({ code: 0 });
    expect(readMountInfo().some((m) => m.mountPoint === bundleRootfs)).toBe(false);
    expect((await berthd.ctr(['containers', 'rm', id])).code).toBe(0);
  });

  it('ctr run -t works under a pty', async () => {
    const id = `tty${process.pid}`;
    const cmd = `${CTR_PATH} --address ${berthd.address} run -t --rm --rootfs ${rootfs} ${id} /bin/sh -c 'tty; echo tty-ok'`;
    const res = spawnSync('script', ['-qec', cmd, '/dev/null'], { timeout: 20_000, input: '' });
    const out = res.stdout.toString();
    expect(out).toMatch(/\/dev\/pts\/\d+/);
    expect(out).toMatch(/tty-ok/);
    expect(res.status).toBe(0);
  });

  it('ctr events shows the task events in containerd order', async () => {
    const topics = await Promise.all(
      pairs.map(async ([d, suffix]) => {
        // Subscribed before the run and stopped only once all it published has been printed.
        const lines = await ctrEventsDuring(d, [], async () => {
          await d.ctr(['run', '--rm', '--rootfs', rootfs, `ev${suffix}`, '/bin/true']);
        });
        return lines.filter((l) => l.includes(`ev${suffix}`)).map((l) => l.split(' ')[2]);
      }),
    );
    expect(topics[0]).toEqual(['/containers/create', '/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete', '/containers/delete']);
    expect(topics[0]).toEqual(topics[1]);
  });
});
