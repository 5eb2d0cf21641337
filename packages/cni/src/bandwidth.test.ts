import { execFileSync } from 'node:child_process';
import { isInvalidArgument } from '@berth/errdefs';
import { bandwidthFromAnnotations, parseQuantity } from './bandwidth';
import { createNetns, removeNetns } from './netns';
import { TestNetwork, bridgePorts, hostLinks, hostVeths } from './test-helpers';

jest.setTimeout(120_000);

describe('bandwidth annotations', () => {
  it.each([
    ['10M', 10_000_000],
    ['1.5k', 1500],
    ['1Mi', 1_048_576],
    ['2e6', 2_000_000],
    ['1.1k', 1100],
    ['1500m', 2],
    ['.5G', 500_000_000],
  ])('reads the quantity %s as %d', (s, n) => expect(parseQuantity(s)).toBe(n));

  it('gives rates in bits per second with the largest burst, as containerd', () => {
    expect(bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1Mi', other: 'x' })).toEqual({
      ingressRate: 10_000_000,
      ingressBurst: 4294967295,
      egressRate: 1_048_576,
      egressBurst: 4294967295,
    });
    expect(bandwidthFromAnnotations({ 'kubernetes.io/egress-bandwidth': '1k' })).toEqual({ egressRate: 1000, egressBurst: 4294967295 });
    expect(bandwidthFromAnnotations({ a: 'b' })).toBeUndefined();
    expect(bandwidthFromAnnotations(undefined)).toBeUndefined();
  });

  it.each([
    ['10 M', /quantities must match/],
    ['ten', /quantities must match/],
    ['10K', /quantities must match/],
    ['999', /unreasonably small \(< 1kbit\)/],
    ['2P', /unreasonably large \(> 1Pbit\)/],
  ])('refuses %s', (v, message) => {
    let err: unknown;
    try {
      bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': v });
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toMatch(/^reading pod bandwidth annotations: kubernetes\.io\/ingress-bandwidth: /);
    expect((err as Error).message).toMatch(message);
  });
});

describe('the real bandwidth plugin, given the capability', () => {
  let net: TestNetwork;
  beforeAll(() => (net = new TestNetwork((p) => [p.bridgePlugin, { type: 'bandwidth', capabilities: { bandwidth: true } }])));
  afterAll(async () => {
    // The bandwidth plugin's ifb device is named after the container; remove any left by a failure.
    for (const l of hostLinks()) if (l.startsWith('bwp') && ifbs.includes(l)) execFileSync('ip', ['link', 'delete', l]);
    await net.cleanup();
  });
  const ifbs: string[] = [];

  it('shapes the pod with a tbf qdisc and an ifb device, and DEL takes both away', async () => {
    const linksBefore = hostLinks();
    const ns = await createNetns({ root: net.netnsRoot });
    const plugin = net.plugin();
    const res = await plugin.setup('shaped', ns, { bandwidth: bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '20M' }) });
    const [hostVeth] = hostVeths(res);
    ifbs.push(...hostLinks().filter((l) => !linksBefore.includes(l) && l.startsWith('bwp')));
    expect(ifbs.length).toBe(1);
    // Ingress to the pod is shaped on the host veth; egress is redirected through the ifb device.
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', hostVeth], { encoding: 'utf8' })).toMatch(/qdisc tbf .*rate 10Mbit/);
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', ifbs[0]], { encoding: 'utf8' })).toMatch(/qdisc tbf .*rate 20Mbit/);

    await plugin.teardown('shaped', ns);
    await removeNetns(ns);
    // The host veth and the ifb device went; the bridge has no port left.
    expect(hostLinks().filter((l) => l === hostVeth || ifbs.includes(l))).toEqual([]);
    expect(bridgePorts(net.bridge)).toEqual([]);
    expect(net.allocations()).toEqual([]);
  });
});
