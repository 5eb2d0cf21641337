/**
 * CRI containers through crictl v1.37 against a real berthd: create, start, ps (every filter),
 * inspect, logs (and -f, and --reopen), exec -s, update, stats, stop, rm, with pods on a private
 * CNI bridge network (as crictl-pods.test.ts) and a busybox image from a loopback registry.
 * After every pod is removed nothing of it or its containers is left: mounts, cgroups,
 * snapshots, leases, records, network namespaces.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tasks } from '@berth/api';
import { RuntimeServiceService } from '@berth/api/cri';
import { context } from '@berth/context';
import { PassThrough, Readable } from 'node:stream';
import { type ExecTasks, execInTask } from './exec-process';
import { DeadlineExceededError } from '@berth/errdefs';
import { FifoPool } from '@berth/exec';
import { CRICTL_PATH } from '@berth/testing';
import { crictl as streamingCrictl, crictlArgv as streamingCrictlArgv } from '@berth/cri-streaming/test-support';
import { BUSYBOX as IMAGE, useCriTestBed, waitFor } from './test-bed';
import { json } from './test-support';

jest.setTimeout(300_000);

/** crictl's stderr quotes the gRPC error inside err="..."; this unescapes it. */
const plain = (s: string) => s.replace(/\\"/g, '"');

const bed = useCriTestBed({
  name: 'ctrs',
  pullBusybox: true,
  pod: { hostname: (name) => `${name}-host`, logs: 'own', makeLogDir: true, fields: () => ({ labels: { app: 'web' } }) },
  container: (name) => ({ log_path: `${name}.log`, labels: { tier: name }, annotations: { 'berth.test/c': name } }),
});
const { crictl, ok } = bed;
// What a failed test left goes before the next, which compares the host with what it saw first.
afterEach(() => bed.removePods(bed.berthd.address));
/** Writes a pod config and returns its path and log directory. */
const podConfig = (over: Record<string, unknown> = {}) => bed.pod(over);
/** Writes a container config and returns its path. */
const containerConfig = (name: string, over: Record<string, unknown> = {}) => bed.containerConfig(name, over);
/** What pods and containers may leave on the host: compared before and after. */
const hostState = () => bed.hostState(['cgroups', 'mounts', 'netns', 'allocations']);

/** The content of the CRI log lines of a file (`<time> <stream> <tag> <content>`). */
function logLines(path: string): Array<{ time: string; stream: string; tag: string; content: string }> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [time, stream, tag, ...rest] = l.split(' ');
      return { time, stream, tag, content: rest.join(' ') };
    });
}

