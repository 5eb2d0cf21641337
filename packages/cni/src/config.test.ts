import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isFailedPrecondition, isInvalidArgument, isNotFound } from '@berth/errdefs';
import { rejectionOf, tempDir } from '@berth/testing';
import { CniNetworkPlugin, capabilityArgs, cniArgs, pluginStdin } from './cni';
import { LOOPBACK_NETWORK, goJson, loadNetworks } from './config';
import { mergeResults, parseResult } from './result';

const bridge = (name: string, version = '1.0.0') => ({ cniVersion: version, name, type: 'bridge', bridge: 'br-x', ipam: { type: 'host-local', subnet: '10.99.1.0/24' } });
const list = (name: string, version = '1.0.0') => ({ cniVersion: version, name, plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] });

describe('loading network configurations as go-cni does', () => {
  let dir: ReturnType<typeof tempDir>;
  const write = (file: string, v: unknown) => writeFileSync(join(dir.path, file), typeof v === 'string' ? v : JSON.stringify(v));
  beforeEach(() => (dir = tempDir('berth-cni-conf-')));
  afterEach(() => dir.remove());

  it('puts loopback first, then the first .conf/.conflist/.json by name as eth0, and ignores other files', () => {
    write('30-c.conflist', list('c'));
    write('20-b.conf', bridge('b'));
    write('10-a.conf.bak', bridge('a'));
    write('00-notes.txt', 'hello');
    mkdirSync(join(dir.path, '05-dir.conf'));
    const nets = loadNetworks({ confDir: dir.path });
    expect(nets.map((n) => [n.config.name, n.ifName])).toEqual([
      ['cni-loopback', 'lo'],
      ['b', 'eth0'],
    ]);
    expect(nets[0].config).toBe(LOOPBACK_NETWORK);
    expect(LOOPBACK_NETWORK).toMatchObject({ cniVersion: '0.3.1', plugins: [{ type: 'loopback' }] });
    // A .conf is a one-plugin list with the list's name and version.
    expect(nets[1].config).toEqual({
      name: 'b',
      cniVersion: '1.0.0',
      disableCheck: false,
      plugins: [bridge('b')],
      source: join(dir.path, '20-b.conf'),
      // libcni's generated list: compact, keys sorted.
      text: '{"cniVersion":"1.0.0","name":"b","plugins":[{"bridge":"br-x","cniVersion":"1.0.0","ipam":{"subnet":"10.99.1.0/24","type":"host-local"},"name":"b","type":"bridge"}]}',
    });
  });

  it('loads up to maxConfNum files, or all with 0, as eth0, eth1, ...', () => {
    write('1.conflist', list('one'));
    write('2.json', bridge('two', '0.4.0'));
    write('3.conf', bridge('three', '0.3.1'));
    expect(loadNetworks({ confDir: dir.path, maxConfNum: 2 }).map((n) => `${n.config.name}@${n.ifName}`)).toEqual(['cni-loopback@lo', 'one@eth0', 'two@eth1']);
    expect(loadNetworks({ confDir: dir.path, maxConfNum: 0, loopback: false }).map((n) => `${n.config.name}@${n.ifName}`)).toEqual(['one@eth0', 'two@eth1', 'three@eth2']);
  });

  it.each([
    ['10-x.conflist', '{"name": "x", ', /Unexpected end of JSON input|JSON/],
    ['10-x.conflist', { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }, /no network name/],
    ['10-x.conflist', { cniVersion: '1.0.0', name: 'bad name', plugins: [{ type: 'bridge' }] }, /network name "bad name" must be/],
    ['10-x.conflist', { cniVersion: '9.9.9', name: 'x', plugins: [{ type: 'bridge' }] }, /unsupported cniVersion "9.9.9"/],
    ['10-x.conflist', { name: 'x', plugins: [{ type: 'bridge' }] }, /no cniVersion/],
    ['10-x.conflist', { cniVersion: '1.0.0', name: 'x' }, /no 'plugins' list/],
    ['10-x.conflist', { cniVersion: '1.0.0', name: 'x', plugins: [] }, /the plugins list is empty/],
    ['10-x.conflist', { cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'bridge' }, { mtu: 1 }] }, /plugin 1 has no plugin type/],
    ['10-x.conflist', { cniVersion: '1.0.0', name: 'x', plugins: [{ type: '../bin/sh' }] }, /must be a file name/],
    ['10-x.conf', list('x'), /network type not found \(a plugins list belongs in a \.conflist file\)/],
    ['10-x.json', [1, 2], /not a JSON object/],
  ])('fails the load on a broken %s, naming the file (%#)', (file, content, message) => {
    write(file, content);
    write('20-good.conflist', list('good'));
    let err: Error | undefined;
    try {
      loadNetworks({ confDir: dir.path });
    } catch (e) {
      err = e as Error;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect(err!.message).toContain(`invalid CNI network configuration ${join(dir.path, file)}: `);
    expect(err!.message).toMatch(message);
  });

  it("writes generated JSON as Go's encoding/json: compact, sorted keys, <, > and & escaped", () => {
    expect(goJson({ b: '<&>', a: [{ d: 1, c: [true, null] }] })).toBe('{"a":[{"c":[true,null],"d":1}],"b":"\\u003c\\u0026\\u003e"}');
  });

  it('reports an empty or missing directory as NotFound', () => {
    expect(() => loadNetworks({ confDir: join(dir.path, 'missing') })).toThrow(`no network config found in ${join(dir.path, 'missing')}: not found`);
    expect(isNotFound(rejectionOfSync(() => loadNetworks({ confDir: dir.path })))).toBe(true);
  });

  it('is not ready with containerd reason and message until a file appears, and follows the directory as it changes', async () => {
    const confDir = join(dir.path, 'net.d');
    const cni = new CniNetworkPlugin({ binDir: '/usr/lib/cni', confDir, cacheDir: join(dir.path, 'cache') });
    const notReady = { ready: false, reason: 'NetworkPluginNotReady', message: 'Network plugin returns error: cni plugin not initialized' };
    // As with go-cni, a failed load leaves loopback alone, which is one network short.
    expect(cni.status()).toMatchObject({
      ...notReady,
      networks: [LOOPBACK_NETWORK],
      lastLoadError: `no network config found in ${confDir}: not found`,
      lastLoadStatus: `cni config load failed: no network config found in ${confDir}: cni plugin not initialized: failed to load cni config`,
    });
    const err = await rejectionOf(cni.setup('pod', '/proc/self/ns/net'));
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toBe(`cni plugin not initialized: no network config found in ${confDir}: not found`);

    mkdirSync(confDir);
    writeFileSync(join(confDir, '10-a.conflist'), JSON.stringify(list('a')));
    expect(cni.status()).toMatchObject({ ready: true, reason: '', message: '', lastLoadError: '', lastLoadStatus: 'OK' });
    expect(cni.status().networks.map((n) => n.name)).toEqual(['cni-loopback', 'a']);

    // A file sorting first takes over; a broken one makes the network not ready, naming it.
    writeFileSync(join(confDir, '05-b.conf'), JSON.stringify(bridge('b')));
    expect(cni.status().networks.map((n) => n.name)).toEqual(['cni-loopback', 'b']);
    writeFileSync(join(confDir, '05-b.conf'), '{');
    expect(cni.status()).toMatchObject({
      ...notReady,
      lastLoadError: expect.stringContaining(`invalid CNI network configuration ${join(confDir, '05-b.conf')}: `),
      lastLoadStatus: expect.stringMatching(new RegExp(`^cni config load failed: failed to load CNI config file ${join(confDir, '05-b.conf')}: .*: invalid cni config: failed to load cni config$`)),
    });
    writeFileSync(join(confDir, '05-b.conf'), JSON.stringify(list('b')));
    expect(cni.status().lastLoadStatus).toBe(`cni config load failed: network type not found in ${join(confDir, '05-b.conf')}: invalid cni config: failed to load cni config`);
    writeFileSync(join(confDir, '04-b.conflist'), JSON.stringify({ ...list('b'), plugins: [] }));
    expect(cni.status().lastLoadStatus).toBe(`cni config load failed: CNI config list in config file ${join(confDir, '04-b.conflist')} has no networks, skipping: invalid cni config: failed to load cni config`);
    rmSync(join(confDir, '04-b.conflist'));
    rmSync(join(confDir, '05-b.conf'));
    expect(cni.status()).toMatchObject({ ready: true, networks: [expect.anything(), expect.objectContaining({ name: 'a' })] });

    // containerd's verbose `cniconfig` is go-cni's GetConfig.
    expect(cni.cniConfig()).toEqual({
      PluginDirs: ['/usr/lib/cni'],
      PluginConfDir: confDir,
      PluginMaxConfNum: 1,
      Prefix: 'eth',
      Networks: [
        {
          Config: {
            Name: 'cni-loopback',
            CNIVersion: '0.3.1',
            Plugins: [{ Network: { type: 'loopback', ipam: {}, dns: {} }, Source: '{"type":"loopback"}' }],
            Source: '{\n"cniVersion": "0.3.1",\n"name": "cni-loopback",\n"plugins": [{\n  "type": "loopback"\n}]\n}',
          },
          IFName: 'lo',
        },
        {
          Config: {
            Name: 'a',
            CNIVersion: '1.0.0',
            Plugins: [
              { Network: { type: 'bridge', ipam: {}, dns: {} }, Source: '{"type":"bridge"}' },
              { Network: { type: 'portmap', capabilities: { portMappings: true }, ipam: {}, dns: {} }, Source: '{"capabilities":{"portMappings":true},"type":"portmap"}' },
            ],
            Source: JSON.stringify(list('a')),
          },
          IFName: 'eth0',
        },
      ],
    });

    // Without loopback one network is enough.
    expect(new CniNetworkPlugin({ confDir, loopback: false }).status().ready).toBe(true);
  });
});

