/**
 * Pod sandboxes side by side: the same crictl v1.37 commands against berthd and against Debian's
 * containerd 1.6.20 with its CRI plugin (temp root, state and socket; its network namespaces under
 * its state dir), both on one private CNI bridge network and pulling the same catatonit pause
 * image through the same hosts.toml. Compared: the error codes and words, and the shape of
 * inspectp (its keys, and the values that do not depend on the daemon).
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeNetns } from '@berth/cni';
import { TestNetwork, hostportChainsExist, removeUnusedHostportChains } from '@berth/cni/test-helpers';
import { CONTAINERD_PATH, type CrictlResult, ReferenceContainerd, TestDaemon, runCrictl, runCtr } from '@berth/testing';
import { cleanupShims } from '@berth/tasks/test-support';
import { type CriWorld, addPauseImage, json, startCriWorld } from './test-support';

jest.setTimeout(240_000);

const describeIf = CONTAINERD_PATH ? describe : describe.skip;

let world: CriWorld;
let net: TestNetwork;
let berthd: TestDaemon;
let containerd: ReferenceContainerd;
let hadHostportChains = false;
/** Both daemons' pods go under a test-unique cgroup parent, removed after the run. */
const CGROUP_PARENT = `/berth-cri-side-${process.pid}`;
const PARENT_CGROUPS = () => (existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c, CGROUP_PARENT)).filter((d) => existsSync(d)) : []);

/** crictl's stderr quotes the gRPC error inside err="..."; this unescapes it and drops the id. */
const errorOf = (r: CrictlResult) => {
  const m = /rpc error: (code = \w+ desc = .*?)"?\n/.exec(r.stderr.replace(/\\"/g, '"'));
  return m ? m[1].replace(/[0-9a-f]{64}/g, '<id>') : `exit ${r.code}: ${r.stderr}`;
};

/** An inspectp (or record) JSON with what differs by nature masked: ids, pids, times, addresses, paths. */
const masked = (i: any, id: string, dir: string) =>
    JSON.parse(
      JSON.stringify({ ...i, info: { ...i.info, pid: 0 }, status: { ...i.status, createdAt: '<t>' } })
        .replaceAll(id, '<id>')
        .replaceAll(dir, '<dir>')
        .replace(/"[^"]*\/netns\/cni-[0-9a-f-]+"/g, '"<netns>"')
        .replace(/\d+\.\d+\.\d+\.\d+/g, (ip) => (ip.startsWith(`${net.subnet}.`) && !ip.endsWith('.1') ? '<ip>' : ip))
        .replace(/"Mac":"[0-9a-f:]+"/g, '"Mac":"<mac>"')
        .replace(/"veth[0-9a-f]+"/g, '"<veth>"'),
    );

