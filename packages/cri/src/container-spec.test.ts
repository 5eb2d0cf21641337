import { CriLogLineSplitter, rfc3339Nano } from './container-io';
import { type ContainerSpecInput, containerCgroupsPath, containerSpec, userString } from './container-spec';
import { containerName, stateOf } from './container-service';
import { loadCri } from './definitions';
import { signalNumber } from './signals';

const ID = 'c'.repeat(64);
const POD = 'p'.repeat(64);
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nweb:x:1000:1000::/home/web:/bin/sh\n';
const GROUP = 'root:x:0:\nweb:x:1000:\naudio:x:29:web\nvideo:x:44:web,other\nnogroup:x:65534:\n';

function input(config: Record<string, unknown> = {}, over: Partial<ContainerSpecInput> = {}, pod: Record<string, unknown> = {}): ContainerSpecInput {
  const cri = loadCri();
  return {
    id: ID,
    config: cri.ContainerConfig.fromPartial({ metadata: { name: 'web', attempt: 0 }, image: { image: 'busybox' }, ...config }),
    sandboxConfig: cri.PodSandboxConfig.fromPartial({ metadata: { name: 'pod', namespace: 'ns', uid: 'u', attempt: 0 }, hostname: 'podhost', ...pod }),
    sandboxId: POD,
    sandboxPid: 42,
    imageName: 'docker.io/library/busybox:latest',
    imageConfig: { Env: ['PATH=/bin', 'IMG=1'], Cmd: ['sh'] },
    readRootfsFile: (p) => (p === '/etc/passwd' ? Buffer.from(PASSWD) : p === '/etc/group' ? Buffer.from(GROUP) : undefined),
    sandboxFiles: { hosts: '/tmp', resolvConf: '/tmp', shm: '/tmp' },
    hostname: 'podhost',
    restrictOomScoreAdj: false,
    privilegedWithoutHostDevices: false,
    capabilities: { current: ['CAP_CHOWN', 'CAP_SYS_ADMIN'], all: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN'] },
    hostDevices: () => [{ path: '/dev/null', type: 'c', major: 1, minor: 3 }],
    lookupMount: (path) => ({ mountPoint: '/', optional: path.startsWith('/shared') ? ['shared:1'] : path.startsWith('/slave') ? ['master:1'] : [] }),
    ...over,
  };
}

describe('a container spec from a CRI config', () => {
  it.each([
    [{}, ['sh']],
    [{ command: ['top'] }, ['top']],
    [{ command: ['sh', '-c'], args: ['echo'] }, ['sh', '-c', 'echo']],
    [{ args: ['-x'] }, ['/entry', '-x']],
  ])('args of %j: %j', (config, want) => {
    const spec = containerSpec(input(config, { imageConfig: { Entrypoint: Object.keys(config).length === 1 && 'args' in config ? ['/entry'] : [], Cmd: ['sh'] } }));
    expect(spec.process.args).toEqual(want);
  });

  it('env in containerd order: PATH, TERM, HOSTNAME, then the image\'s and the config\'s, replacing in place', () => {
    const spec = containerSpec(input({ tty: true, envs: [{ key: 'IMG', value: Buffer.from('2') }, { key: 'X', value: Buffer.from('y') }] }));
    expect(spec.process.env).toEqual(['PATH=/bin', 'TERM=xterm', 'HOSTNAME=podhost', 'IMG=2', 'X=y']);
    expect(spec.process.terminal).toBe(true);
  });

  it.each([
    [{}, { uid: 0, gid: 0, additionalGids: [0] }],
    [{ run_as_user: { value: 1000 } }, { uid: 1000, gid: 1000, additionalGids: [1000, 29, 44] }],
    [{ run_as_username: 'web', run_as_group: { value: 7 } }, { uid: 1000, gid: 7, additionalGids: [7, 29, 44] }],
    [{ run_as_user: { value: 1234 }, supplemental_groups: [5678] }, { uid: 1234, gid: 0, additionalGids: [0, 5678] }],
  ])('user of %j: %j', (sc, want) => {
    const config = loadCri().ContainerConfig.fromPartial({ linux: { securityContext: toCamel(sc) } });
    expect(containerSpec(input(config as never)).process.user).toEqual(want);
  });

  it('refuses a group without a user, as containerd', () => {
    expect(() => userString(loadCri().LinuxContainerSecurityContext.fromPartial({ runAsGroup: { value: 1 } }))).toThrow('user group "1" is specified without user');
  });

  it.each([
    [{ add_capabilities: ['NET_ADMIN'], drop_capabilities: ['CHOWN'] }, (c: string[]) => c.includes('CAP_NET_ADMIN') && !c.includes('CAP_CHOWN')],
    [{ add_capabilities: ['ALL'], drop_capabilities: ['KILL'] }, (c: string[]) => c.join() === 'CAP_CHOWN,CAP_NET_ADMIN,CAP_SYS_ADMIN'],
    [{ drop_capabilities: ['ALL'], add_capabilities: ['KILL'] }, (c: string[]) => c.join() === 'CAP_KILL'],
  ])('capabilities %j', (caps, check) => {
    const spec = containerSpec(input({ linux: { securityContext: { capabilities: toCamel(caps) } } }));
    expect(check(spec.process.capabilities.bounding)).toBe(true);
    expect(spec.process.capabilities.effective).toEqual(spec.process.capabilities.bounding);
  });

  it('privileged: the daemon\'s capabilities, host devices, all devices allowed, no masked paths, no seccomp; refused in an unprivileged pod', () => {
    const priv = { linux: { securityContext: { privileged: true, maskedPaths: ['/proc/kcore'], seccomp: { profileType: 0 } } } };
    const spec = containerSpec(input(priv, {}, { linux: { securityContext: { privileged: true } } }));
    expect(spec.process.capabilities.bounding).toEqual(['CAP_CHOWN', 'CAP_SYS_ADMIN']);
    expect(spec.linux.devices).toEqual([{ path: '/dev/null', type: 'c', major: 1, minor: 3 }]);
    expect(spec.linux.resources.devices).toEqual([{ allow: true, access: 'rwm' }]);
    expect(spec.linux.maskedPaths).toBeUndefined();
    expect(spec.linux.seccomp).toBeUndefined();
    expect(spec.mounts.find((m: any) => m.destination === '/sys').options).toContain('rw');
    expect(() => containerSpec(input(priv))).toThrow('no privileged container allowed in sandbox');
  });

  it('mounts: the sandbox files, the config\'s binds by depth, propagation checked', () => {
    const spec = containerSpec(
      input({
        mounts: [
          { containerPath: '/a/b', hostPath: '/tmp', readonly: true },
          { containerPath: '/a', hostPath: '/tmp', propagation: 0 },
        ],
        linux: { securityContext: { readonlyRootfs: true } },
      }),
    );
    const binds = spec.mounts.filter((m: any) => m.type === 'bind').map((m: any) => [m.destination, m.options.join(',')]);
    expect(binds).toEqual([
      ['/a', 'rbind,rprivate,rw'],
      ['/etc/hosts', 'rbind,rprivate,ro'],
      ['/etc/resolv.conf', 'rbind,rprivate,ro'],
      ['/dev/shm', 'rbind,rprivate,rw'],
      ['/a/b', 'rbind,rprivate,ro'],
    ]);
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    expect(() => containerSpec(input({ mounts: [{ containerPath: '/x', hostPath: '/tmp', propagation: 2 }] }))).toThrow('is mounted on "/" but it is not a shared mount');
    expect(() => containerSpec(input({ mounts: [{ containerPath: '/x', hostPath: '/tmp', propagation: 1 }] }))).toThrow('but it is not a shared or slave mount');
  });

  it.each([
    [{}, ['pid', 'ipc', 'uts', 'mount', 'network']],
    [{ pid: 1 }, ['pid', 'ipc', 'uts', 'mount', 'network']],
    [{ network: 2, pid: 2, ipc: 2 }, ['mount']],
  ])('namespaces for the container options %j: %j', (opts, types) => {
    const spec = containerSpec(input({ linux: { securityContext: { namespaceOptions: opts } } }));
    expect(spec.linux.namespaces.map((n: any) => n.type)).toEqual(types);
    for (const n of spec.linux.namespaces) if (n.path) expect(n.path).toMatch(/^\/proc\/42\/ns\//);
  });

  it('resources, OOM score, cgroups path and annotations', () => {
    const spec = containerSpec(input({ linux: { resources: { cpuPeriod: 100000, cpuQuota: 50000, cpuShares: 512, memoryLimitInBytes: 1 << 26, oomScoreAdj: 300, cpusetCpus: '0' } } }, {}, { linux: { cgroupParent: '/kubepods/pod1' } }));
    expect(spec.linux.resources.cpu).toEqual({ shares: 512, quota: 50000, period: 100000, cpus: '0' });
    expect(spec.linux.resources.memory.limit).toBe(1 << 26);
    expect(spec.process.oomScoreAdj).toBe(300);
    expect(spec.linux.cgroupsPath).toBe(`/kubepods/pod1/${ID}`);
    expect(containerSpec(input()).process.oomScoreAdj).toBeUndefined();
    expect(spec.annotations).toEqual({
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': POD,
      'io.kubernetes.cri.sandbox-namespace': 'ns',
      'io.kubernetes.cri.sandbox-uid': 'u',
      'io.kubernetes.cri.sandbox-name': 'pod',
      'io.kubernetes.cri.container-name': 'web',
      'io.kubernetes.cri.image-name': 'docker.io/library/busybox:latest',
    });
  });

  it.each([
    [undefined, ''],
    [{ profileType: 1 }, ''],
    [{ profileType: 0 }, 'SCMP_ACT_ALLOW'],
  ])('seccomp %j', (seccomp, action) => {
    const spec = containerSpec(input({ linux: { securityContext: { ...(seccomp ? { seccomp } : {}) } } }));
    expect(spec.linux.seccomp?.defaultAction ?? '').toBe(action);
  });

  it.each([
    ['', `/k8s.io/${ID}`],
    ['/kubepods', `/kubepods/${ID}`],
    ['/kubepods.slice', `kubepods.slice:cri-containerd:${ID}`],
  ])('cgroup parent %j: %j', (parent, want) => expect(containerCgroupsPath(parent, ID)).toBe(want));
});

describe('names, states, signals', () => {
  it('names a container as containerd', () => {
    expect(containerName({ name: 'web', attempt: 2 }, { name: 'pod', namespace: 'ns', uid: 'u', attempt: 0 })).toBe('web_pod_ns_u_2');
  });
  it.each([
    [{ createdAt: 1n, startedAt: 0n, finishedAt: 0n, unknown: false }, 0],
    [{ createdAt: 1n, startedAt: 2n, finishedAt: 0n, unknown: false }, 1],
    [{ createdAt: 1n, startedAt: 2n, finishedAt: 3n, unknown: false }, 2],
    [{ createdAt: 1n, startedAt: 2n, finishedAt: 0n, unknown: true }, 3],
  ])('state of %j: %d', (s, want) => expect(stateOf({ pid: 0, exitCode: 0, reason: '', message: '', starting: false, removing: false, ...s })).toBe(want));
  it.each([
    ['SIGTERM', 15],
    ['TERM', 15],
    ['9', 9],
    ['SIGRTMIN+3', 37],
    ['sigquit', 3],
  ])('signal %s is %d', (s, n) => expect(signalNumber(s)).toBe(n));
});

describe('the CRI log format', () => {
  const run = (chunks: string[], max = 16384) => {
    const out: string[] = [];
    const s = new CriLogLineSplitter('stdout', (b) => out.push(b.toString()), max);
    for (const c of chunks) s.write(Buffer.from(c));
    s.end();
    return out.map((l) => l.replace(/^\S+ /, ''));
  };
  it.each([
    [['hello\n'], ['stdout F hello\n']],
    [['hel', 'lo\nwor', 'ld\r\n'], ['stdout F hello\n', 'stdout F world\n']],
    [['no newline'], ['stdout P no newline\n']],
    [['\n'], ['stdout F \n']],
  ])('%j gives %j', (chunks, want) => expect(run(chunks)).toEqual(want));
  it('splits long lines into P records ended by F', () => {
    expect(run(['abcdefg\n'], 3)).toEqual(['stdout P abc\n', 'stdout P def\n', 'stdout F g\n']);
  });
  it('times in RFC 3339 with nanoseconds, trailing zeros trimmed', () => {
    expect(rfc3339Nano(1_700_000_000_123_456_789n)).toBe('2023-11-14T22:13:20.123456789Z');
    expect(rfc3339Nano(1_700_000_000_120_000_000n)).toBe('2023-11-14T22:13:20.12Z');
    expect(rfc3339Nano(1_700_000_000_000_000_000n)).toBe('2023-11-14T22:13:20Z');
  });
});

function toCamel(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()), x]));
}
