/**
 * Pod sandboxes side by side: the same crictl v1.37 commands against berthd and against Debian's
 * containerd 1.6.20 with its CRI plugin (temp root, state and socket; its network namespaces under
 * its state dir), both on one private CNI bridge network and pulling the same catatonit pause
 * image through the same hosts.toml. Compared: the error codes and words, and the shape of
 * inspectp (its keys, and the values that do not depend on the daemon).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINERD_PATH, runCrictl, runCtr } from '@berth/testing';
import { errorOf, useCriTestBed } from './test-bed';
import { json } from './test-support';

jest.setTimeout(240_000);

const describeIf = CONTAINERD_PATH ? describe : describe.skip;

describeIf('pod sandboxes: berthd and containerd 1.6.20 side by side', () => {
  const bed = useCriTestBed({
    name: 'side',
    containerd: '1.6',
    // A handler whose CNI config dir is empty: its pods have no network to join. runc is named
    // too: a runtimes table replaces the default set (in both).
    extraConfig: (world) => {
      mkdirSync(join(world.dir, 'empty-net.d'), { recursive: true });
      return (
        `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n` +
        `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nonet]\n  runtime_type = "io.containerd.runc.v2"\n  cni_conf_dir = ${JSON.stringify(join(world.dir, 'empty-net.d'))}\n`
      );
    },
    pod: {
      prefix: 'side',
      attempt: 1,
      hostname: (name) => name,
      logs: 'shared',
      fields: (n) => ({ dns_config: { servers: ['10.10.10.10'], searches: ['google.com'], options: ['ndots:8'] }, labels: { app: 'side', seq: String(n) }, annotations: { 'berth.test/x': 'y' } }),
    },
  });
  const podConfig = (over: Record<string, unknown> = {}) => bed.pod(over).path;
  const both = (...args: string[]) => bed.both(...args);
  // Each test's pods go after it, also when it failed: a later test looks at what is left.
  afterEach(async () => {
    await bed.removePods(bed.berthd.address);
    await bed.removePods(bed.containerd.address);
  });

  /** An inspectp (or record) JSON with what differs by nature masked: ids, pids, times, addresses, paths. */
  const masked = (i: any, id: string, dir: string) =>
    JSON.parse(
      JSON.stringify({ ...i, info: { ...i.info, pid: 0 }, status: { ...i.status, createdAt: '<t>' } })
        .replaceAll(id, '<id>')
        .replaceAll(dir, '<dir>')
        .replace(/"[^"]*\/netns\/cni-[0-9a-f-]+"/g, '"<netns>"')
        .replace(/\d+\.\d+\.\d+\.\d+/g, (ip) => (ip.startsWith(`${bed.net.subnet}.`) && !ip.endsWith('.1') ? '<ip>' : ip))
        .replace(/"Mac":"[0-9a-f:]+"/g, '"Mac":"<mac>"')
        .replace(/"veth[0-9a-f]+"/g, '"<veth>"'),
    );

  it('inspectp: the same keys, states, metadata, labels, annotations, namespace options and config', async () => {
    const config = podConfig({
      // containerd 1.6.20 gives the pause process no seccomp profile and nothing more for privileged (seen here).
      linux: {
        sysctls: { 'kernel.shm_rmid_forced': '1' },
        security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 2000 }, supplemental_groups: [3000], privileged: true, seccomp: { profile_type: 0 } },
      },
    });
    const b = (await runCrictl(bed.berthd.address, ['runp', config])).stdout.trim();
    const c = (await runCrictl(bed.containerd.address, ['runp', config])).stdout.trim();
    expect(b).toMatch(/^[0-9a-f]{64}$/);
    expect(c).toMatch(/^[0-9a-f]{64}$/);
    const ib = json((await runCrictl(bed.berthd.address, ['inspectp', b])).stdout);
    const ic = json((await runCrictl(bed.containerd.address, ['inspectp', c])).stdout);
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
      ipInSubnet: i.status.network.ip.startsWith(`${bed.net.subnet}.`),
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
    expect(masked(ib, b, bed.berthd.dir)).toEqual(masked(ic, c, bed.containerd.dir));

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
    expect(await record(bed.berthd.address, b, bed.berthd.dir)).toEqual(await record(bed.containerd.address, c, bed.containerd.dir));
    expect(ib.info.snapshotKey).toBe(b);
    expect(ic.info.snapshotKey).toBe(c);

    // pods: the same columns and values but for ids and ages.
    const rows = async (address: string) => (await runCrictl(address, ['pods', '-o', 'json'])).stdout;
    const norm = (out: string) => json(out).items.map((p: any) => ({ ...p, id: '<id>', createdAt: '<t>' }));
    expect(norm(await rows(bed.berthd.address))).toEqual(norm(await rows(bed.containerd.address)));

    // stopp: NOTREADY and no IP on both.
    await runCrictl(bed.berthd.address, ['stopp', b]);
    await runCrictl(bed.containerd.address, ['stopp', c]);
    const sb = json((await runCrictl(bed.berthd.address, ['inspectp', b])).stdout);
    const sc = json((await runCrictl(bed.containerd.address, ['inspectp', c])).stdout);
    expect([sb.status.state, sb.status.network.ip]).toEqual([sc.status.state, sc.status.network.ip]);
    await runCrictl(bed.berthd.address, ['rmp', b]);
    await runCrictl(bed.containerd.address, ['rmp', c]);
  });

  it('errors: a repeated name, an unknown handler, a port mapping portmap refuses, no CNI network, a missing sandbox: the same codes and words', async () => {
    // No hostname: containerd 1.6 puts one in the spec of a host-network pod too, and runc then
    // refuses it (no private UTS namespace); kubelet sends none for such pods. Berth leaves it out.
    const config = podConfig({ hostname: '', linux: { security_context: { namespace_options: { network: 2, pid: 2, ipc: 2 } } } });
    const first = await both('runp', config);
    expect(first.containerd.code).toBe(0);
    // A host-network pod's inspectp is the same too.
    const [hb, hc] = [first.berthd.stdout.trim(), first.containerd.stdout.trim()];
    const hib = json((await runCrictl(bed.berthd.address, ['inspectp', hb])).stdout);
    const hic = json((await runCrictl(bed.containerd.address, ['inspectp', hc])).stdout);
    expect(masked(hib, hb, bed.berthd.dir)).toEqual(masked(hic, hc, bed.containerd.dir));
    const repeated = await both('runp', config);
    expect(errorOf(repeated.berthd)).toBe(errorOf(repeated.containerd));
    expect(errorOf(repeated.berthd)).toMatch(/^code = Unknown desc = failed to reserve sandbox name /);

    const handler = await both('runp', '--runtime', 'nosuch', podConfig());
    expect(errorOf(handler.berthd)).toBe(errorOf(handler.containerd));

    const port = await both('runp', podConfig({ port_mappings: [{ protocol: 0, container_port: -1, host_port: 8080 }] }));
    expect(errorOf(port.berthd)).toBe(errorOf(port.containerd));
    // containerd 1.6.20 leaves the network namespace of this failed sandbox mounted (afterAll
    // removes it); berthd leaves none.
    expect(readdirSync(bed.net.netnsRoot)).toEqual([]);
    expect(readdirSync(join(bed.containerd.state, 'io.containerd.grpc.v1.cri', 'netns'))).toHaveLength(1);

    const nonet = await both('runp', '--runtime', 'nonet', podConfig());
    expect(errorOf(nonet.berthd)).toBe(errorOf(nonet.containerd));
    expect(errorOf(nonet.berthd)).toBe('code = Unknown desc = failed to setup network for sandbox "<id>": cni plugin not initialized');
    expect(readdirSync(bed.net.netnsRoot)).toEqual([]);

    const missing = await both('inspectp', 'f'.repeat(64));
    expect(errorOf(missing.berthd)).toBe(errorOf(missing.containerd));
  });
});