let seq = 0;
function podConfig(over: Record<string, unknown> = {}): string {
  seq += 1;
  const path = join(world.dir, `side-${seq}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      metadata: { name: `side-${seq}`, namespace: 'berth-test', uid: `uid-${process.pid}-${seq}`, attempt: 1 },
      hostname: `side-${seq}`,
      log_directory: join(world.dir, 'logs'),
      dns_config: { servers: ['10.10.10.10'], searches: ['google.com'], options: ['ndots:8'] },
      labels: { app: 'side', seq: String(seq) },
      annotations: { 'berth.test/x': 'y' },
      ...over,
      linux: { cgroup_parent: CGROUP_PARENT, ...((over.linux as object | undefined) ?? {}) },
    }),
  );
  return path;
}

async function removeAll(address: string): Promise<void> {
  for (const id of (await runCrictl(address, ['pods', '-q'])).stdout.split('\n').filter(Boolean)) await runCrictl(address, ['rmp', '-f', id]);
}

describeIf('pod sandboxes: berthd and containerd 1.6.20 side by side', () => {
  beforeAll(async () => {
    hadHostportChains = hostportChainsExist();
    world = await startCriWorld();
    await addPauseImage(world);
    net = new TestNetwork();
    const section = 'plugins."io.containerd.grpc.v1.cri"';
    // Each daemon ignores the other's keys: netns_mounts_under and cni.cache_dir are berthd's,
    // netns_mounts_under_state_dir is containerd 1.6's.
    const config =
      `[${section}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n  restrict_oom_score_adj = true\n  netns_mounts_under = ${JSON.stringify(net.netnsRoot)}\n  netns_mounts_under_state_dir = true\n` +
      `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(net.confDir)}\n  cache_dir = ${JSON.stringify(net.cacheDir)}\n` +
      `[${section}.registry]\n  config_path = ${JSON.stringify(world.hostsDir)}\n` +
      // A handler whose CNI config dir is empty: its pods have no network to join. runc is named
      // too: a runtimes table replaces the default set (in both).
      `[${section}.containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n` +
      `[${section}.containerd.runtimes.nonet]\n  runtime_type = "io.containerd.runc.v2"\n  cni_conf_dir = ${JSON.stringify(join(world.dir, 'empty-net.d'))}\n`;
    mkdirSync(join(world.dir, 'empty-net.d'));
    berthd = await TestDaemon.start({ config, logLevel: 'info' });
    containerd = await ReferenceContainerd.start({ config, cri: true });
  });

  afterAll(async () => {
    if (berthd) {
      await removeAll(berthd.address);
      await berthd.stop();
      await cleanupShims(berthd.address, berthd.dir);
      await berthd.cleanup();
    }
    if (containerd) {
      await removeAll(containerd.address);
      await containerd.stop();
      const netnsDir = join(containerd.state, 'io.containerd.grpc.v1.cri', 'netns');
      if (existsSync(netnsDir)) for (const n of readdirSync(netnsDir)) await removeNetns(join(netnsDir, n));
      await containerd.cleanup();
    }
    await net?.cleanup();
    if (!hadHostportChains) removeUnusedHostportChains();
    for (const d of PARENT_CGROUPS()) {
      try {
        rmdirSync(d);
      } catch {
        /* in use */
      }
    }
    await world?.cleanup();
  });

  async function both(...args: string[]): Promise<{ berthd: CrictlResult; containerd: CrictlResult }> {
    const b = await runCrictl(berthd.address, args);
    const c = await runCrictl(containerd.address, args);
    return { berthd: b, containerd: c };
  }

  it('inspectp: the same keys, states, metadata, labels, annotations, namespace options and config', async () => {
    const config = podConfig({
      // containerd 1.6.20 gives the pause process no seccomp profile and nothing more for privileged (seen here).
      linux: {
        sysctls: { 'kernel.shm_rmid_forced': '1' },
        security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 2000 }, supplemental_groups: [3000], privileged: true, seccomp: { profile_type: 0 } },
      },
    });
    const b = (await runCrictl(berthd.address, ['runp', config])).stdout.trim();
    const c = (await runCrictl(containerd.address, ['runp', config])).stdout.trim();
    expect(b).toMatch(/^[0-9a-f]{64}$/);
    expect(c).toMatch(/^[0-9a-f]{64}$/);
    const ib = json((await runCrictl(berthd.address, ['inspectp', b])).stdout);
    const ic = json((await runCrictl(containerd.address, ['inspectp', c])).stdout);
    expect(Object.keys(ib).sort()).toEqual(Object.keys(ic).sort());
    expect(Object.keys(ib.status).sort()).toEqual(Object.keys(ic.status).sort());
    expect(Object.keys(ib.info).sort()).toEqual(Object.keys(ic.info).sort());
    const stable = (i: any) => ({
      state: i.status.state,
      metadata: i.status.metadata,
      labels: i.status.labels,
      annotations: i.status.annotations,
      linux: i.status.linux,
      runtimeHandler: i.status.runtimeHandler,
      ipInSubnet: i.status.network.ip.startsWith(`${net.subnet}.`),
      additionalIps: i.status.network.additionalIps,
      config: i.info.config,
      processStatus: i.info.processStatus,
      netNamespaceClosed: i.info.netNamespaceClosed,
      snapshotter: i.info.snapshotter,
      runtimeType: i.info.runtimeType,
      args: i.info.runtimeSpec.process.args,
      root: i.info.runtimeSpec.root,
      oom: i.info.runtimeSpec.process.oomScoreAdj,
      cgroupsPathKind: i.info.runtimeSpec.linux.cgroupsPath.replace(/[0-9a-f]{64}/, '<id>'),
      namespaces: i.info.runtimeSpec.linux.namespaces.map((n: any) => n.type).sort(),
      hostname: i.info.runtimeSpec.hostname,
      cniResultShape: Object.fromEntries(
        Object.entries<any>(i.info.cniResult.Interfaces).map(([n, v]) => [n.replace(/^veth.*/, 'veth').replace(/^bt[0-9a-f]+$/, 'bridge'), Object.keys(v).sort()]),
      ),
      cniResultKeys: Object.keys(i.info.cniResult).sort(),
    });
    expect(stable(ib)).toEqual(stable(ic));
    // And the whole of it once what differs by nature is masked.
    expect(masked(ib, b, berthd.dir)).toEqual(masked(ic, c, containerd.dir));

    // The container record too: labels, image, runtime, snapshotter, and the metadata extension
    // (its type URL and JSON), the spec aside (compared above through inspectp).
    const record = async (address: string, id: string, dir: string) => {
      const r = JSON.parse((await runCtr(address, ['-n', 'k8s.io', 'containers', 'info', id])).stdout);
      const ext = r.Extensions['io.cri-containerd.sandbox.metadata'];
      const meta = JSON.parse(Buffer.from(ext.value, 'base64').toString());
      delete r.Spec;
      delete r.CreatedAt;
      delete r.UpdatedAt;
      return masked({ info: {}, status: {}, record: { ...r, Extensions: { 'io.cri-containerd.sandbox.metadata': { type: ext.type_url ?? ext.typeUrl, meta } } } }, id, dir);
    };
    expect(await record(berthd.address, b, berthd.dir)).toEqual(await record(containerd.address, c, containerd.dir));
    expect(ib.info.snapshotKey).toBe(b);
    expect(ic.info.snapshotKey).toBe(c);

    // pods: the same columns and values but for ids and ages.
    const rows = async (address: string) => (await runCrictl(address, ['pods', '-o', 'json'])).stdout;
    const norm = (out: string) => json(out).items.map((p: any) => ({ ...p, id: '<id>', createdAt: '<t>' }));
    expect(norm(await rows(berthd.address))).toEqual(norm(await rows(containerd.address)));

    // stopp: NOTREADY and no IP on both.
    await runCrictl(berthd.address, ['stopp', b]);
    await runCrictl(containerd.address, ['stopp', c]);
    const sb = json((await runCrictl(berthd.address, ['inspectp', b])).stdout);
    const sc = json((await runCrictl(containerd.address, ['inspectp', c])).stdout);
    expect([sb.status.state, sb.status.network.ip]).toEqual([sc.status.state, sc.status.network.ip]);
    await runCrictl(berthd.address, ['rmp', b]);
    await runCrictl(containerd.address, ['rmp', c]);
  });

  it('errors: a repeated name, an unknown handler, a port mapping portmap refuses, no CNI network, a missing sandbox: the same codes and words', async () => {
    // No hostname: containerd 1.6 puts one in the spec of a host-network pod too, and runc then
    // refuses it (no private UTS namespace); kubelet sends none for such pods. Berth leaves it out.
    const config = podConfig({ hostname: '', linux: { security_context: { namespace_options: { network: 2, pid: 2, ipc: 2 } } } });
    const first = await both('runp', config);
    expect(first.containerd.code).toBe(0);
    // A host-network pod's inspectp is the same too.
    const [hb, hc] = [first.berthd.stdout.trim(), first.containerd.stdout.trim()];
    const hib = json((await runCrictl(berthd.address, ['inspectp', hb])).stdout);
    const hic = json((await runCrictl(containerd.address, ['inspectp', hc])).stdout);
    expect(masked(hib, hb, berthd.dir)).toEqual(masked(hic, hc, containerd.dir));
    const repeated = await both('runp', config);
    expect(errorOf(repeated.berthd)).toBe(errorOf(repeated.containerd));
    expect(errorOf(repeated.berthd)).toMatch(/^code = Unknown desc = failed to reserve sandbox name /);

    const handler = await both('runp', '--runtime', 'nosuch', podConfig());
    expect(errorOf(handler.berthd)).toBe(errorOf(handler.containerd));

    const port = await both('runp', podConfig({ port_mappings: [{ protocol: 0, container_port: -1, host_port: 8080 }] }));
    expect(errorOf(port.berthd)).toBe(errorOf(port.containerd));
    // containerd 1.6.20 leaves the network namespace of this failed sandbox mounted (afterAll
    // removes it); berthd leaves none.
    expect(readdirSync(net.netnsRoot)).toEqual([]);
    expect(readdirSync(join(containerd.state, 'io.containerd.grpc.v1.cri', 'netns'))).toHaveLength(1);

    const nonet = await both('runp', '--runtime', 'nonet', podConfig());
    expect(errorOf(nonet.berthd)).toBe(errorOf(nonet.containerd));
    expect(errorOf(nonet.berthd)).toBe('code = Unknown desc = failed to setup network for sandbox "<id>": cni plugin not initialized');
    expect(readdirSync(net.netnsRoot)).toEqual([]);

    const missing = await both('inspectp', 'f'.repeat(64));
    expect(errorOf(missing.berthd)).toBe(errorOf(missing.containerd));
    await removeAll(berthd.address);
    await removeAll(containerd.address);
  });
});
