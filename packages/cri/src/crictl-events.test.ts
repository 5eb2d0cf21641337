/**
 * GetContainerEvents through `crictl events` (cri-tools v1.37) against a real berthd: the events
 * of a pod's life and of its containers' (created, started, exited on their own, stopped,
 * removed), with the pod's and the containers' statuses; several subscribers; a subscriber that
 * leaves; events while nobody listens; a berthd restart. crictl-events-containerd2.test.ts
 * compares the same life with containerd 2.4.2's.
 */
import { ContainerConfig, PodSandboxConfig, RuntimeServiceService } from '@berth/api/cri';
import * as grpc from '@grpc/grpc-js';
import { BUSYBOX as IMAGE, useCriTestBed } from './test-bed';
import { CrictlEvents, LIFECYCLE_EVENT_COUNTS, eventShape, exitsWhenTold, json, letExit, lifecycleScenario, processGone } from './test-support';

jest.setTimeout(300_000);

const bed = useCriTestBed({ name: 'events', pullBusybox: true, pod: { prefix: 'ev' } });
const ok = async (...args: string[]): Promise<string> => (await bed.ok(...args)).trim();
const podConfig = () => bed.pod().path;
const containerConfig = (name: string, command: string[]) => bed.containerConfig(name, { command });

/** `TYPE name` of each event, with the ids named. */
const whats = (events: Array<Record<string, any>>, names: Map<string, string>) => events.map((e) => eventShape(e, names).what);

