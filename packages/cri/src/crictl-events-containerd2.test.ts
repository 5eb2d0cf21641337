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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINERD2_PATH, CONTAINERD2_SHIM_PATH } from '@berth/testing';
import { BUSYBOX as IMAGE, useCriTestBed } from './test-bed';
import { CrictlEvents, LIFECYCLE_EVENT_COUNTS, eventShape, exitsWhenTold, json, letExit, lifecycleScenario, processGone } from './test-support';

jest.setTimeout(300_000);

const installed = CONTAINERD2_PATH !== undefined && CONTAINERD2_SHIM_PATH !== undefined;
const describeIf = installed ? describe : describe.skip;

describeIf('GetContainerEvents: berthd and containerd 2.4.2 side by side', () => {
  const bed = useCriTestBed({ name: 'events2', containerd: '2', pullBusybox: true });
  const ok = async (address: string, ...args: string[]): Promise<string> => (await bed.okAt(address, ...args)).trim();

  // First in the file: containerd 2.4.2 has had no subscriber yet. (One that left stays
  // subscribed there until a later event finds its channel closed, and Go's select may still put
  // events in its buffer meanwhile: those are lost. Berth drops it at once: shown below.)
  it('keeps the events of a pod run while nobody listened for the next subscriber, and only for it', async () => {
    const run = async (address: string, name: string, subscriberBefore: boolean) => {
      if (subscriberBefore) await (await CrictlEvents.start(address)).stop();
      const path = join(bed.world.dir, `${name}.json`);
      writeFileSync(path, JSON.stringify({ metadata: { name, namespace: 'berth-test', uid: `${name}-${process.pid}`, attempt: 0 }, linux: { cgroup_parent: bed.cgroupParent } }));
      const pod = await ok(address, 'runp', path);
      await ok(address, 'stopp', pod);
      await ok(address, 'rmp', pod);
      const late = await CrictlEvents.start(address);
      // The second subscribes once the first has had them (and so has subscribed first).
      await late.waitFor(4);
      const second = await CrictlEvents.start(address);
      await new Promise((r) => setTimeout(r, 300));
      const shapes = late.events.map((e) => eventShape(e, new Map([[pod, 'pod']])));
      await late.stop();
      await second.stop();
      // The second subscriber came after the first had taken them.
      return { first: shapes.map((e) => [e.what, e.pod?.state]), second: second.events.length };
    };
    const reference = await run(bed.containerd.address, 'held-c', false);
    expect(reference).toEqual({
      first: [
        ['CREATED pod', 'SANDBOX_READY'],
        ['STARTED pod', 'SANDBOX_READY'],
        ['STOPPED pod', 'SANDBOX_NOTREADY'],
        ['DELETED pod', 'SANDBOX_NOTREADY'],
      ],
      second: 0,
    });
    expect(await run(bed.berthd.address, 'held-b', false)).toEqual(reference);
    // berthd again, after a subscriber that came and went: nobody listens once it has left.
    expect(await run(bed.berthd.address, 'held-b2', true)).toEqual(reference);
  });

  it("gives the same events for a pod's life: run, containers created, started, exited on their own, stopped, removed, the pod stopped and removed", async () => {
    const o = { dir: bed.world.dir, image: IMAGE, cgroupParent: bed.cgroupParent, expected: LIFECYCLE_EVENT_COUNTS };
    const reference = await lifecycleScenario(bed.containerd.address, { ...o, podName: 'life-c' });
    const ours = await lifecycleScenario(bed.berthd.address, { ...o, podName: 'life-b' });
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
    // RemovePodSandbox's DELETED events: containerd 2.4.2 once (a loaded clean-clone CI run) gave
    // c1's and c3's container statuses swapped (c1's without c3, c3's with c1), not in the order of
    // its removals. Their containers are checked against its usual answer, the rest side by side.
    const rmp = [
      { what: 'DELETED c1', pod: { state: 'SANDBOX_NOTREADY', ip: false }, containers: ['c3:CONTAINER_EXITED'] },
      { what: 'DELETED c3', pod: { state: 'SANDBOX_NOTREADY', ip: false }, containers: [] },
      { what: 'DELETED pod', pod: { state: 'SANDBOX_NOTREADY', ip: false }, containers: [] },
    ];
    const settled = (r: typeof reference) => states(r).map(([step, events]) => (step === 'rmp' ? [step, (events as typeof rmp).map(({ what, pod }) => ({ what, pod }))] : [step, events]));
    expect(settled(ours)).toEqual(settled(reference));
    expect(states(ours).find(([step]) => step === 'rmp')![1]).toEqual(rmp);
    // Which fields are set, event by event (ContainerStatus's resources, user and stopSignal,
    // which containerd 2.x adds, are left out: Berth's ContainerStatus is containerd 1.6's).
    // In RemovePodSandbox's events, whether containersStatuses is set follows the swap above:
    // compared side by side without it, and berthd's against its own statuses.
    const fields = (r: typeof reference) =>
      r.steps.map((s) => [
        s.step,
        s.events.map((e) => (s.step === 'rmp' ? { what: e.what, event: e.fields.event.filter((f) => f !== 'containersStatuses'), pod: e.fields.pod } : { what: e.what, ...e.fields })),
      ]);
    expect(fields(ours)).toEqual(fields(reference));
    for (const e of ours.steps.find((s) => s.step === 'rmp')!.events) expect(e.fields.event.includes('containersStatuses')).toBe(e.containers.length > 0);
    expect(reference.steps[0].events[0].fields.event).toEqual(['containerEventType', 'containerId', 'createdAt', 'podSandboxStatus']);
  });

  it('after a restart: nothing for a container that exited meanwhile, STOPPED for one exiting later and for a pause process killed', async () => {
    const run = async (address: () => string, restart: (whileDown: () => Promise<void>) => Promise<void>, name: string) => {
      const path = join(bed.world.dir, `${name}.json`);
      writeFileSync(path, JSON.stringify({ metadata: { name, namespace: 'berth-test', uid: `${name}-${process.pid}`, attempt: 0 }, log_directory: join(bed.world.dir, `${name}-logs`), linux: { cgroup_parent: bed.cgroupParent } }));
      mkdirSync(join(bed.world.dir, `${name}-logs`));
      const pod = await ok(address(), 'runp', path);
      const pausePid: number = json(await ok(address(), 'inspectp', pod)).info.pid;
      const names = new Map([[pod, 'pod']]);
      const pids: Record<string, number> = {};
      for (const [c, code] of [
        ['quick', 3],
        ['slow', 4],
      ] as const) {
        const cfg = join(bed.world.dir, `${name}-${c}.json`);
        writeFileSync(cfg, JSON.stringify({ metadata: { name: c }, image: { image: IMAGE }, command: exitsWhenTold('go', code), log_path: `${c}.log` }));
        const id = await ok(address(), 'create', pod, cfg, path);
        await ok(address(), 'start', id);
        names.set(id, c);
        pids[c] = json(await ok(address(), 'inspect', id)).info.pid;
      }
      // quick exits while the daemon is down, slow once it is back.
      await restart(async () => {
        letExit(pids.quick, 'go');
        await processGone(pids.quick);
      });
      const events = await CrictlEvents.start(address(), 500);
      letExit(pids.slow, 'go');
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
      () => bed.containerd.address,
      (whileDown) => bed.restartContainerd(2500, whileDown),
      'restart-c',
    );
    expect(reference).toEqual([
      { what: 'STOPPED slow', pod: { state: 'SANDBOX_READY', ip: true }, containers: ['quick:CONTAINER_EXITED', 'slow:CONTAINER_EXITED'] },
      { what: 'STOPPED pod', pod: { state: 'SANDBOX_NOTREADY', ip: true }, containers: ['quick:CONTAINER_EXITED', 'slow:CONTAINER_EXITED'] },
    ]);
    const ours = await run(
      () => bed.berthd.address,
      async (whileDown) => {
        await bed.berthd.kill('SIGKILL');
        await whileDown();
        await new Promise((r) => setTimeout(r, 2500));
        await bed.berthd.restart();
      },
      'restart-b',
    );
    expect(ours).toEqual(reference);
  });
});
