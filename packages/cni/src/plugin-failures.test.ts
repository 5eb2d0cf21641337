import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeadlineExceeded, isFailedPrecondition, isInvalidArgument, isNotFound } from '@berth/errdefs';
import { rejectionOf } from '@berth/testing';
import { CniPluginError } from './invoke';
import { createNetns } from './netns';
import { DEBIAN_CNI_BIN, TestNetwork, bridgePorts } from './test-helpers';

jest.setTimeout(120_000);

/** Writes an executable shell script plugin into the network's bin dir. */
function scriptPlugin(net: TestNetwork, type: string, body: string): void {
  const path = join(net.binDir, type);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/** What a test network shows when a pod has left no trace on it. */
function traces(net: TestNetwork) {
  return {
    allocations: net.allocations(),
    ports: bridgePorts(net.bridge),
    cache: (() => {
      try {
        return readdirSync(join(net.cacheDir, 'results'));
      } catch {
        return [];
      }
    })(),
  };
}
const clean = { allocations: [], ports: [], cache: [] };

describe('plugin failures', () => {
  const nets: TestNetwork[] = [];
  const network = (plugins?: ConstructorParameters<typeof TestNetwork>[0], version?: string) => {
    const n = new TestNetwork(plugins, version);
    nets.push(n);
    return n;
  };
  afterEach(async () => {
    for (const n of nets.splice(0)) await n.cleanup();
  });

  it('undoes the first plugin when the second fails halfway through ADD (a real tuning plugin refusing a sysctl)', async () => {
    const net = network((p) => [p.bridgePlugin, { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.no_such_knob': '1' } }, p.portmapPlugin]);
    const plugin = net.plugin();
    const ns = await createNetns({ root: net.netnsRoot });
    const err = await rejectionOf(plugin.setup('half', ns, { portMappings: [{ hostPort: 30999, containerPort: 80 }] }));
    expect(err.message).toMatch(/^failed to setup network for sandbox "half": plugin type="tuning" failed \(add\): .*no_such_knob/);
    const cause = err.cause as CniPluginError;
    expect(cause).toBeInstanceOf(CniPluginError);
    expect({ plugin: cause.plugin, command: cause.command }).toEqual({ plugin: 'tuning', command: 'ADD' });
    // bridge had made a veth and host-local had handed out an address: both are given back.
    expect(traces(net)).toEqual(clean);
    // The namespace still exists (its owner removes it) and holds no eth0 any more.
    expect(readFileSync('/proc/self/mounts', 'utf8')).toContain(ns);
    // Tearing down what is already undone is fine.
    await plugin.teardown('half', ns);
    expect(traces(net)).toEqual(clean);
  });

  it('names a missing plugin binary and undoes the plugins before it', async () => {
    const net = network((p) => [p.bridgePlugin, { type: 'no-such-plugin' }]);
    const plugin = net.plugin();
    const ns = await createNetns({ root: net.netnsRoot });
    const err = await rejectionOf(plugin.setup('nobin', ns));
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toBe(`failed to setup network for sandbox "nobin": failed to find plugin "no-such-plugin" in path [${net.binDir} ${DEBIAN_CNI_BIN}]: failed precondition`);
    expect(traces(net)).toEqual(clean);
  });

  it('refuses a namespace path that is not a mounted network namespace, and a bad sandbox id, before running any plugin', async () => {
    const net = network();
    const missing = join(net.dir, 'not-a-netns');
    expect(isNotFound(await rejectionOf(net.plugin().setup('p', missing)))).toBe(true);
    writeFileSync(missing, '');
    expect((await rejectionOf(net.plugin().setup('p', missing))).message).toBe(`network namespace ${missing}: not found`);
    expect(isInvalidArgument(await rejectionOf(net.plugin().setup('../p', '/proc/self/ns/net')))).toBe(true);
    expect(traces(net)).toEqual(clean);
  });

  it("turns a plugin's error object into code, msg and details, and falls back to stderr", async () => {
    const net = network(() => [{ type: 'says-no' }]);
    scriptPlugin(net, 'says-no', `cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"10.0.0.0/33 is not a CIDR"}'; exit 1`);
    const ns = await createNetns({ root: net.netnsRoot });
    const err = await rejectionOf(net.plugin().setup('p1', ns));
    expect(err.message).toBe('failed to setup network for sandbox "p1": plugin type="says-no" failed (add): bad subnet; 10.0.0.0/33 is not a CIDR');
    expect(err.cause).toMatchObject({ code: 7, msg: 'bad subnet', details: '10.0.0.0/33 is not a CIDR', plugin: 'says-no', command: 'ADD' });

    scriptPlugin(net, 'says-no', 'cat >/dev/null; echo "it broke" >&2; exit 2');
    expect((await rejectionOf(net.plugin().setup('p2', ns))).message).toBe('failed to setup network for sandbox "p2": plugin type="says-no" failed (add): netplugin failed: "it broke"');
    scriptPlugin(net, 'says-no', 'cat >/dev/null; exit 3');
    expect((await rejectionOf(net.plugin().setup('p3', ns))).message).toBe('failed to setup network for sandbox "p3": plugin type="says-no" failed (add): netplugin failed with no error message: exit status 3');
    scriptPlugin(net, 'says-no', 'cat >/dev/null; echo "{not json"');
    expect((await rejectionOf(net.plugin().setup('p4', ns))).message).toMatch(/^failed to setup network for sandbox "p4": plugin type="says-no" \(add\) printed a result that is not JSON/);
  });

  it('lets the plugins before a failing DEL release theirs, throws its error and keeps the cache entry for a retry', async () => {
    const net = network((p) => [p.bridgePlugin, { type: 'del-fails' }]);
    const script = (fail: boolean) => `cat >/dev/null; if [ "$CNI_COMMAND" = DEL ] && ${fail}; then echo '{"code":11,"msg":"busy, try again"}'; exit 1; fi; [ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0"}'; exit 0`;
    scriptPlugin(net, 'del-fails', script(true));
    const plugin = net.plugin();
    const ns = await createNetns({ root: net.netnsRoot });
    await plugin.setup('sticky', ns);
    expect(net.allocations().length).toBe(1);
    const err = await rejectionOf(plugin.teardown('sticky', ns));
    expect(err.message).toBe('failed to destroy network for sandbox "sticky": plugin type="del-fails" failed (del): busy, try again');
    expect(err.cause).toMatchObject({ code: 11 });
    // bridge ran anyway: the veth and the address are gone; the entry stays for the retry.
    expect(traces(net)).toEqual({ ...clean, cache: [`${net.name}-sticky-eth0`] });
    scriptPlugin(net, 'del-fails', script(false));
    await plugin.teardown('sticky', ns);
    expect(traces(net)).toEqual(clean);
  });

  it('kills a plugin that hangs, as DeadlineExceeded', async () => {
    const net = network(() => [{ type: 'hangs' }]);
    scriptPlugin(net, 'hangs', 'exec sleep 60');
    const ns = await createNetns({ root: net.netnsRoot });
    const started = Date.now();
    const err = await rejectionOf(net.plugin({ pluginTimeoutMs: 500 }).setup('slow', ns));
    expect(isDeadlineExceeded(err)).toBe(true);
    expect(err.message).toContain('plugin type="hangs" (add) was killed after 500 ms');
    // ADD and the DEL that undoes it were both cut off; nothing waited a minute.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('hands plugins the CNI environment, chains prevResult through ADD, and runs DEL in reverse with the cached result', async () => {
    const net = network(() => [
      { type: 'rec-a', capabilities: { portMappings: true } },
      { type: 'rec-b', capabilities: { dns: true, bandwidth: false } },
    ]);
    const log = join(net.dir, 'calls');
    // Records each call (env and stdin, one JSON line), answers ADD with its own result.
    const recorder = (answer: string) =>
      `in=$(cat); printf '{"plugin":"%s","env":"%s","stdin":%s}\\n' "$(basename "$0")" "$(env | grep ^CNI_ | sort | tr '\\n' '|')" "$in" >> ${log}\n` +
      `[ "$CNI_COMMAND" = ADD ] && printf '%s' '${answer}'; exit 0`;
    scriptPlugin(net, 'rec-a', recorder('{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"fd00::5/64","interface":0}]}'));
    scriptPlugin(net, 'rec-b', recorder('{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"fd00::5/64","interface":0},{"address":"10.1.2.3/24","interface":0}]}'));
    const ns = await createNetns({ root: net.netnsRoot });
    const opts = { pod: { namespace: 'ns1', name: 'web', uid: 'u-1' }, portMappings: [{ hostPort: 8443, containerPort: 443 }], dns: { servers: ['10.0.0.10'] } };
    const res = await net.plugin().setup('sb-1', ns, opts);
    expect({ ip: res.ip, additional: res.additionalIps }).toEqual({ ip: '10.1.2.3', additional: ['fd00::5'] });

    await net.plugin().check('sb-1', ns);
    await net.plugin().teardown('sb-1', ns);
    const calls = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => ({ ...(JSON.parse(l) as { plugin: string; env: string; stdin: Record<string, unknown> }), stdinText: l.slice(l.indexOf('"stdin":') + 8, -1) }));
    expect(calls.map((c) => `${c.stdin.type}:${/CNI_COMMAND=(\w+)/.exec(c.env)![1]}`)).toEqual(['rec-a:ADD', 'rec-b:ADD', 'rec-a:CHECK', 'rec-b:CHECK', 'rec-b:DEL', 'rec-a:DEL']);
    expect(calls[0].env.split('|').filter(Boolean)).toEqual([
      'CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb-1;K8S_POD_UID=u-1',
      'CNI_COMMAND=ADD',
      'CNI_CONTAINERID=sb-1',
      'CNI_IFNAME=eth0',
      `CNI_NETNS=${ns}`,
      `CNI_PATH=${net.binDir}:${DEBIAN_CNI_BIN}`,
    ]);
    const [addA, addB, , , delB, delA] = calls.map((c) => c.stdin);
    // As containerd 1.6.20 sends them (checked with recording plugins under its CRI plugin): keys
    // sorted, capability keys spelled as go-cni's structs, only declared capabilities.
    expect(calls[0].stdinText).toBe(
      `{"capabilities":{"portMappings":true},"cniVersion":"1.0.0","name":"${net.name}","runtimeConfig":{"portMappings":[{"HostPort":8443,"ContainerPort":443,"Protocol":"tcp","HostIP":""}]},"type":"rec-a"}`,
    );
    expect(calls[1].stdinText).toContain('"runtimeConfig":{"dns":{"Servers":["10.0.0.10"],"Searches":[],"Options":[]}}');
    expect(addB).toMatchObject({ prevResult: { ips: [{ address: 'fd00::5/64', interface: 0 }] }, runtimeConfig: { dns: { Servers: ['10.0.0.10'], Searches: [], Options: [] } } });
    // DEL without options still gets ADD's arguments and capabilities from the cache, and its final result.
    expect(delB).toEqual({ ...addB, prevResult: { ...res.results[net.name], dns: {} } });
    expect(delA).toEqual({ ...addA, prevResult: { ...res.results[net.name], dns: {} } });
    expect(calls[5].stdinText).toMatch(/"prevResult":\{"cniVersion":"1.0.0","dns":\{\},"interfaces":\[\{"name":"eth0"\}\],"ips":\[/);
    expect(calls[5].env).toContain('K8S_POD_NAME=web');
    expect(traces(net).cache).toEqual([]);
  });
});