function rejectionOfSync(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('what a plugin is given', () => {
  const net = { name: 'pods', cniVersion: '1.0.0', disableCheck: false, plugins: [], source: '' };

  it('gets its own keys, the list name and version, prevResult, and runtimeConfig with only the capabilities it declares', () => {
    const caps = capabilityArgs({ portMappings: [{ hostPort: 8080, containerPort: 80 }], dns: { servers: ['10.0.0.10'] }, podAnnotations: { a: 'b' } });
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.99.1.2/24' }] };
    expect(pluginStdin(net, { type: 'portmap', name: 'ignored', capabilities: { portMappings: true, bandwidth: true, dns: false } }, prev, caps)).toEqual({
      type: 'portmap',
      name: 'pods',
      cniVersion: '1.0.0',
      capabilities: { portMappings: true, bandwidth: true, dns: false },
      prevResult: { ...prev, dns: {} },
      runtimeConfig: { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }] },
    });
    expect(pluginStdin(net, { type: 'bridge' }, undefined, caps)).toEqual({ type: 'bridge', name: 'pods', cniVersion: '1.0.0' });
    expect(pluginStdin(net, { type: 'x', capabilities: { 'io.kubernetes.cri.pod-annotations': true } }, undefined, caps).runtimeConfig).toEqual({ 'io.kubernetes.cri.pod-annotations': { a: 'b' } });
  });

  it('keeps port mappings with a host port only, protocols lowercased, keys spelled as containerd sends them', () => {
    expect(
      capabilityArgs({
        portMappings: [
          { hostPort: 0, containerPort: 1 },
          { hostPort: -1, containerPort: 2 },
          { hostPort: 53, containerPort: 53, protocol: 'UDP', hostIP: '127.0.0.1' },
        ],
        bandwidth: { ingressRate: 1000, ingressBurst: 2000 },
      }),
    ).toEqual({
      'io.kubernetes.cri.pod-annotations': {},
      portMappings: [{ HostPort: 53, ContainerPort: 53, Protocol: 'udp', HostIP: '127.0.0.1' }],
      bandwidth: { IngressRate: 1000, IngressBurst: 2000, EgressRate: 0, EgressBurst: 0 },
    });
    expect(capabilityArgs({ portMappings: [{ hostPort: 0, containerPort: 1 }] })).toEqual({ 'io.kubernetes.cri.pod-annotations': {} });
  });

  it('gets CNI_ARGS with IgnoreUnknown=1 and the K8S_POD_* values, and refuses pairs that would not parse', () => {
    expect(cniArgs('sb1', { pod: { namespace: 'ns', name: 'web', uid: 'u-1' }, args: [['X', 'y']] })).toEqual([
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', 'ns'],
      ['K8S_POD_NAME', 'web'],
      ['K8S_POD_INFRA_CONTAINER_ID', 'sb1'],
      ['K8S_POD_UID', 'u-1'],
      ['X', 'y'],
    ]);
    for (const pair of [['a;b', 'c'], ['a=b', 'c'], ['', 'c'], ['a', 'b;c']] as [string, string][]) expect(() => cniArgs('sb1', { args: [pair] })).toThrow(/CNI_ARGS pair/);
    expect(() => cniArgs('sb1', { pod: { namespace: 'n;s', name: 'a', uid: 'b' } })).toThrow(/CNI_ARGS pair/);
  });
});