describe('crictl events', () => {
  it("sends a pod's life as containerd 2.4.2 does, each event with the pod's status and its containers' at that moment", async () => {
    const { steps, raw } = await lifecycleScenario(bed.berthd.address, { dir: bed.world.dir, image: IMAGE, cgroupParent: bed.cgroupParent, podName: 'life', expected: LIFECYCLE_EVENT_COUNTS });
    const states = steps.map((s) => [s.step, s.events.map((e) => [e.what, e.pod && `${e.pod.state}${e.pod.ip ? '+ip' : ''}`, e.containers.join(' ')])]);
    expect(states).toEqual([
      ['runp', [['CREATED pod', 'SANDBOX_READY+ip', ''], ['STARTED pod', 'SANDBOX_READY+ip', '']]],
      ['create c1', [['CREATED c1', 'SANDBOX_READY+ip', 'c1:CONTAINER_CREATED']]],
      ['start c1', [['STARTED c1', 'SANDBOX_READY+ip', 'c1:CONTAINER_RUNNING']]],
      ['create c2', [['CREATED c2', 'SANDBOX_READY+ip', 'c1:CONTAINER_RUNNING c2:CONTAINER_CREATED']]],
      ['start c2', [['STARTED c2', 'SANDBOX_READY+ip', 'c1:CONTAINER_RUNNING c2:CONTAINER_RUNNING']]],
      ['c2 exits', [['STOPPED c2', 'SANDBOX_READY+ip', 'c1:CONTAINER_RUNNING c2:CONTAINER_EXITED']]],
      ['stop c1', [['STOPPED c1', 'SANDBOX_READY+ip', 'c1:CONTAINER_EXITED c2:CONTAINER_EXITED']]],
      ['stop c1 again', []],
      ['rm c2', [['DELETED c2', 'SANDBOX_READY+ip', 'c1:CONTAINER_EXITED']]],
      ['create c3', [['CREATED c3', 'SANDBOX_READY+ip', 'c1:CONTAINER_EXITED c3:CONTAINER_CREATED']]],
      ['start c3', [['STARTED c3', 'SANDBOX_READY+ip', 'c1:CONTAINER_EXITED c3:CONTAINER_RUNNING']]],
      // The pod's containers stop first; the pod's own event still shows its IP (the network
      // is torn down after it).
      ['stopp', [['STOPPED c3', 'SANDBOX_READY+ip', 'c1:CONTAINER_EXITED c3:CONTAINER_EXITED'], ['STOPPED pod', 'SANDBOX_NOTREADY+ip', 'c1:CONTAINER_EXITED c3:CONTAINER_EXITED']]],
      ['rmp', [['DELETED c1', 'SANDBOX_NOTREADY', 'c3:CONTAINER_EXITED'], ['DELETED c3', 'SANDBOX_NOTREADY', ''], ['DELETED pod', 'SANDBOX_NOTREADY', '']]],
    ]);
    // The statuses are PodSandboxStatus's and ContainerStatus's: c2's exit code and reason, the
    // ids; the times are the events' own, in order.
    const c2Stopped = raw.find((e) => e.containerEventType === 'CONTAINER_STOPPED_EVENT' && e.containersStatuses.some((s: any) => s.id === e.containerId && s.metadata.name === 'c2'))!;
    expect(c2Stopped.containersStatuses.find((s: any) => s.id === c2Stopped.containerId)).toMatchObject({ exitCode: 3, reason: 'Error', image: { image: IMAGE }, imageId: expect.stringMatching(/^sha256:/) });
    const podId = raw[0].containerId;
    expect(raw.every((e) => e.podSandboxStatus.id === podId && e.podSandboxStatus.metadata.name === 'life')).toBe(true);
    const times = raw.map((e) => BigInt(e.createdAt));
    expect(times.every((t, i) => t > 0n && (i === 0 || t >= times[i - 1]))).toBe(true);
  });

  it('gives several subscribers the same events in the same order, drops one that leaves at once, and keeps what comes while nobody listens for the next', async () => {
    // A pod run and removed: 4 events, each with the pod's status.
    const probe = async () => {
      const id = await ok('runp', podConfig());
      await ok('rmp', '-f', id);
      return id;
    };
    // Subscribers proven live in turn: a alone gets a probe's events even if it subscribed after
    // them (they wait for the first subscriber); b, once a is live, misses what came before it
    // subscribed, so probes go on until one reaches it.
    const a = await CrictlEvents.start(bed.berthd.address);
    await a.waitForPod(await probe(), 4);
    const b = await CrictlEvents.start(bed.berthd.address);
    for (let i = 0; ; i++) {
      const p = await probe();
      await a.waitForPod(p, 4);
      if (b.ofPod(p).length > 0 || i === 20) break;
    }
    const firstPod = podConfig();
    const first = await ok('runp', firstPod);
    const c = await ok('create', first, containerConfig('one', ['sleep', '1000']), firstPod);
    await ok('start', c);
    await ok('rmp', '-f', first);
    const names = new Map([
      [first, 'pod'],
      [c, 'one'],
    ]);
    const want = ['CREATED pod', 'STARTED pod', 'CREATED one', 'STARTED one', 'STOPPED one', 'STOPPED pod', 'DELETED one', 'DELETED pod'];
    expect(whats(await a.waitForPod(first, 8), names)).toEqual(want);
    expect(whats(await b.waitForPod(first, 8), names)).toEqual(want);
    expect(b.ofPod(first).map((e) => e.createdAt)).toEqual(a.ofPod(first).map((e) => e.createdAt));

    // a leaves; b goes on alone.
    // (crictl ends with exit code 1 and "interrupted: context canceled", whatever the daemon.)
    await a.stop();
    const aSaw = a.events.length;
    const second = await ok('runp', podConfig());
    await ok('rmp', '-f', second);
    expect(whats(await b.waitForPod(second, 4), new Map([[second, 'pod']]))).toEqual(['CREATED pod', 'STARTED pod', 'STOPPED pod', 'DELETED pod']);
    expect(a.events).toHaveLength(aSaw);

    // b leaves too: nobody listens, so the next pod's events wait for the next subscriber.
    await b.stop();
    const third = await ok('runp', podConfig());
    await ok('rmp', '-f', third);
    const late = await CrictlEvents.start(bed.berthd.address);
    expect(whats(await late.waitFor(4), new Map([[third, 'pod']]))).toEqual(['CREATED pod', 'STARTED pod', 'STOPPED pod', 'DELETED pod']);
    await new Promise((r) => setTimeout(r, 300));
    expect(late.events).toHaveLength(4);
    await late.stop();
  });

  it('after a restart (kill -9): no event for a container that exited while berthd was down (as containerd), STOPPED for one that exits later and for a pause that dies', async () => {
    const pod = podConfig();
    const podId = await ok('runp', pod);
    const pausePid: number = json(await ok('inspectp', podId)).info.pid;
    const quick = await ok('create', podId, containerConfig('quick', exitsWhenTold('go', 3)), pod);
    const slow = await ok('create', podId, containerConfig('slow', exitsWhenTold('go', 4)), pod);
    await ok('start', quick);
    await ok('start', slow);
    const pid = async (id: string): Promise<number> => json(await ok('inspect', id)).info.pid;
    const [quickPid, slowPid] = [await pid(quick), await pid(slow)];
    await bed.berthd.kill('SIGKILL');
    letExit(quickPid, 'go');
    await processGone(quickPid);
    await new Promise((r) => setTimeout(r, 2500));
    await bed.berthd.restart();
    // Nobody subscribed since the restart: slow's event would wait for the first subscriber.
    const events = await CrictlEvents.start(bed.berthd.address, 500);
    letExit(slowPid, 'go');
    const names = new Map([
      [podId, 'pod'],
      [quick, 'quick'],
      [slow, 'slow'],
    ]);
    // quick's exit was found at the restart: no event. slow exits while berthd runs.
    const [slowStopped] = await events.waitFor(1);
    expect(eventShape(slowStopped, names)).toMatchObject({ what: 'STOPPED slow', pod: { state: 'SANDBOX_READY', ip: true }, containers: ['quick:CONTAINER_EXITED', 'slow:CONTAINER_EXITED'] });
    expect(slowStopped.containersStatuses.find((s: any) => s.id === slow).exitCode).toBe(4);
    // The pause process dies on its own: the pod's STOPPED, NOTREADY.
    process.kill(pausePid, 'SIGKILL');
    const [, podStopped] = await events.waitFor(2);
    expect(eventShape(podStopped, names)).toMatchObject({ what: 'STOPPED pod', pod: { state: 'SANDBOX_NOTREADY' } });
    // stopp finds the pause gone: no second STOPPED. rmp removes the containers (in no set
    // order, as in containerd), then the pod.
    await ok('stopp', podId);
    await ok('rmp', podId);
    const deleted = whats((await events.waitFor(5)).slice(2), names);
    expect([...deleted.slice(0, 2).sort(), deleted[2]]).toEqual(['DELETED quick', 'DELETED slow', 'DELETED pod']);
    await new Promise((r) => setTimeout(r, 300));
    expect(events.events).toHaveLength(5);
    await events.stop();
  });

  it('ends the open streams when berthd stops, so that they do not hold up its shutdown', async () => {
    const events = await CrictlEvents.start(bed.berthd.address);
    const t0 = Date.now();
    await bed.berthd.kill('SIGTERM'); // in-flight calls get 10 s before they are cancelled
    expect(Date.now() - t0).toBeLessThan(8000);
    await bed.berthd.restart();
    const end = Date.now() + 5000;
    while (!events.exited && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const { code, stderr } = await events.stop();
    // The stream ended normally (EOF), and crictl with it.
    expect({ exited: events.exited, code }).toEqual({ exited: true, code: 0 });
    expect(stderr).toMatch(/"container events stream is closed" err="EOF"/);
  });

  it('disconnects a subscriber that stops reading once 100 events wait for it (ResourceExhausted), while the calls and the other subscribers go on', async () => {
    const runtime = bed.berthd.client(RuntimeServiceService);
    // Every event carries the pod's status, so a 60 kB annotation makes each one fill the
    // client's HTTP/2 window: after a few, the events wait in berthd, in the subscriber's queue.
    bed.seq += 1;
    const podConfigValue = PodSandboxConfig.fromPartial({
      metadata: { name: `ev-slow-${bed.seq}`, namespace: 'berth-test', uid: `ev-slow-${process.pid}-${bed.seq}`, attempt: 0 },
      annotations: { 'berth.test/big': 'x'.repeat(60_000) },
      linux: { cgroupParent: bed.cgroupParent },
    });
    // A raw stream whose messages stay undecoded bytes: it is only there to stop reading.
    const channel = new grpc.Client(`unix:${bed.berthd.address}`, grpc.credentials.createInsecure());
    const raw = channel.makeServerStreamRequest('/runtime.v1.RuntimeService/GetContainerEvents', () => Buffer.alloc(0), (b: Buffer) => b, {}) as grpc.ClientReadableStream<Buffer>;
    const stalled = raw[Symbol.asyncIterator]();
    const first = stalled.next();
    const reader = await CrictlEvents.start(bed.berthd.address);
    const { podSandboxId } = await runtime.runPodSandbox({ config: podConfigValue, runtimeHandler: '' });
    await first; // it is subscribed, and reads no more from here on
    const t0 = Date.now();
    const rounds = 80;
    for (let i = 0; i < rounds; i++) {
      const config = ContainerConfig.fromPartial({ metadata: { name: `n${i}`, attempt: 0 }, image: { image: IMAGE } });
      const { containerId } = await runtime.createContainer({ podSandboxId, config, sandboxConfig: podConfigValue });
      await runtime.removeContainer({ containerId });
    }
    const total = 2 + rounds * 2;
    // The reading subscriber got every one; the calls never waited for the stalled one.
    await reader.waitFor(total);
    const perRound = (Date.now() - t0) / rounds;
    await reader.stop();
    // The stalled subscriber gets what was on its way, then the error.
    let got = 1;
    const failure = await (async () => {
      for (;;) {
        const r = await stalled.next();
        if (r.done) return undefined;
        got++;
      }
    })().catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'container event subscriber fell behind: 100 events queued' });
    expect(got).toBeLessThan(total);
    expect(bed.berthd.output).toMatch(/msg="disconnected container event subscriber that fell behind" .*queued=100/);
    expect(perRound).toBeLessThan(2000);
    channel.close();
    await runtime.removePodSandbox({ podSandboxId });
  });
});
