import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { rejectionOf } from '@berth/testing';
import { CniPluginError } from './invoke';
import { join } from 'node:path';
import { createNetns, isNetns, removeNetns } from './netns';
import { TestNetwork, bridgePorts, fetchTcp, hostLinks, hostVeths, hostportChainsExist, iptablesOf, portmapRulesOf, removeUnusedHostportChains } from './test-helpers';

jest.setTimeout(120_000);

/** Real bridge, host-local and portmap plugins from /usr/lib/cni on a private bridge and subnet. */
describe('pods on a bridge network with host-local and portmap', () => {
  let net: TestNetwork;
  let chainsBefore: boolean;

  beforeAll(() => (chainsBefore = hostportChainsExist()));
  afterAll(() => {
    if (!chainsBefore) removeUnusedHostportChains();
  });
  // A network of its own per test, so that one failing leaves nothing in the next one's way.
  beforeEach(() => (net = new TestNetwork()));
  afterEach(() => net.cleanup());

  it('gives three pods distinct addresses that the host reaches, forwards a host port on 127.0.0.1, and tears down leaving nothing', async () => {
    const iptablesBefore = iptablesOf(net);
    const plugin = net.plugin();
    const pods = ['pod-a', 'pod-b', 'pod-c'];
    const netns: Record<string, string> = {};
    const ips: Record<string, string> = {};
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    for (const id of pods) netns[id] = await createNetns({ root: net.netnsRoot });
    // All three at once, as a kubelet starts pods: host-local's lock keeps the addresses apart.
    const results = await Promise.all(
      pods.map((id, i) =>
        plugin.setup(id, netns[id], {
          pod: { namespace: 'default', name: id, uid: `uid-${id}` },
          portMappings: i === 0 ? [{ hostPort, containerPort: 8080, protocol: 'TCP', hostIP: '127.0.0.1' }, { hostPort: 0, containerPort: 9 }] : [],
        }),
      ),
    );
    for (const [i, id] of pods.entries()) {
      const res = results[i];
      ips[id] = res.ip;
      expect(res.ip.startsWith(`${net.subnet}.`)).toBe(true);
      expect(res.additionalIps).toEqual([]);
      expect(res.interfaces.eth0).toMatchObject({ sandbox: netns[id], ipConfigs: [{ ip: res.ip, gateway: `${net.subnet}.1` }] });
      expect(res.interfaces.lo.ipConfigs.map((c) => c.ip)).toContain('127.0.0.1');
      // No default route out: the pod only reaches its own subnet.
      expect(res.routes).toEqual([]);
    }
    expect(new Set(Object.values(ips)).size).toBe(3);
    expect(net.allocations().sort()).toEqual(Object.values(ips).sort());
    expect(hostLinks()).toContain(net.bridge);

    // The host reaches a listener in each pod by its address (the bridge is their gateway).
    for (const id of pods) await net.listen(netns[id], 8080, `hello from ${id}\n`);
    for (const id of pods) expect(await fetchTcp(ips[id], 8080)).toBe(`hello from ${id}\n`);
    // portmap: 127.0.0.1:hostPort reaches pod-a's 8080 (portmap turns on route_localnet and masquerades).
    expect(await fetchTcp('127.0.0.1', hostPort)).toBe('hello from pod-a\n');
    const portmap = portmapRulesOf(net.name);
    expect(portmap.rules.length).toBeGreaterThan(0);
    expect(portmap.chains.length).toBe(1);

    // One result per (network, container, interface), in libcni's layout, for DEL after a restart.
    expect(readdirSync(join(net.cacheDir, 'results')).sort()).toEqual(pods.flatMap((id) => [`${net.name}-${id}-eth0`, `cni-loopback-${id}-lo`]).sort());
    const entry = JSON.parse(readFileSync(join(net.cacheDir, 'results', `${net.name}-pod-a-eth0`), 'utf8'));
    expect(entry).toMatchObject({ kind: 'cniCacheV1', containerId: 'pod-a', ifName: 'eth0', networkName: net.name, capabilityArgs: { portMappings: [{ HostPort: hostPort, ContainerPort: 8080, Protocol: 'tcp', HostIP: '127.0.0.1' }] } });
    expect(entry.cniArgs).toContainEqual(['K8S_POD_NAME', 'pod-a']);


    // Teardown with a fresh instance, as after a restart of the caller: only the cache tells
    // it the port mappings and results.
    const restarted = net.plugin();
    for (const id of pods) {
      await restarted.teardown(id, netns[id]);
      await removeNetns(netns[id]);
    }
    expect(net.allocations()).toEqual([]);
    expect(readdirSync(join(net.cacheDir, 'results'))).toEqual([]);
    expect(portmapRulesOf(net.name).rules).toEqual([]);
    // In every table, what is new since before the pods is only portmap's shared chains and
    // the jumps to them (they stay, as with containerd); the pod's own chain is gone.
    const iptablesAfter = iptablesOf(net);
    const everything = execFileSync('iptables-save', { encoding: 'utf8' });
    for (const c of portmap.chains) expect(everything.includes(c)).toBe(false);
    expect(iptablesAfter.filter((l) => !iptablesBefore.includes(l) && !/CNI-HOSTPORT-(DNAT|SETMARK|MASQ)\b/.test(l))).toEqual([]);
    expect(iptablesAfter.filter((l) => !iptablesBefore.includes(l)).length).toBeLessThanOrEqual(8);
    // The veths went with the namespaces; only the bridge stays (the bridge plugin never removes it).
    const veths = results.flatMap(hostVeths);
    expect(veths).toHaveLength(3);
    expect(hostLinks().filter((l) => veths.includes(l))).toEqual([]);
    expect(bridgePorts(net.bridge)).toEqual([]);
    expect(hostLinks()).toContain(net.bridge);
    expect(readdirSync(net.netnsRoot)).toEqual([]);
    await expect(fetchTcp('127.0.0.1', hostPort, 3000)).rejects.toThrow();
  });

  it('tears down twice, and after the namespace is gone, without error and without leaks', async () => {
    const plugin = net.plugin();
    const a = await createNetns({ root: net.netnsRoot });
    const b = await createNetns({ root: net.netnsRoot });
    const ra = await plugin.setup('twice', a, { portMappings: [{ hostPort: 20000 + Math.floor(Math.random() * 20000), containerPort: 80 }] });
    const rb = await plugin.setup('gone', b);
    expect(net.allocations().sort()).toEqual([ra.ip, rb.ip].sort());

    await plugin.teardown('twice', a);
    await plugin.teardown('twice', a);
    await removeNetns(a);
    await plugin.teardown('twice', a);

    // The namespace disappears before DEL (a crash, a reboot): DEL runs with CNI_NETNS="".
    await removeNetns(b);
    expect(isNetns(b)).toBe(false);
    await plugin.teardown('gone', b);
    await plugin.teardown('gone', b);

    expect(net.allocations()).toEqual([]);
    expect(portmapRulesOf(net.name).rules).toEqual([]);
    // No veth is left on the bridge.
    expect(bridgePorts(net.bridge)).toEqual([]);
  });

  it("sees a network's own rules and ports only: another network's pod with a host port meanwhile changes nothing of them", async () => {
    const mine = { iptables: iptablesOf(net), ports: bridgePorts(net.bridge) };
    const other = new TestNetwork();
    try {
      const ns = await createNetns({ root: other.netnsRoot });
      await other.plugin().setup('beside', ns, { portMappings: [{ hostPort: 20000 + Math.floor(Math.random() * 20000), containerPort: 80 }] });
      expect(portmapRulesOf(other.name).rules.length).toBeGreaterThan(0);
      expect(bridgePorts(other.bridge)).toHaveLength(1);
      // The other network's own view has its rules and chains.
      expect(iptablesOf(other).some((l) => l.startsWith(`:${portmapRulesOf(other.name).chains[0]} `))).toBe(true);
      expect({ iptables: iptablesOf(net), ports: bridgePorts(net.bridge) }).toEqual(mine);
      await other.plugin().teardown('beside', ns);
      await removeNetns(ns);
    } finally {
      await other.cleanup();
    }
  });
  it('checks a pod, then tears down from the cache what ADD did after the configuration is gone (the network not ready)', async () => {
    const plugin = net.plugin();
    const ns = await createNetns({ root: net.netnsRoot });
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const res = await plugin.setup('orphan', ns, { portMappings: [{ hostPort, containerPort: 80 }] });
    expect(net.allocations()).toEqual([res.ip]);
    expect(portmapRulesOf(net.name).rules.length).toBeGreaterThan(0);
    // CHECK agrees with what ADD cached, and the real plugins notice when the pod lost its
    // address. (Alone on its bridge: bridge 1.1's CHECK compares the bridge's MAC as ADD saw it,
    // and a Linux bridge takes its lowest port MAC, so more pods joining can fail it; containerd
    // never runs CHECK.)
    await plugin.check('orphan', ns);
    execFileSync('nsenter', [`--net=${ns}`, 'ip', 'addr', 'flush', 'dev', 'eth0']);
    const checkErr = await rejectionOf(plugin.check('orphan', ns));
    expect(checkErr).toBeInstanceOf(CniPluginError);
    expect(checkErr.message).toMatch(/^plugin type="bridge" failed \(check\): /);
    const file = join(net.confDir, '10-test.conflist');
    const saved = readFileSync(file, 'utf8');
    rmSync(file);
    try {
      expect(plugin.status().ready).toBe(false);
      await net.plugin().teardown('orphan', ns);
    } finally {
      writeFileSync(file, saved);
    }
    await removeNetns(ns);
    expect(net.allocations()).toEqual([]);
    expect(portmapRulesOf(net.name).rules).toEqual([]);
    expect(readdirSync(`/sys/class/net/${net.bridge}/brif`)).toEqual([]);
  });
});
