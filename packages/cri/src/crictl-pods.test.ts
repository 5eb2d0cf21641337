/**
 * Pod sandboxes through crictl v1.37 against a real berthd: runp, pods, inspectp, stopp, rmp,
 * with a pause image of Debian's catatonit, a private CNI bridge network (bridge, host-local,
 * portmap on a test-unique bridge and subnet) and a netns root in a temp dir. After every pod is
 * gone nothing of it is left: network namespaces, veths, IP allocations, iptables rules,
 * cgroups, mounts.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fetchTcp } from '@berth/cni/test-helpers';
import { RuntimeServiceService } from '@berth/api/cri';
import { readMountInfo } from '@berth/mount';
import { TestDaemon, freePort, runCrictl } from '@berth/testing';
import { useCriTestBed } from './test-bed';
import { json } from './test-support';

jest.setTimeout(240_000);

/** Lowering an OOM score needs CAP_SYS_RESOURCE, which this machine may not give (a container). */
const RESTRICT_OOM = (() => {
  const eff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
  return (eff & (1n << 24n)) === 0n;
})();
const OWN_OOM = Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
const PAUSE_OOM = RESTRICT_OOM ? Math.max(-998, OWN_OOM) : -998;

/** crictl's stderr quotes the gRPC error inside err="..."; this unescapes it. */
const plain = (s: string) => s.replace(/\\"/g, '"');

const bed = useCriTestBed({
  name: 'pods',
  restrictOomScoreAdj: RESTRICT_OOM,
  // A handler whose shim does not exist: RunPodSandbox fails at its last steps. (A runtimes
  // table replaces the default set, so runc is named too.)
  extraConfig: () =>
    `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n` +
    `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.broken]\n  runtime_type = "io.containerd.nosuch.v1"\n`,
  pod: {
    hostname: (name) => `${name}-host`,
    logs: 'own',
    fields: (n) => ({ labels: { app: 'web', seq: String(n) }, annotations: { 'berth.test/a': 'b' } }),
  },
});
const { crictl, ok } = bed;
// What a failed test left goes before the next, which compares the host with what it saw first.
afterEach(() => bed.removePods(bed.berthd.address));
/** Writes a pod config for crictl runp and returns its path. */
const podConfig = (over: Record<string, unknown> = {}) => bed.pod(over).path;
/** What a pod may leave on the host: compared before and after. */
const hostState = () => bed.hostState(['netns', 'veths', 'allocations', 'iptables', 'cgroups', 'mounts']);

describe('crictl runp / pods / inspectp / stopp / rmp', () => {
  it('runs a pod on the CNI bridge: READY, its IP reachable from the host, hostPort on 127.0.0.1; stopp and rmp leave nothing', async () => {
    const before = hostState();
    const hostPort = await freePort();
    const config = podConfig({
      dns_config: { servers: ['10.10.10.10'], searches: ['google.com'], options: ['ndots:8'] },
      port_mappings: [{ protocol: 0, container_port: 8080, host_port: hostPort, host_ip: '127.0.0.1' }],
      linux: { sysctls: { 'kernel.shm_rmid_forced': '1' } },
    });
    const id = (await ok('runp', config)).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    const pods = json(await ok('pods', '-o', 'json'));
    expect(pods.items).toHaveLength(1);
    expect(pods.items[0]).toMatchObject({ id, state: 'SANDBOX_READY', labels: { app: 'web' }, annotations: { 'berth.test/a': 'b' }, runtimeHandler: '' });

    const inspect = json(await ok('inspectp', id.slice(0, 12)));
    expect(inspect.status).toMatchObject({
      id,
      state: 'SANDBOX_READY',
      metadata: { name: `pod-${bed.seq}`, namespace: 'berth-test', attempt: 0 },
      linux: { namespaces: { options: { network: 'POD', pid: 'POD', ipc: 'POD', targetId: '' } } },
      labels: { app: 'web', seq: String(bed.seq) },
      annotations: { 'berth.test/a': 'b' },
    });
    const ip: string = inspect.status.network.ip;
    expect(ip.startsWith(`${bed.net.subnet}.`)).toBe(true);
    const info = inspect.info;
    expect(info).toMatchObject({ processStatus: 'running', netNamespaceClosed: false, snapshotKey: id, snapshotter: 'overlayfs', runtimeType: 'io.containerd.runc.v2' });
    expect(info.config.metadata.name).toBe(`pod-${bed.seq}`);
    expect(info.config.dns_config).toEqual({ servers: ['10.10.10.10'], searches: ['google.com'], options: ['ndots:8'] });
    const spec = info.runtimeSpec;
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    expect(spec.process.args).toEqual(['/catatonit', '-P']);
    expect(spec.process.oomScoreAdj).toBe(PAUSE_OOM);
    expect(spec.linux.cgroupsPath).toBe(`${bed.cgroupParent}/${id}`);
    expect(spec.hostname).toBe(`pod-${bed.seq}-host`);
    expect(spec.annotations).toMatchObject({ 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': id });
    const netnsPath = spec.linux.namespaces.find((n: any) => n.type === 'network').path;
    expect(netnsPath.startsWith(`${bed.net.netnsRoot}/cni-`)).toBe(true);

    // The pause process: catatonit in the pod's netns, cgroup and OOM score.
    const pid: number = info.pid;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toBe('/catatonit');
    expect(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()).toBe(String(PAUSE_OOM));
    expect(statSync(`/proc/${pid}/ns/net`).ino).toBe(statSync(netnsPath).ino);
    expect(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`:${bed.cgroupParent}/${id}`);
    expect(readFileSync(`/proc/${pid}/root/etc/resolv.conf`, 'utf8')).toBe('search google.com\nnameserver 10.10.10.10\noptions ndots:8\n');
    expect(readMountInfo().some((m) => m.mountPoint.endsWith(`/sandboxes/${id}/shm`) && m.fsType === 'tmpfs')).toBe(true);
    // The sysctl is set in the pod's IPC namespace, not the host's.
    expect(execFileSync('nsenter', ['-t', String(pid), '--ipc', 'cat', '/proc/sys/kernel/shm_rmid_forced'], { encoding: 'utf8' }).trim()).toBe('1');

    // The container record: namespace k8s.io, containerd's labels and metadata extension.
    const record = await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'info', id]);
    expect(record.code).toBe(0);
    const c = JSON.parse(record.stdout);
    expect(c.Labels).toMatchObject({ 'io.cri-containerd.kind': 'sandbox', app: 'web' });
    expect(c.Extensions['io.cri-containerd.sandbox.metadata']).toBeDefined();

    // Reachable from the host: a listener in the pod's netns, by pod IP and by hostPort on loopback.
    await bed.net.listen(netnsPath, 8080, 'hello from the pod');
    expect(await fetchTcp(ip, 8080)).toBe('hello from the pod');
    expect(await fetchTcp('127.0.0.1', hostPort)).toBe('hello from the pod');

    await ok('stopp', id);
    const stopped = json(await ok('inspectp', id));
    expect(stopped.status.state).toBe('SANDBOX_NOTREADY');
    expect(stopped.status.network.ip).toBe('');
    expect(existsSync(netnsPath)).toBe(false);
    expect(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/catatonit')).toBe(false);
    expect(bed.net.allocations()).toEqual(before.allocations);
    await ok('stopp', id);
    expect(json(await ok('pods', '-o', 'json', '--state', 'notready')).items.map((p: any) => p.id)).toEqual([id]);
    expect(json(await ok('pods', '-o', 'json', '--state', 'ready')).items).toEqual([]);

    await ok('rmp', id);
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    const gone = await crictl('inspectp', id);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('code = NotFound');
    // crictl asks PodSandboxStatus first and stops at its NotFound; the RPCs themselves answer OK.
    const runtime = bed.berthd.client(RuntimeServiceService);
    await expect(runtime.removePodSandbox({ podSandboxId: id })).resolves.toEqual({});
    await expect(runtime.stopPodSandbox({ podSandboxId: id })).resolves.toEqual({});
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'snapshots', 'ls'])).stdout.split('\n').filter((l) => l.includes(id))).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(hostState()).toEqual(before);
  });

  it('host network, PID and IPC: no netns, no IP, the host namespaces', async () => {
    const before = hostState();
    const config = podConfig({ linux: { security_context: { namespace_options: { network: 2, pid: 2, ipc: 2 } } } });
    const id = (await ok('runp', config)).trim();
    const inspect = json(await ok('inspectp', id));
    expect(inspect.status.state).toBe('SANDBOX_READY');
    expect(inspect.status.network.ip).toBe('');
    expect(inspect.status.linux.namespaces.options).toMatchObject({ network: 'NODE', pid: 'NODE', ipc: 'NODE' });
    const pid: number = inspect.info.pid;
    for (const ns of ['net', 'pid', 'ipc', 'uts']) expect(readlinkSync(`/proc/${pid}/ns/${ns}`)).toBe(readlinkSync(`/proc/self/ns/${ns}`));
    await ok('rmp', '-f', id);
    expect(hostState()).toEqual(before);
  });

  it('repeated and concurrent StopPodSandbox and RemovePodSandbox calls (kubelet retries) are done one after the other', async () => {
    const before = hostState();
    const id = (await ok('runp', podConfig())).trim();
    const runtime = bed.berthd.client(RuntimeServiceService);
    const stops = [1, 2, 3].map(() => runtime.stopPodSandbox({ podSandboxId: id }));
    const removes = [1, 2].map(() => runtime.removePodSandbox({ podSandboxId: id }));
    await expect(Promise.all([...stops, ...removes])).resolves.toHaveLength(5);
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect(hostState()).toEqual(before);
  });

  it('filters pods by id prefix and label', async () => {
    const a = (await ok('runp', podConfig({ linux: { security_context: { namespace_options: { network: 2 } } }, labels: { tier: 'a' } }))).trim();
    const b = (await ok('runp', podConfig({ linux: { security_context: { namespace_options: { network: 2 } } }, labels: { tier: 'b' } }))).trim();
    try {
      expect(json(await ok('pods', '-o', 'json', '--label', 'tier=b')).items.map((p: any) => p.id)).toEqual([b]);
      expect(json(await ok('pods', '-o', 'json', '--id', a.slice(0, 10))).items.map((p: any) => p.id)).toEqual([a]);
      expect(json(await ok('pods', '-o', 'json', '--label', 'tier=c')).items).toEqual([]);
    } finally {
      await ok('rmp', '-f', a, b);
    }
  });
});

