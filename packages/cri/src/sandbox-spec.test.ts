import { loadCri } from './definitions';
import { fromGoJson, toGoJson } from './go-json';
import { namespaceModes, resolvConf, sandboxName } from './sandbox-service';
import { type SandboxSpecInput, sandboxCgroupsPath, sandboxSpec } from './sandbox-spec';

const ID = 'a'.repeat(64);

function input(over: Partial<SandboxSpecInput> = {}): SandboxSpecInput {
  return {
    id: ID,
    imageConfig: { Entrypoint: ['/catatonit'], Cmd: ['-P'] },
    hostname: 'web',
    netnsPath: '/var/run/netns/cni-1',
    namespaces: { network: 'POD', pid: 'POD', ipc: 'POD' },
    cgroupsPath: `/k8s.io/${ID}`,
    sysctls: {},
    shmPath: '/run/berth/sandboxes/x/shm',
    resolvConfPath: '/var/lib/berth/sandboxes/x/resolv.conf',
    annotations: {},
    ...over,
  };
}

describe('the pause container spec', () => {
  it.each([
    ['', `/k8s.io/${ID}`],
    ['/kubepods/besteffort/pod1', `/kubepods/besteffort/pod1/${ID}`],
    ['/kubepods/', `/kubepods/${ID}`],
    ['/kubepods.slice/kubepods-besteffort.slice', `kubepods-besteffort.slice:cri-containerd:${ID}`],
  ])('cgroup parent %j gives cgroupsPath %j', (parent, want) => {
    expect(sandboxCgroupsPath(parent, ID)).toBe(want);
  });

  it.each([
    [{ network: 'POD', pid: 'POD', ipc: 'POD' }, ['ipc', 'mount', 'network', 'pid', 'uts'], true],
    [{ network: 'NODE', pid: 'POD', ipc: 'POD' }, ['ipc', 'mount', 'pid'], false],
    [{ network: 'POD', pid: 'NODE', ipc: 'NODE' }, ['mount', 'network', 'uts'], true],
    [{ network: 'NODE', pid: 'NODE', ipc: 'NODE' }, ['mount'], false],
  ] as const)('namespaces %j: %j, hostname set: %s', (modes, types, hostname) => {
    const spec = sandboxSpec(input({ namespaces: modes, netnsPath: modes.network === 'NODE' ? '' : '/var/run/netns/cni-1' })) as any;
    expect(spec.linux.namespaces.map((n: any) => n.type).sort()).toEqual(types);
    expect('hostname' in spec).toBe(hostname);
    if (modes.network !== 'NODE') expect(spec.linux.namespaces.find((n: any) => n.type === 'network').path).toBe('/var/run/netns/cni-1');
  });

  it('has a read-only rootfs, the image entrypoint and cmd, OOM score -998, CPU shares 2, sysctls and the read-only binds', () => {
    const spec = sandboxSpec(input({ sysctls: { 'kernel.shm_rmid_forced': '1' } })) as any;
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    expect(spec.process.args).toEqual(['/catatonit', '-P']);
    expect(spec.process.oomScoreAdj).toBe(-998);
    expect(spec.linux.resources.cpu).toEqual({ shares: 2 });
    expect(spec.linux.sysctl).toEqual({ 'kernel.shm_rmid_forced': '1' });
    expect(spec.mounts.filter((m: any) => m.type === 'bind')).toEqual([
      { destination: '/dev/shm', type: 'bind', source: '/run/berth/sandboxes/x/shm', options: ['rbind', 'ro'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: '/var/lib/berth/sandboxes/x/resolv.conf', options: ['rbind', 'ro'] },
    ]);
  });
});

describe('sandbox helpers', () => {
  it('names a sandbox name_namespace_uid_attempt', () => {
    expect(sandboxName({ name: 'web', namespace: 'default', uid: 'u1', attempt: 2 })).toBe('web_default_u1_2');
  });

  it('writes resolv.conf from DNSConfig as containerd does', () => {
    expect(resolvConf({ servers: ['10.10.10.10', '1.1.1.1'], searches: ['a.com', 'b.com'], options: ['ndots:8'] })).toBe(
      'search a.com b.com\nnameserver 10.10.10.10\nnameserver 1.1.1.1\noptions ndots:8\n',
    );
    expect(resolvConf({ servers: ['10.0.0.1'], searches: [], options: [] })).toBe('nameserver 10.0.0.1\n');
  });

  it('reads namespace modes, POD when absent', () => {
    const cri = loadCri();
    expect(namespaceModes(cri.PodSandboxConfig.fromPartial({}))).toEqual({ network: 'POD', pid: 'POD', ipc: 'POD' });
    expect(namespaceModes(cri.PodSandboxConfig.fromPartial({ linux: { securityContext: { namespaceOptions: { network: 2, pid: 1, ipc: 2 } } } }))).toEqual({
      network: 'NODE',
      pid: 'CONTAINER',
      ipc: 'NODE',
    });
  });

  it("keeps a pod config in Go's JSON names (snake_case, omitempty, map keys untouched) and reads it back", () => {
    const cri = loadCri();
    const config = cri.PodSandboxConfig.fromPartial({
      metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 1 },
      logDirectory: '/var/log/pods/x',
      dnsConfig: { servers: ['10.10.10.10'], searches: [], options: ['ndots:8'] },
      portMappings: [{ protocol: 0, containerPort: 80, hostPort: 8080, hostIp: '127.0.0.1' }],
      labels: { 'app.kubernetes.io/name': 'web', camelCase: 'x' },
      annotations: { some_key: 'v' },
      linux: { cgroupParent: '/kubepods', sysctls: { 'net.ipv4.ip_forward': '1' }, securityContext: { namespaceOptions: { network: 2 } } },
    });
    const go = toGoJson(config);
    expect(go).toEqual({
      metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 1 },
      log_directory: '/var/log/pods/x',
      dns_config: { servers: ['10.10.10.10'], options: ['ndots:8'] },
      port_mappings: [{ container_port: 80, host_port: 8080, host_ip: '127.0.0.1' }],
      labels: { 'app.kubernetes.io/name': 'web', camelCase: 'x' },
      annotations: { some_key: 'v' },
      linux: { cgroup_parent: '/kubepods', sysctls: { 'net.ipv4.ip_forward': '1' }, security_context: { namespace_options: { network: 2 } } },
    });
    expect(cri.PodSandboxConfig.fromPartial(fromGoJson(JSON.parse(JSON.stringify(go))) as object)).toEqual(config);
  });
});