describe('results', () => {
  it('picks the first IPv4 on eth0 as the pod IP and the rest as additional, attributing addresses without an interface to their network', () => {
    const merged = mergeResults(
      [
        { networkName: 'cni-loopback', ifName: 'lo', result: { cniVersion: '0.3.1', interfaces: [{ name: 'lo', sandbox: '/ns' }], ips: [{ address: '127.0.0.1/8', interface: 0 }] } },
        {
          networkName: 'pods',
          ifName: 'eth0',
          result: {
            cniVersion: '1.0.0',
            interfaces: [{ name: 'br0' }, { name: 'eth0', sandbox: '/ns', mac: 'aa:bb' }],
            ips: [
              { address: 'fd00::2/64', interface: 1 },
              { address: '10.99.1.2/24', gateway: '10.99.1.1', interface: 1 },
              { address: '10.99.1.3/24' },
            ],
          },
        },
      ],
      'eth0',
    );
    expect(merged.ip).toBe('10.99.1.2');
    expect(merged.additionalIps).toEqual(['fd00::2', '10.99.1.3']);
    expect(merged.interfaces.eth0).toEqual({ mac: 'aa:bb', sandbox: '/ns', ipConfigs: [{ ip: 'fd00::2' }, { ip: '10.99.1.2', gateway: '10.99.1.1' }, { ip: '10.99.1.3' }] });
    expect(merged.interfaces.br0.ipConfigs).toEqual([]);
    expect(Object.keys(merged.results)).toEqual(['cni-loopback', 'pods']);
  });

  it.each([
    ['ipv4', '10.0.0.2', ['fd00::1', 'fd00::2', '10.0.0.3']],
    ['ipv6', 'fd00::1', ['fd00::2', '10.0.0.2', '10.0.0.3']],
    ['cni', 'fd00::1', ['fd00::2', '10.0.0.2', '10.0.0.3']],
  ] as const)('picks the pod IP by ip_pref %s', (pref, ip, additional) => {
    const result = { cniVersion: '1.0.0', ips: ['fd00::1/64', 'fd00::2/64', '10.0.0.2/24', '10.0.0.3/24'].map((address) => ({ address })) };
    expect(mergeResults([{ networkName: 'n', ifName: 'eth0', result }], 'eth0', pref)).toMatchObject({ ip, additionalIps: additional });
    const v4only = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.9/24' }] };
    expect(mergeResults([{ networkName: 'n', ifName: 'eth0', result: v4only }], 'eth0', pref)).toMatchObject({ ip: '10.0.0.9', additionalIps: [] });
  });

  it('reads 0.2.0 results (ip4/ip6) and refuses what is not a result', () => {
    expect(parseResult({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.5/24', gateway: '10.0.0.1', routes: [{ dst: '0.0.0.0/0' }] }, dns: {} })).toEqual({
      cniVersion: '0.2.0',
      ips: [{ address: '10.0.0.5/24', gateway: '10.0.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: {},
    });
    expect(() => parseResult([])).toThrow('not a JSON object');
    expect(() => parseResult({ ips: [] })).toThrow('no cniVersion');
  });
});
