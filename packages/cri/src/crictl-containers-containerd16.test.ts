/**
 * CRI containers side by side: the same crictl v1.37 commands against berthd and against
 * Debian's containerd 1.6.20 with its CRI plugin, on one private CNI bridge network, the same
 * pause and busybox images through the same hosts.toml. Compared: inspect (status and verbose
 * info with the runtime spec) once ids, pids, times and paths are masked, the container
 * record, ps, the log file's lines, exec -s, and the error codes and words.
 */
import { readFileSync } from 'node:fs';
import { CONTAINERD_PATH, runCrictl, runCtr } from '@berth/testing';
import { errorOf, useCriTestBed, waitFor } from './test-bed';
import { json } from './test-support';

jest.setTimeout(300_000);

const describeIf = CONTAINERD_PATH ? describe : describe.skip;

/** Masks what differs by nature: ids, pids, times, the daemons' dirs. */
function masked(v: unknown, ids: string[], dir: string): any {
  let s = JSON.stringify(v);
  for (const id of ids) s = s.replaceAll(id, '<id>');
  s = s
    .replaceAll(dir, '<dir>')
    .replace(/\/proc\/\d+\/ns/g, '/proc/<pid>/ns')
    .replace(/"pid":\d+/g, '"pid":0')
    // CRI 1.37's user_specified_image, which containerd 1.6's cri-api drops.
    .replace(/,?"(user_specified_image|userSpecifiedImage)":"[^"]*"/g, '')
    .replace(/"(createdAt|startedAt|finishedAt)":"[^"]*"/g, '"$1":"<t>"')
    .replace(/\/io\.containerd\.grpc\.v1\.cri\/(containers|sandboxes)/g, '/cri/$1');
  return JSON.parse(s);
}