describe('crictl create / start / ps / inspect / logs / exec -s / stop / rm', () => {
  it('runs a container in a pod: its spec, state, log file, exec; stopp and rmp leave nothing', async () => {
    const before = hostState();
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const script = 'echo hello; echo oops >&2; printf partial; echo; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done';
    const cfg = containerConfig('web', { command: ['sh', '-c', script], envs: [{ key: 'FOO', value: 'bar' }], working_dir: '/tmp' });
    const id = (await ok('create', '--no-pull', podId, cfg, pod.path)).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    let inspect = json(await ok('inspect', id.slice(0, 12)));
    expect(inspect.status).toMatchObject({ id, state: 'CONTAINER_CREATED', metadata: { name: 'web', attempt: 0 }, labels: { tier: 'web' }, annotations: { 'berth.test/c': 'web' } });
    expect(inspect.status.logPath).toBe(join(pod.logDir, 'web.log'));
    expect(existsSync(inspect.status.logPath)).toBe(false);
    const spec = inspect.info.runtimeSpec;
    expect(spec.process.args).toEqual(['sh', '-c', script]);
    expect(spec.process.cwd).toBe('/tmp');
    expect(spec.process.env).toEqual(expect.arrayContaining(['FOO=bar', `HOSTNAME=pod-${bed.seq - 1}-host`]));
    expect(spec.linux.cgroupsPath).toBe(`${bed.cgroupParent}/${id}`);
    expect(spec.annotations).toMatchObject({ 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': podId, 'io.kubernetes.cri.container-name': 'web' });
    expect(inspect.info).toMatchObject({ sandboxID: podId, snapshotKey: id, snapshotter: 'overlayfs', runtimeType: 'io.containerd.runc.v2' });

    await ok('start', id);
    inspect = json(await ok('inspect', id));
    expect(inspect.status.state).toBe('CONTAINER_RUNNING');
    const pid: number = inspect.info.pid;
    const podPid: number = json(await ok('inspectp', podId)).info.pid;
    for (const ns of ['net', 'ipc', 'uts', 'pid']) expect(statSync(`/proc/${pid}/ns/${ns}`).ino).toBe(statSync(`/proc/${podPid}/ns/${ns}`).ino);
    expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`:${bed.cgroupParent}/${id}`);
    expect(readFileSync(`/proc/${pid}/root/etc/hostname`, 'utf8')).toBe(`pod-${bed.seq - 1}-host\n`);

    // The log file in the CRI format.
    const logPath = inspect.status.logPath;
    await waitFor('two ticks', () => existsSync(logPath) && readFileSync(logPath, 'utf8').includes('tick 1'));
    expect((statSync(logPath).mode & 0o777).toString(8)).toBe('640');
    const lines = logLines(logPath);
    expect(lines.slice(0, 4).map((l) => [l.stream, l.tag, l.content])).toEqual(
      expect.arrayContaining([
        ['stdout', 'F', 'hello'],
        ['stderr', 'F', 'oops'],
        ['stdout', 'F', 'partial'],
      ]),
    );
    for (const l of lines) expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const logs = await crictl('logs', id);
    expect(logs.stdout).toContain('hello\n');
    expect(logs.stderr).toContain('oops\n');

    // ps, all forms.
    const ps = json(await ok('ps', '-o', 'json'));
    expect(ps.containers).toHaveLength(1);
    expect(ps.containers[0]).toMatchObject({ id, podSandboxId: podId, state: 'CONTAINER_RUNNING', labels: { tier: 'web' }, image: { image: IMAGE } });
    expect(ps.containers[0].imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await ok('ps', '-q')).trim()).toBe(id);
    expect(json(await ok('ps', '-o', 'json', '--pod', podId.slice(0, 8))).containers).toHaveLength(1);
    expect(json(await ok('ps', '-o', 'json', '--label', 'tier=web')).containers).toHaveLength(1);
    expect(json(await ok('ps', '-o', 'json', '--label', 'tier=db')).containers).toHaveLength(0);
    expect(json(await ok('ps', '-o', 'json', '--state', 'exited')).containers).toHaveLength(0);
    expect(json(await ok('ps', '-o', 'json', '--id', id.slice(0, 10))).containers).toHaveLength(1);
    expect(json(await ok('ps', '-o', 'json', '--name', 'web')).containers).toHaveLength(1);

    // exec -s (ExecSync): output, exit code.
    const exec = await crictl('exec', '-s', id, 'sh', '-c', 'echo out; echo err >&2');
    // crictl prints both streams on its stdout.
    expect(exec.code).toBe(0);
    expect(exec.stdout).toContain('out\n');
    expect(exec.stdout).toContain('err\n');
    const failed = await crictl('exec', '-s', id, 'sh', '-c', 'echo out; echo err >&2; exit 3');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("exited with 3: err");
    const sync = await bed.berthd.client(RuntimeServiceService).execSync({ containerId: id, cmd: ['sh', '-c', 'echo out; exit 3'], timeout: 10 });
    expect({ exitCode: sync.exitCode, stdout: Buffer.from(sync.stdout).toString() }).toEqual({ exitCode: 3, stdout: 'out\n' });
    // A timeout: DeadlineExceeded, and the exec's process is gone.
    const t0 = Date.now();
    await expect(bed.berthd.client(RuntimeServiceService).execSync({ containerId: id, cmd: ['sleep', '1234'], timeout: 1 })).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect((await ok('exec', '-s', id, 'ps', '-o', 'args'))).not.toContain('sleep 1234');
    expect((await ok('exec', '-s', id, 'cat', '/proc/self/cgroup'))).toContain(`${bed.cgroupParent}/${id}`);

    // stats
    const stats = json(await ok('stats', '-o', 'json', id));
    expect(stats.stats[0].attributes.id).toBe(id);
    expect(Number(stats.stats[0].cpu.usageCoreNanoSeconds.value)).toBeGreaterThan(0);
    expect(Number(stats.stats[0].memory.workingSetBytes.value)).toBeGreaterThan(0);
    expect(stats.stats[0].writableLayer.fsId.mountpoint).toContain('io.containerd.snapshotter.v1.overlayfs');

    // update: the cgroup and the stored spec.
    await ok('update', '--memory', String(64 * 1024 * 1024), '--cpu-quota', '50000', '--cpu-period', '100000', id);
    expect(readFileSync(`/sys/fs/cgroup/memory${bed.cgroupParent}/${id}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(64 * 1024 * 1024));
    expect(json(await ok('inspect', id)).info.runtimeSpec.linux.resources.memory.limit).toBe(64 * 1024 * 1024);

    // reopen: the file renamed away stops growing, a new one at the path gets the new lines.
    renameSync(logPath, `${logPath}.old`);
    await ok('logs', '--reopen', id);
    await waitFor('a new log file', () => existsSync(logPath) && readFileSync(logPath, 'utf8').includes('tick'));
    const oldSize = statSync(`${logPath}.old`).size;
    await new Promise((r) => setTimeout(r, 1500));
    expect(statSync(`${logPath}.old`).size).toBe(oldSize);

    // stop: SIGTERM (sh ignores it while it waits on sleep? busybox sh exits), then SIGKILL after the timeout.
    await ok('stop', '--timeout', '2', id);
    inspect = json(await ok('inspect', id));
    expect(inspect.status.state).toBe('CONTAINER_EXITED');
    expect(['Error', 'Completed']).toContain(inspect.status.reason);
    expect(inspect.status.exitCode).not.toBe(0);
    expect(Date.parse(inspect.status.finishedAt)).toBeGreaterThan(Date.parse(inspect.status.startedAt));
    expect(json(await ok('ps', '-a', '-o', 'json', '--state', 'exited')).containers.map((c: any) => c.id)).toEqual([id]);
    await ok('stop', id);

    await ok('rm', id);
    expect(json(await ok('ps', '-a', '-o', 'json')).containers).toEqual([]);
    const gone = await crictl('inspect', id);
    expect(plain(gone.stderr)).toContain('code = NotFound');
    const runtime = bed.berthd.client(RuntimeServiceService);
    await expect(runtime.removeContainer({ containerId: id })).resolves.toEqual({});
    await expect(runtime.stopContainer({ containerId: id, timeout: 0 })).resolves.toEqual({});

    await ok('stopp', podId);
    await ok('rmp', podId);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'snapshots', 'ls'])).stdout.split('\n').filter((l) => l.includes(id) || l.includes(podId))).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    // Its directory goes right after the answer.
    await waitFor('the container directory removed', () => !existsSync(join(bed.berthd.root, 'io.containerd.grpc.v1.cri', 'containers', id)));
    expect(hostState()).toEqual(before);
  });
});

describe('a berthd killed with kill -9 and started again', () => {
  it('still knows its pods and containers: READY and RUNNING, the same IP and pid; the log keeps growing; exec, stop, rm work', async () => {
    const before = hostState();
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const cfg = containerConfig('ticker', { command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'] });
    const id = (await ok('create', '--no-pull', podId, cfg, pod.path)).trim();
    await ok('start', id);
    // One that exits while berthd is down, with its exit code.
    const quick = (await ok('create', '--no-pull', podId, containerConfig('quick', { command: ['sh', '-c', 'sleep 2; exit 3'] }), pod.path)).trim();
    await ok('start', quick);
    const first = json(await ok('inspect', id));
    const firstPod = json(await ok('inspectp', podId));
    const logPath = first.status.logPath;
    await waitFor('ticks', () => existsSync(logPath) && readFileSync(logPath, 'utf8').includes('tick 2'));
    // What a kill -9 in the middle of a RemoveContainer leaves: directories of a container whose
    // record is gone. The restarted daemon sweeps them, as containerd does.
    const orphans = ['io.containerd.grpc.v1.cri', 'containers', `gone-${process.pid}`];
    const orphanDirs = [join(bed.berthd.root, ...orphans), join(bed.berthd.state, ...orphans)];
    for (const d of orphanDirs) mkdirSync(join(d, 'io'), { recursive: true });
    writeFileSync(join(orphanDirs[0], 'status'), '{}');

    await bed.berthd.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    await bed.berthd.restart();

    const pods = json(await ok('inspectp', podId));
    expect(pods.status).toMatchObject({ state: 'SANDBOX_READY', network: { ip: firstPod.status.network.ip } });
    const after = json(await ok('inspect', id));
    expect(after.status.state).toBe('CONTAINER_RUNNING');
    expect(after.info.pid).toBe(first.info.pid);
    const q = json(await ok('inspect', quick));
    expect(q.status).toMatchObject({ state: 'CONTAINER_EXITED', exitCode: 3, reason: 'Error' });
    for (const d of orphanDirs) expect([d, existsSync(d)]).toEqual([d, false]);
    expect(existsSync(join(bed.berthd.root, 'io.containerd.grpc.v1.cri', 'containers', id))).toBe(true);
    // Output written while berthd was down and after it came back both reach the log.
    const lastTick = () => Math.max(...logLines(logPath).map((l) => Number(/tick (\d+)/.exec(l.content)?.[1] ?? -1)));
    const seen = lastTick();
    await waitFor('more ticks after the restart', () => lastTick() >= seen + 5);
    const ticks = logLines(logPath).map((l) => Number(/tick (\d+)/.exec(l.content)?.[1]));
    expect(ticks).toEqual(ticks.map((_t, i) => i));
    expect((await ok('exec', '-s', id, 'echo', 'still here')).trim()).toBe('still here');
    expect(json(await ok('ps', '-a', '-o', 'json', '--pod', podId)).containers.map((c: any) => c.id).sort()).toEqual([id, quick].sort());

    await ok('stop', '--timeout', '1', id);
    expect(json(await ok('inspect', id)).status.state).toBe('CONTAINER_EXITED');
    await ok('rm', id, quick);
    await ok('rmp', '-f', podId);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(hostState()).toEqual(before);
  });
});

describe('failures', () => {
  it('a repeated name, a missing image, an unknown pod, a mount that cannot propagate: errors, and nothing left behind', async () => {
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const before = { records: (await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout, snapshots: (await bed.berthd.ctr(['-n', 'k8s.io', 'snapshots', 'ls'])).stdout };
    const cfg = containerConfig('dup');
    const id = (await ok('create', '--no-pull', podId, cfg, pod.path)).trim();
    const again = await crictl('create', '--no-pull', podId, cfg, pod.path);
    const meta = JSON.parse(readFileSync(pod.path, 'utf8')).metadata;
    const name = `dup_${meta.name}_${meta.namespace}_${meta.uid}_0`;
    expect(plain(again.stderr)).toContain(`code = Unknown desc = failed to reserve container name "${name}": name "${name}" is reserved for "${id}"`);
    await ok('rm', id);
    const noImage = await crictl('create', '--no-pull', podId, containerConfig('noimage', { image: { image: 'docker.io/library/nosuch:1' } }), pod.path);
    expect(plain(noImage.stderr)).toContain('code = NotFound desc = failed to resolve image "docker.io/library/nosuch:1": not found');
    const noPod = await crictl('create', '--no-pull', 'f'.repeat(64), containerConfig('nopod'), pod.path);
    expect(plain(noPod.stderr)).toContain(`code = NotFound desc = failed to find sandbox id "${'f'.repeat(64)}": not found`);
    const shared = await crictl('create', '--no-pull', podId, containerConfig('shared', { mounts: [{ container_path: '/x', host_path: bed.world.dir, propagation: 2 }] }), pod.path);
    expect(plain(shared.stderr)).toMatch(/code = Unknown desc = failed to generate container "[0-9a-f]{64}" spec: failed to generate spec: path ".*" is mounted on "\/.*" but it is not a shared mount/);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout).toBe(before.records);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'snapshots', 'ls'])).stdout).toBe(before.snapshots);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    await waitFor('no container directory', () => readdirSync(join(bed.berthd.root, 'io.containerd.grpc.v1.cri', 'containers')).length === 0);
    await ok('rmp', '-f', podId);
  });

  it('a container left running when its pod is stopped and removed: killed and removed with it', async () => {
    const before = hostState();
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const id = (await ok('create', '--no-pull', podId, containerConfig('orphan', { command: ['sleep', '1000'] }), pod.path)).trim();
    await ok('start', id);
    const pid: number = json(await ok('inspect', id)).info.pid;
    await ok('stopp', podId);
    expect(json(await ok('inspect', id)).status.state).toBe('CONTAINER_EXITED');
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await ok('rmp', podId);
    expect(json(await ok('ps', '-a', '-o', 'json')).containers).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(hostState()).toEqual(before);
  });
});

describe('crictl logs -f', () => {
  it('follows the log while the container runs and ends once it exited; a tty container logs stdout only, \\r\\n endings kept out', async () => {
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const id = (await ok('create', '--no-pull', podId, containerConfig('follow', { command: ['sh', '-c', 'for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done'] }), pod.path)).trim();
    await ok('start', id);
    writeFileSync(join(bed.world.dir, 'crictl-empty.yaml'), '');
    const child = spawn(CRICTL_PATH!, ['--config', join(bed.world.dir, 'crictl-empty.yaml'), '-r', `unix://${bed.berthd.address}`, 'logs', '-f', id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? 1)));
    expect(code).toBe(0);
    expect(out).toBe('line 1\nline 2\nline 3\nline 4\nline 5\nline 6\n');
    expect(json(await ok('inspect', id)).status).toMatchObject({ state: 'CONTAINER_EXITED', exitCode: 0, reason: 'Completed' });

    const tty = (await ok('create', '--no-pull', podId, containerConfig('tty', { tty: true, command: ['sh', '-c', 'echo out; echo err >&2'] }), pod.path)).trim();
    await ok('start', tty);
    await waitFor('the tty container to exit', async () => json(await ok('inspect', tty)).status.state === 'CONTAINER_EXITED');
    const lines = logLines(json(await ok('inspect', tty)).status.logPath);
    expect(lines.map((l) => [l.stream, l.tag, l.content])).toEqual([
      ['stdout', 'F', 'out'],
      ['stdout', 'F', 'err'],
    ]);
    await ok('rmp', '-f', podId);
  });
});

describe('exec with streams (what the streaming server\'s Exec is wired to)', () => {
  it('runs a command with stdin, stdout and a tty over the tasks API, with resize and the exit code', async () => {
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const id = (await ok('create', '--no-pull', podId, containerConfig('execd', { command: ['sleep', '1000'] }), pod.path)).trim();
    await ok('start', id);
    const spec = json(await ok('inspect', id)).info.runtimeSpec;
    const client = bed.berthd.client(tasks.TasksService, 'k8s.io');
    const grpcTasks: ExecTasks = {
      exec: async (_c, r) => void (await client.exec({ ...r, spec: { typeUrl: r.spec.typeUrl, value: r.spec.value } })),
      start: (_c, r) => client.start(r),
      wait: (_c, r) => client.wait(r),
      kill: async (_c, r) => void (await client.kill({ ...r })),
      deleteProcess: (_c, r) => client.deleteProcess(r),
      resizePty: async (_c, r) => void (await client.resizePty(r)),
      closeIO: async (_c, r) => void (await client.closeIo(r)),
    };
    const fifoDir = join(bed.world.dir, 'exec-fifos');
    const fifos = new FifoPool(join(bed.world.dir, 'exec-fifo-pool'), 4);
    const out = new PassThrough();
    let stdout = '';
    out.on('data', (b: Buffer) => (stdout += b.toString()));
    const cat = await execInTask(grpcTasks, context({ namespace: 'k8s.io' }), {
      containerId: id,
      process: { ...spec.process, args: ['cat'] },
      stdin: Readable.from([Buffer.from('hello\n'), Buffer.from('world\n')]),
      stdout: out,
      tty: false,
      fifoDir,
      fifos,
    });
    const within = <T>(p: Promise<T>, what: string) => Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error(`${what}: timed out; stdout so far ${JSON.stringify(stdout)}`)), 20_000))]);
    expect(await within(cat.exited, 'cat')).toBe(0);
    expect(stdout).toBe('hello\nworld\n');

    let ttyOut = '';
    const t = new PassThrough();
    t.on('data', (b: Buffer) => (ttyOut += b.toString()));
    const sh = await execInTask(grpcTasks, context({ namespace: 'k8s.io' }), {
      containerId: id,
      process: { ...spec.process, args: ['sh', '-c', 'sleep 0.3; test -t 1 && echo is-a-tty; exit 4'], terminal: true },
      stdout: t,
      tty: true,
      fifoDir,
      fifos,
    });
    await sh.resize(120, 40);
    expect(await within(sh.exited, 'sh')).toBe(4);
    expect(ttyOut).toContain('is-a-tty\r\n');
    expect(readdirSync(fifoDir)).toEqual([]);
    await ok('rmp', '-f', podId);
  });
});