describe('a Node client of the CRI (@berth/api/cri over grpc-js)', () => {
  it('reads pods with their nanosecond times exact, as decimal strings (they pass 2^53)', async () => {
    const id = (await ok('runp', podConfig({ linux: { security_context: { namespace_options: { network: 2 } } } }))).trim();
    try {
      const runtime = bed.berthd.client(RuntimeServiceService);
      const listed = (await runtime.listPodSandbox({ filter: { id, labelSelector: {} } })).items;
      const fromCrictl = json(await ok('pods', '-o', 'json', '--id', id)).items[0].createdAt;
      expect(listed.map((p) => p.createdAt)).toEqual([fromCrictl]);
      expect(fromCrictl).toMatch(/^\d{19}$/);
      expect(BigInt(fromCrictl)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));
      expect((await runtime.podSandboxStatus({ podSandboxId: id, verbose: false })).status?.createdAt).toBe(fromCrictl);
    } finally {
      await ok('rmp', '-f', id);
    }
  });
});

describe('RunPodSandbox errors, and nothing left behind', () => {
  it('a repeated name and attempt: Unknown, containerd\'s words; the first pod is untouched', async () => {
    const config = podConfig({ linux: { security_context: { namespace_options: { network: 2 } } } });
    const id = (await ok('runp', config)).trim();
    const meta = JSON.parse(readFileSync(config, 'utf8')).metadata;
    const name = `${meta.name}_${meta.namespace}_${meta.uid}_0`;
    const again = await crictl('runp', config);
    expect(again.code).not.toBe(0);
    expect(plain(again.stderr)).toContain(`code = Unknown desc = failed to reserve sandbox name "${name}": name "${name}" is reserved for "${id}"`);
    expect(json(await ok('pods', '-o', 'json')).items.map((p: any) => p.id)).toEqual([id]);
    await ok('rmp', '-f', id);
    // The name is free again.
    await ok('rmp', '-f', (await ok('runp', config)).trim());
  });

  it('an unknown runtime handler: Unknown `no runtime for "x" is configured`, nothing made', async () => {
    const before = hostState();
    const r = await crictl('runp', '--runtime', 'nosuch', podConfig());
    expect(r.code).not.toBe(0);
    expect(plain(r.stderr)).toContain('code = Unknown desc = failed to get sandbox runtime: no runtime for "nosuch" is configured');
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect(hostState()).toEqual(before);
  });

  it('a port mapping portmap refuses fails halfway (after the bridge plugin ran): everything undone', async () => {
    const before = hostState();
    const r = await crictl('runp', podConfig({ port_mappings: [{ protocol: 0, container_port: -1, host_port: 8080 }] }));
    expect(r.code).not.toBe(0);
    expect(plain(r.stderr)).toMatch(/code = \w+ desc = failed to setup network for sandbox "[0-9a-f]{64}": plugin type="portmap" failed \(add\)/);
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(hostState()).toEqual(before);
  });

  it('a handler whose shim is missing fails at the task, the last step: netns, CNI, shm, files, snapshot, record and lease undone', async () => {
    const before = hostState();
    const r = await crictl('runp', '--runtime', 'broken', podConfig({ port_mappings: [{ protocol: 0, container_port: 80, host_port: await freePort() }] }));
    expect(r.code).not.toBe(0);
    expect(plain(r.stderr)).toContain('code = Unknown desc = failed to create containerd task: ');
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    const snapshots = (await bed.berthd.ctr(['-n', 'k8s.io', 'snapshots', 'ls'])).stdout.split('\n').slice(1).filter(Boolean);
    expect(snapshots.every((l) => !/\bActive\b/.test(l))).toBe(true);
    expect(readdirSync(join(bed.berthd.root, 'io.containerd.grpc.v1.cri', 'sandboxes'))).toEqual([]);
    expect(hostState()).toEqual(before);
  });

  it('a sandbox image the registry does not have: NotFound from the pull, nothing made', async () => {
    const other = await TestDaemon.start({ config: bed.config({ sandboxImage: 'registry.k8s.io/pause:nope' }), logLevel: 'info' });
    try {
      const r = await runCrictl(other.address, ['runp', podConfig()]);
      expect(r.code).not.toBe(0);
      expect(plain(r.stderr)).toContain(
        'code = NotFound desc = failed to get sandbox image "registry.k8s.io/pause:nope": failed to pull image "registry.k8s.io/pause:nope": failed to pull and unpack image "registry.k8s.io/pause:nope"',
      );
      expect(json((await runCrictl(other.address, ['pods', '-o', 'json'])).stdout).items).toEqual([]);
    } finally {
      await other.cleanup();
    }
  });
});