describeIf('containers: berthd and containerd 1.6.20 side by side', () => {
  const bed = useCriTestBed({
    name: 'ctr-side',
    containerd: '1.6',
    pullBusybox: true,
    pod: { prefix: 'side', attempt: 1, hostname: (name) => name, logs: 'own', makeLogDir: true, fields: () => ({ labels: { app: 'side' } }) },
    container: (name) => ({ log_path: `${name}.log`, labels: { tier: name }, annotations: { 'berth.test/c': name } }),
  });
  const podConfig = (over: Record<string, unknown> = {}) => bed.pod(over).path;
  const containerConfig = (name: string, over: Record<string, unknown> = {}) => bed.containerConfig(name, over);
  const both = (...args: string[]) => bed.both(...args);
  // Each test's pods go after it, also when it failed: a later test counts the pods it sees.
  afterEach(async () => {
    await bed.removePods(bed.berthd.address);
    await bed.removePods(bed.containerd.address);
  });

  /** runp + create (+ start) of the same configs on both; returns the ids. */
  async function runOnBoth(pod: string, ctr: string, start = true): Promise<{ b: { pod: string; ctr: string }; c: { pod: string; ctr: string } }> {
    const out: Record<string, { pod: string; ctr: string }> = {};
    for (const [name, address] of [['b', bed.berthd.address], ['c', bed.containerd.address]] as const) {
      const p = await runCrictl(address, ['runp', pod]);
      if (p.code !== 0) throw new Error(`${name} runp: ${p.stderr}`);
      const c = await runCrictl(address, ['create', '--no-pull', p.stdout.trim(), ctr, pod]);
      if (c.code !== 0) throw new Error(`${name} create: ${c.stderr}`);
      if (start) {
        const s = await runCrictl(address, ['start', c.stdout.trim()]);
        if (s.code !== 0) throw new Error(`${name} start: ${s.stderr}`);
      }
      out[name] = { pod: p.stdout.trim(), ctr: c.stdout.trim() };
    }
    return out as never;
  }

  it.each([
    ['a plain container', {}, {}],
    [
      'a security context: user, groups, caps, read-only rootfs, no_new_privs, seccomp, masked paths, resources, mounts',
      { linux: { security_context: { run_as_user: { value: 1000 }, supplemental_groups: [3000] } } },
      {
        envs: [{ key: 'A', value: 'b' }],
        working_dir: '/tmp',
        command: ['sh', '-c', 'echo hi; sleep 1000'],
        mounts: [{ container_path: '/data', host_path: '/tmp', readonly: true }],
        linux: {
          resources: { cpu_period: 100000, cpu_quota: 50000, cpu_shares: 512, memory_limit_in_bytes: 67108864, oom_score_adj: 500, cpuset_cpus: '0' },
          security_context: {
            run_as_user: { value: 1000 },
            run_as_group: { value: 2000 },
            supplemental_groups: [4000],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: { add_capabilities: ['NET_ADMIN'], drop_capabilities: ['CHOWN', 'KILL'] },
            masked_paths: ['/proc/kcore'],
            readonly_paths: ['/proc/sys'],
          },
        },
      },
    ],
    ['privileged', { linux: { security_context: { privileged: true } } }, { linux: { security_context: { privileged: true } } }],
    ['tty and stdin', {}, { tty: true, stdin: true, stdin_once: true, command: ['sh'] }],
    ['host namespaces', { linux: { security_context: { namespace_options: { network: 2, pid: 2, ipc: 2 } } }, hostname: '' }, { command: ['top'] }],
  ])('inspect of %s: the same once ids, times, pids and paths are masked', async (_what, podOver, ctrOver) => {
    const pod = podConfig(podOver);
    const ctr = containerConfig('side', { command: ['top'], ...ctrOver });
    const { b, c } = await runOnBoth(pod, ctr);
    const ib = json((await runCrictl(bed.berthd.address, ['inspect', b.ctr])).stdout);
    const ic = json((await runCrictl(bed.containerd.address, ['inspect', c.ctr])).stdout);
    const mb = masked(ib, [b.ctr, b.pod], bed.berthd.dir);
    const mc = masked(ic, [c.ctr, c.pod], bed.containerd.dir);
    // containerd 1.6's cri-api lacks image_id, stop_signal, user and resources in the status.
    for (const k of ['imageId', 'stopSignal', 'user', 'resources']) {
      delete mb.status[k];
      delete mc.status[k];
    }
    // Berth's RuntimeDefault seccomp profile is its own (see the README).
    if (mb.info.runtimeSpec.linux.seccomp) mb.info.runtimeSpec.linux.seccomp = mc.info.runtimeSpec.linux.seccomp ? '<profile>' : mb.info.runtimeSpec.linux.seccomp;
    if (mc.info.runtimeSpec.linux.seccomp) mc.info.runtimeSpec.linux.seccomp = '<profile>';
    expect(mb).toEqual(mc);

    // The container record: labels, image, runtime, snapshotter and the metadata extension.
    const record = async (address: string, ids: { pod: string; ctr: string }, dir: string) => {
      const r = JSON.parse((await runCtr(address, ['-n', 'k8s.io', 'containers', 'info', ids.ctr])).stdout);
      const ext = r.Extensions['io.cri-containerd.container.metadata'];
      const meta = JSON.parse(Buffer.from(ext.value, 'base64').toString());
      delete r.Spec;
      delete r.CreatedAt;
      delete r.UpdatedAt;
      return masked({ ...r, Extensions: { 'io.cri-containerd.container.metadata': { type: ext.type_url ?? ext.typeUrl, meta } } }, [ids.ctr, ids.pod], dir);
    };
    expect(await record(bed.berthd.address, b, bed.berthd.dir)).toEqual(await record(bed.containerd.address, c, bed.containerd.dir));

    // ps: the same items but for ids and times.
    const rows = async (address: string, ids: { pod: string; ctr: string }, dir: string) =>
      masked(json((await runCrictl(address, ['ps', '-a', '-o', 'json'])).stdout).containers.map((x: any) => ({ ...x, createdAt: '<t>', imageId: undefined })), [ids.ctr, ids.pod], dir);
    expect(await rows(bed.berthd.address, b, bed.berthd.dir)).toEqual(await rows(bed.containerd.address, c, bed.containerd.dir));
  });

  it('logs and exec -s: the same lines, outputs and exit codes; stop reports the same state and reason', async () => {
    const pod = podConfig();
    const ctr = containerConfig('logs', { command: ['sh', '-c', 'echo hello; echo oops >&2; printf partial; sleep 1000'] });
    const { b, c } = await runOnBoth(pod, ctr);
    const logsOf = async (address: string, id: string) => {
      const st = json((await runCrictl(address, ['inspect', id])).stdout).status;
      return readFileSync(st.logPath, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(1).join(' ')).sort();
    };
    // Compared once each has logged the three writes (the partial line is logged as it comes).
    for (const [address, id] of [[bed.berthd.address, b.ctr], [bed.containerd.address, c.ctr]]) await waitFor(`${id}'s log`, async () => (await logsOf(address, id)).length >= 3);
    expect(await logsOf(bed.berthd.address, b.ctr)).toEqual(await logsOf(bed.containerd.address, c.ctr));
    for (const cmd of [['sh', '-c', 'echo out; echo err >&2'], ['sh', '-c', 'exit 7'], ['nosuchcommand']]) {
      const rb = await runCrictl(bed.berthd.address, ['exec', '-s', b.ctr, ...cmd]);
      const rc = await runCrictl(bed.containerd.address, ['exec', '-s', c.ctr, ...cmd]);
      const clean = (e: string) => e.replace(/time="[^"]*" /g, '').replace(/[0-9a-f]{64}/g, '<id>').replace(/^E\d+ [\d:.]+\s+\d+ /gm, 'E ');
      expect([rb.code, rb.stdout, clean(rb.stderr)]).toEqual([rc.code, rc.stdout, clean(rc.stderr)]);
    }
    for (const [address, id] of [[bed.berthd.address, b.ctr], [bed.containerd.address, c.ctr]]) expect((await runCrictl(address, ['stop', '--timeout', '1', id])).code).toBe(0);
    const st = async (address: string, id: string) => {
      const s = json((await runCrictl(address, ['inspect', id])).stdout).status;
      return { state: s.state, reason: s.reason, exitCode: s.exitCode, message: s.message };
    };
    expect(await st(bed.berthd.address, b.ctr)).toEqual(await st(bed.containerd.address, c.ctr));
  });

  it('errors: a repeated name, a missing image, an unknown pod, a mount that cannot propagate, a missing container: the same codes and words', async () => {
    const pod = podConfig();
    // A process that stays up: the image's `sh` without stdin exits at once, and starting it
    // again would race its exit on each daemon.
    const ctr = containerConfig('dup', { command: ['sleep', '1000'] });
    const { b, c } = await runOnBoth(pod, ctr, false);
    const repeated = { berthd: await runCrictl(bed.berthd.address, ['create', '--no-pull', b.pod, ctr, pod]), containerd: await runCrictl(bed.containerd.address, ['create', '--no-pull', c.pod, ctr, pod]) };
    expect(errorOf(repeated.berthd)).toBe(errorOf(repeated.containerd));
    const noImage = containerConfig('noimage', { image: { image: 'docker.io/library/nosuch:1' } });
    const missing = { berthd: await runCrictl(bed.berthd.address, ['create', '--no-pull', b.pod, noImage, pod]), containerd: await runCrictl(bed.containerd.address, ['create', '--no-pull', c.pod, noImage, pod]) };
    expect(errorOf(missing.berthd)).toBe(errorOf(missing.containerd));
    const unknownPod = await both('create', '--no-pull', 'f'.repeat(64), containerConfig('nopod'), pod);
    expect(errorOf(unknownPod.berthd)).toBe(errorOf(unknownPod.containerd));
    const shared = containerConfig('shared', { mounts: [{ container_path: '/x', host_path: bed.world.dir, propagation: 2 }] });
    const prop = { berthd: await runCrictl(bed.berthd.address, ['create', '--no-pull', b.pod, shared, pod]), containerd: await runCrictl(bed.containerd.address, ['create', '--no-pull', c.pod, shared, pod]) };
    expect(errorOf(prop.berthd).replace(/container "<id>"/, '')).toBe(errorOf(prop.containerd).replace(/container "<id>"/, ''));
    const gone = await both('inspect', 'f'.repeat(64));
    expect(errorOf(gone.berthd)).toBe(errorOf(gone.containerd));
    const startTwice = { berthd: await runCrictl(bed.berthd.address, ['start', b.ctr]), containerd: await runCrictl(bed.containerd.address, ['start', c.ctr]) };
    expect([startTwice.berthd.code, startTwice.containerd.code]).toEqual([0, 0]);
    const again = { berthd: await runCrictl(bed.berthd.address, ['start', b.ctr]), containerd: await runCrictl(bed.containerd.address, ['start', c.ctr]) };
    expect(errorOf(again.berthd)).toBe(errorOf(again.containerd));
  });

  it('stats, update, reopen: the same fields and results; pod stats answered as containerd 1.6.20 does', async () => {
    const pod = podConfig();
    const ctr = containerConfig('stats', { command: ['sh', '-c', 'while true; do echo x; sleep 0.5; done'] });
    const { b, c } = await runOnBoth(pod, ctr);
    const shape = (v: any): any => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])])) : typeof v);
    const sb = json((await runCrictl(bed.berthd.address, ['stats', '-o', 'json', b.ctr])).stdout).stats[0];
    const sc = json((await runCrictl(bed.containerd.address, ['stats', '-o', 'json', c.ctr])).stdout).stats[0];
    // containerd 1.6 fills cpu and memory with what its cri-api has; Berth adds nothing else.
    expect(Object.keys(sb).sort()).toEqual(Object.keys(sc).sort());
    expect(shape(sb.attributes)).toEqual(shape(sc.attributes));
    expect(Object.keys(sb.cpu).sort()).toEqual(expect.arrayContaining(['timestamp', 'usageCoreNanoSeconds']));
    expect(Object.keys(sb.memory)).toEqual(expect.arrayContaining(['timestamp', 'workingSetBytes']));
    expect(shape(sb.writableLayer)).toEqual(shape(sc.writableLayer));
    const statsp = await both('statsp', '-o', 'json');
    const pb = json(statsp.berthd.stdout).stats;
    const pc = json(statsp.containerd.stdout).stats;
    expect(pb).toHaveLength(1);
    const podShape = (p: any) => ({ attributes: shape(p.attributes), linux: Object.keys(p.linux).sort(), containers: p.linux.containers.map((x: any) => Object.keys(x).sort()), net: shape(p.linux.network) });
    expect(podShape(pb[0])).toEqual(podShape(pc[0]));
    expect(statsp.berthd.code).toBe(statsp.containerd.code);
    expect(errorOf(statsp.berthd).replace(/desc = .*/, '')).toBe(errorOf(statsp.containerd).replace(/desc = .*/, ''));

    const update = ['update', '--memory', String(96 * 1024 * 1024), '--cpu-share', '256'];
    expect((await runCrictl(bed.berthd.address, [...update, b.ctr])).code).toBe(0);
    expect((await runCrictl(bed.containerd.address, [...update, c.ctr])).code).toBe(0);
    const res = async (address: string, id: string) => json((await runCrictl(address, ['inspect', id])).stdout).info.runtimeSpec.linux.resources;
    expect(await res(bed.berthd.address, b.ctr)).toEqual(await res(bed.containerd.address, c.ctr));
    const cg = (id: string, file: string) => readFileSync(`/sys/fs/cgroup/memory${bed.cgroupParent}/${id}/${file}`, 'utf8').trim();
    expect(cg(b.ctr, 'memory.limit_in_bytes')).toBe(cg(c.ctr, 'memory.limit_in_bytes'));

    const reopen = { berthd: await runCrictl(bed.berthd.address, ['logs', '--reopen', b.ctr]), containerd: await runCrictl(bed.containerd.address, ['logs', '--reopen', c.ctr]) };
    expect([reopen.berthd.code, reopen.containerd.code]).toEqual([0, 0]);
    for (const [address, id] of [[bed.berthd.address, b.ctr], [bed.containerd.address, c.ctr]]) await runCrictl(address, ['stop', '--timeout', '0', id]);
    const stopped = { berthd: await runCrictl(bed.berthd.address, ['logs', '--reopen', b.ctr]), containerd: await runCrictl(bed.containerd.address, ['logs', '--reopen', c.ctr]) };
    expect(errorOf(stopped.berthd)).toBe(errorOf(stopped.containerd));
  });
});
