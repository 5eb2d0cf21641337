/**
 * GetContainerEvents side by side: `crictl events` (cri-tools v1.37) against berthd and against
 * containerd 2.4.2's CRI plugin (containerd 1.6.20 answers UNIMPLEMENTED), each on temp root,
 * state and socket, both on one private CNI bridge network, pulling the same busybox and catatonit
 * pause images through the same hosts.toml. Compared: which events come for each step of a pod's
 * life, for whom, with the pod's state and IP and the containers' states, and which fields are
 * set (not their values: ids, times).
 *
 * containerd 2.4.2 runs its pods with its own runc shim (tools/reference-tools.sh builds it):
 * it cannot start Debian's 1.6 shim.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeNetns } from '@berth/cni';
import { TestNetwork, hostportChainsExist, removeUnusedHostportChains } from '@berth/cni/test-helpers';
import { CONTAINERD2_PATH, CONTAINERD2_SHIM_PATH, ReferenceContainerd2, TestDaemon, runCrictl } from '@berth/testing';
import { cleanupShims } from '@berth/tasks/test-support';
import { CrictlEvents, type CriWorld, LIFECYCLE_EVENT_COUNTS, addPauseImage, eventShape, json, lifecycleScenario, startCriWorld } from './test-support';

jest.setTimeout(300_000);

const installed = CONTAINERD2_PATH !== undefined && CONTAINERD2_SHIM_PATH !== undefined;
const describeIf = installed ? describe : describe.skip;
const IMAGE = 'docker.io/library/busybox:berth';

let world: CriWorld;
let net: TestNetwork;
let berthd: TestDaemon;
let containerd: ReferenceContainerd2;
let containerdConfig = '';
let hadHostportChains = false;
const CGROUP_PARENT = `/berth-cri-events2-${process.pid}`;
const PARENT_CGROUPS = () => (existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c, CGROUP_PARENT)).filter((d) => existsSync(d)) : []);

async function removeAll(address: string): Promise<void> {
  for (const id of (await runCrictl(address, ['pods', '-q'])).stdout.split('\n').filter(Boolean)) await runCrictl(address, ['rmp', '-f', id]);
}

async function ok(address: string, ...args: string[]): Promise<string> {
  const r = await runCrictl(address, args);
  if (r.code !== 0) throw new Error(`crictl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

describeIf('GetContainerEvents: berthd and containerd 2.4.2 side by side', () => {
  beforeAll(async () => {
    hadHostportChains = hostportChainsExist();
    world = await startCriWorld();
    await addPauseImage(world);
    net = new TestNetwork();
    const v1 = 'plugins."io.containerd.grpc.v1.cri"';
    const berthConfig =
      `[${v1}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n  restrict_oom_score_adj = true\n  netns_mounts_under = ${JSON.stringify(net.netnsRoot)}\n` +
      `[${v1}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(net.confDir)}\n  cache_dir = ${JSON.stringify(net.cacheDir)}\n` +
      `[${v1}.registry]\n  config_path = ${JSON.stringify(world.hostsDir)}\n`;
    // containerd 2.x's config version 3: the CRI runtime and images are plugins of their own.
    // Everything it would otherwise read or make on the machine points into the test's dirs.
    const rt = 'plugins."io.containerd.cri.v1.runtime"';
    const im = 'plugins."io.containerd.cri.v1.images"';
    for (const d of ['cdi', 'opt']) mkdirSync(join(world.dir, d));
    containerdConfig =
      `[${im}]\n  snapshotter = "overlayfs"\n[${im}.pinned_images]\n  sandbox = "registry.k8s.io/pause:3.6"\n[${im}.registry]\n  config_path = ${JSON.stringify(world.hostsDir)}\n` +
      `[${rt}]\n  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n  cdi_spec_dirs = [${JSON.stringify(join(world.dir, 'cdi'))}]\n` +
      `[${rt}.containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n  runtime_path = ${JSON.stringify(CONTAINERD2_SHIM_PATH)}\n` +
      `[${rt}.cni]\n  bin_dirs = ["/usr/lib/cni"]\n  conf_dir = ${JSON.stringify(net.confDir)}\n` +
      `[plugins."io.containerd.internal.v1.opt"]\n  path = ${JSON.stringify(join(world.dir, 'opt'))}\n`;
    berthd = await TestDaemon.start({ config: berthConfig, logLevel: 'info' });
    containerd = await ReferenceContainerd2.start({ config: containerdConfig, cri: true });
    for (const address of [berthd.address, containerd.address]) await ok(address, 'pull', IMAGE);
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

  // First in the file: containerd 2.4.2 has had no subscriber yet. (One that left stays
  // subscribed there until a later event finds its channel closed, and Go's select may still put
  // events in its buffer meanwhile: those are lost. Berth drops it at once: shown below.)
  it('keeps the events of a pod run while nobody listened for the next subscriber, and only for it', async () => {
    const run = async (address: string, name: string, subscriberBefore: boolean) => {
      if (subscriberBefore) await (await CrictlEvents.start(address)).stop();
      const path = join(world.dir, `${name}.json`);
      writeFileSync(path, JSON.stringify({ metadata: { name, namespace: 'berth-test', uid: `${name}-${process.pid}`, attempt: 0 }, linux: { cgroup_parent: CGROUP_PARENT } }));
      const pod = await ok(address, 'runp', path);
      await ok(address, 'stopp', pod);
      await ok(address, 'rmp', pod);
      const late = await CrictlEvents.start(address);
      const second = await CrictlEvents.start(address);
      await late.waitFor(4);
      await new Promise((r) => setTimeout(r, 300));
      const shapes = late.events.map((e) => eventShape(e, new Map([[pod, 'pod']])));
      await late.stop();
      await second.stop();
      // The second subscriber came after the first had taken them.
      return { first: shapes.map((e) => [e.what, e.pod?.state]), second: second.events.length };
    };
    const reference = await run(containerd.address, 'held-c', false);
    expect(reference).toEqual({
      first: [
        ['CREATED pod', 'SANDBOX_READY'],
        ['STARTED pod', 'SANDBOX_READY'],
        ['STOPPED pod', 'SANDBOX_NOTREADY'],
        ['DELETED pod', 'SANDBOX_NOTREADY'],
      ],
      second: 0,
    });
    expect(await run(berthd.address, 'held-b', false)).toEqual(reference);
    // berthd again, after a subscriber that came and went: nobody listens once it has left.
    expect(await run(berthd.address, 'held-b2', true)).toEqual(reference);
  });

  it("gives the same events for a pod's life: run, containers created, started, exited on their own, stopped, removed, the pod stopped and removed", async () => {
    const o = { dir: world.dir, image: IMAGE, cgroupParent: CGROUP_PARENT, expected: LIFECYCLE_EVENT_COUNTS };
    const reference = await lifecycleScenario(containerd.address, { ...o, podName: 'life-c' });
    const ours = await lifecycleScenario(berthd.address, { ...o, podName: 'life-b' });
    // What containerd 2.4.2 sends, step by step (run here; the same with berthd below).
    const what = (r: typeof reference) => r.steps.map((s) => [s.step, s.events.map((e) => e.what)]);
    expect(what(reference)).toEqual([
      ['runp', ['CREATED pod', 'STARTED pod']],
      ['create c1', ['CREATED c1']],
      ['start c1', ['STARTED c1']],
      ['create c2', ['CREATED c2']],
      ['start c2', ['STARTED c2']],
      ['c2 exits', ['STOPPED c2']],
      ['stop c1', ['STOPPED c1']],
      ['stop c1 again', []],
      ['rm c2', ['DELETED c2']],
      ['create c3', ['CREATED c3']],
      ['start c3', ['STARTED c3']],
      ['stopp', ['STOPPED c3', 'STOPPED pod']],
      ['rmp', ['DELETED c1', 'DELETED c3', 'DELETED pod']],
    ]);
    // The pod's state and IP, and the containers' states, in each event: the pod is READY with
    // its IP until its pause exits; its STOPPED event still shows the IP (the network goes
    // after); a removed container has left the statuses of its DELETED event.
    const states = (r: typeof reference) => r.steps.map((s) => [s.step, s.events.map((e) => ({ what: e.what, pod: e.pod, containers: e.containers }))]);
    expect(states(ours)).toEqual(states(reference));
    expect(reference.steps.find((s) => s.step === 'rmp')!.events).toEqual([
      expect.objectContaining({ what: 'DELETED c1', pod: { state: 'SANDBOX_NOTREADY', ip: false }, containers: ['c3:CONTAINER_EXITED'] }),
      expect.objectContaining({ what: 'DELETED c3', pod: { state: 'SANDBOX_NOTREADY', ip: false }, containers: [] }),
      expect.objectContaining({ what: 'DELETED pod', pod: { state: 'SANDBOX_NOTREADY', ip: false }, containers: [] }),
    ]);
    // Which fields are set, event by event (ContainerStatus's resources, user and stopSignal,
    // which containerd 2.x adds, are left out: Berth's ContainerStatus is containerd 1.6's).
    const fields = (r: typeof reference) => r.steps.map((s) => [s.step, s.events.map((e) => ({ what: e.what, ...e.fields }))]);
    expect(fields(ours)).toEqual(fields(reference));
    expect(reference.steps[0].events[0].fields.event).toEqual(['containerEventType', 'containerId', 'createdAt', 'podSandboxStatus']);
  });

  it('after a restart: nothing for a container that exited meanwhile, STOPPED for one exiting later and for a pause process killed', async () => {
    const run = async (address: () => string, restart: () => Promise<void>, name: string) => {
      const path = join(world.dir, `${name}.json`);
      writeFileSync(path, JSON.stringify({ metadata: { name, namespace: 'berth-test', uid: `${name}-${process.pid}`, attempt: 0 }, log_directory: join(world.dir, `${name}-logs`), linux: { cgroup_parent: CGROUP_PARENT } }));
      mkdirSync(join(world.dir, `${name}-logs`));
      const pod = await ok(address(), 'runp', path);
      const pausePid: number = json(await ok(address(), 'inspectp', pod)).info.pid;
      const names = new Map([[pod, 'pod']]);
      for (const [c, command] of [
        ['quick', ['sh', '-c', 'sleep 1; exit 3']],
        ['slow', ['sh', '-c', 'sleep 8; exit 4']],
      ] as const) {
        const cfg = join(world.dir, `${name}-${c}.json`);
        writeFileSync(cfg, JSON.stringify({ metadata: { name: c }, image: { image: IMAGE }, command, log_path: `${c}.log` }));
        const id = await ok(address(), 'create', pod, cfg, path);
        await ok(address(), 'start', id);
        names.set(id, c);
      }
      await restart();
      const events = await CrictlEvents.start(address(), 500);
      await events.waitFor(1);
      process.kill(pausePid, 'SIGKILL');
      await events.waitFor(2);
      await new Promise((r) => setTimeout(r, 500));
      await events.stop();
      await ok(address(), 'rmp', '-f', pod);
      return events.events.map((e) => eventShape(e, names)).map((e) => ({ what: e.what, pod: e.pod, containers: e.containers }));
    };
    // containerd stops (SIGTERM leaves the shims and their containers running) and comes back;
    // berthd is killed (-9) and comes back.
    const reference = await run(
      () => containerd.address,
      async () => {
        await containerd.stop();
        await new Promise((r) => setTimeout(r, 2500));
        containerd = await ReferenceContainerd2.start({ dir: containerd.dir, config: containerdConfig, cri: true });
      },
      'restart-c',
    );
    expect(reference).toEqual([
      { what: 'STOPPED slow', pod: { state: 'SANDBOX_READY', ip: true }, containers: ['quick:CONTAINER_EXITED', 'slow:CONTAINER_EXITED'] },
      { what: 'STOPPED pod', pod: { state: 'SANDBOX_NOTREADY', ip: true }, containers: ['quick:CONTAINER_EXITED', 'slow:CONTAINER_EXITED'] },
    ]);
    const ours = await run(
      () => berthd.address,
      async () => {
        await berthd.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 2500));
        await berthd.restart();
      },
      'restart-b',
    );
    expect(ours).toEqual(reference);
  });
});