describe('crictl exec, attach and port-forward through the streaming server', () => {
  const dir = () => join(bed.world.dir, 'streaming');
  const withInput = (args: string[], input: string) => {
    mkdirSync(dir(), { recursive: true });
    return streamingCrictl(bed.berthd.address, dir(), args, { input });
  };

  it('exec: output, stdin with -i, the exit code; attach -i to a stdin_once container; a stopped container is refused', async () => {
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const id = (await ok('create', '--no-pull', podId, containerConfig('streamed', { command: ['sleep', '1000'] }), pod.path)).trim();
    await ok('start', id);
    const both = await crictl('exec', id, 'sh', '-c', 'echo out; echo err >&2; hostname');
    expect({ code: both.code, stdout: both.stdout, stderr: both.stderr }).toEqual({ code: 0, stdout: `out\n${pod.name}-host\n`, stderr: 'err\n' });
    const cat = await withInput(['exec', '-i', id, 'sh', '-c', 'cat; echo done'], 'one\ntwo\n');
    expect({ code: cat.code, stdout: cat.stdout.toString() }).toEqual({ code: 0, stdout: 'one\ntwo\ndone\n' });
    // crictl 1.37 exits 1 and names the code (as against containerd 1.6.20); exec -s exits with it.
    const three = await crictl('exec', id, 'sh', '-c', 'exit 3');
    expect(three.code).toBe(1);
    expect(three.stderr).toContain('command terminated with exit code 3');

    const reader = (await ok('create', '--no-pull', podId, containerConfig('reader', { stdin: true, stdin_once: true, command: ['sh', '-c', 'read line; echo got $line'] }), pod.path)).trim();
    await ok('start', reader);
    const attached = await withInput(['attach', '-i', reader], 'hello\n');
    expect({ code: attached.code, stdout: attached.stdout.toString() }).toEqual({ code: 0, stdout: 'got hello\n' });
    await waitFor('the reader to exit', async () => json(await ok('inspect', reader)).status.state === 'CONTAINER_EXITED');
    expect(logLines(join(pod.logDir, 'reader.log')).map((l) => l.content)).toEqual(['got hello']);

    await ok('stop', id);
    const refused = await crictl('exec', id, 'true');
    expect(refused.code).not.toBe(0);
    expect(plain(refused.stderr)).toContain('code = Unknown desc = container is in CONTAINER_EXITED state');
    await ok('rmp', '-f', podId);
  });

  it("port-forward reaches a server on localhost in the pod's network namespace", async () => {
    const pod = podConfig();
    const podId = (await ok('runp', pod.path)).trim();
    const web = (await ok('create', '--no-pull', podId, containerConfig('web', { command: ['sh', '-c', 'mkdir -p /tmp/www && echo served-from-the-pod > /tmp/www/index.html && httpd -f -p 127.0.0.1:8080 -h /tmp/www'] }), pod.path)).trim();
    await ok('start', web);
    await waitFor('httpd to listen', async () => (await crictl('exec', web, 'sh', '-c', 'netstat -ltn | grep -q 127.0.0.1:8080')).code === 0);
    mkdirSync(dir(), { recursive: true });
    const child = spawn(CRICTL_PATH!, streamingCrictlArgv(bed.berthd.address, dir(), ['port-forward', podId, ':8080']), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: dir() } });
    try {
      let said = '';
      const port = await new Promise<number>((resolve, reject) => {
        const onData = (b: Buffer) => {
          said += b.toString();
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(said);
          if (m) resolve(Number(m[1]));
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.once('exit', (code) => reject(new Error(`crictl port-forward exited ${code}: ${said}`)));
      });
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${port}/index.html`);
        expect({ status: res.status, body: await res.text() }).toEqual({ status: 200, body: 'served-from-the-pod\n' });
      }
    } finally {
      child.kill('SIGINT');
    }
    const notReady = await crictl('port-forward', 'f'.repeat(64), ':1');
    expect(notReady.code).not.toBe(0);
    await ok('rmp', '-f', podId);
  });
});