describe('a restarted berthd', () => {
  it('still knows its pods from their container records: READY with the same IP, and stops and removes them cleanly', async () => {
    const before = hostState();
    const id = (await ok('runp', podConfig())).trim();
    const first = json(await ok('inspectp', id));
    const ip = first.status.network.ip;
    await bed.berthd.restart();
    const after = json(await ok('inspectp', id));
    expect(after.status).toMatchObject({ id, state: 'SANDBOX_READY', network: { ip }, labels: { app: 'web' } });
    expect(after.info.cniResult).toEqual(first.info.cniResult);
    expect(after.info.cniResult.Interfaces.eth0.IPConfigs[0].IP).toBe(ip);
    await ok('rmp', '-f', id);
    expect(hostState()).toEqual(before);
  });

  it('a pause process that died while berthd was down: NOTREADY after the restart, and stopp and rmp clean up', async () => {
    const before = hostState();
    const id = (await ok('runp', podConfig())).trim();
    const pid: number = json(await ok('inspectp', id)).info.pid;
    await bed.berthd.kill('SIGKILL');
    process.kill(pid, 'SIGKILL');
    await bed.berthd.restart();
    const after = json(await ok('inspectp', id));
    expect(after.status.state).toBe('SANDBOX_NOTREADY');
    await ok('stopp', id);
    await ok('rmp', id);
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(hostState()).toEqual(before);
  });

  it('after kill -9 too: the pod is READY with its IP, its pause process the same', async () => {
    const before = hostState();
    const id = (await ok('runp', podConfig())).trim();
    const first = json(await ok('inspectp', id));
    await bed.berthd.kill('SIGKILL');
    await bed.berthd.restart();
    const after = json(await ok('inspectp', id));
    expect(after.status).toMatchObject({ id, state: 'SANDBOX_READY', network: { ip: first.status.network.ip } });
    expect(after.info.pid).toBe(first.info.pid);
    await ok('rmp', '-f', id);
    expect(hostState()).toEqual(before);
  });
});
