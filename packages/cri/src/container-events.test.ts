import { getEventListeners } from 'node:events';
import { isResourceExhausted } from '@berth/errdefs';
import { createLogger } from '@berth/log';
import { type ContainerEvent, ContainerEvents, type ContainerEventType, type PodSnapshot } from './container-events';
import type { CriContainer } from './container-service';

/** A pod snapshot that names only what the tests look at: the containers' ids. */
const pod = (...ids: string[]): PodSnapshot => ({ containers: ids.map((id) => ({ container: { id } as CriContainer })) });

async function take(it: AsyncIterable<ContainerEvent>, n: number): Promise<ContainerEvent[]> {
  const out: ContainerEvent[] = [];
  if (n === 0) return out;
  for await (const e of it) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

const brief = (e: ContainerEvent) => `${e.type.replace(/^CONTAINER_|_EVENT$/g, '')} ${e.containerId}`;

describe('ContainerEvents', () => {
  it('gives every subscriber every event in emit order, even when later snapshots finish first', async () => {
    // The first snapshot is the slowest: publication still follows emit order.
    const delays: Record<string, number> = { p: 30, c1: 0, c2: 10 };
    const events = new ContainerEvents({ snapshot: (id) => new Promise((r) => setTimeout(() => r(pod(id)), delays[id] ?? 0)) });
    const a = events.subscribe();
    const b = events.subscribe();
    const sequence: Array<[ContainerEventType, string]> = [
      ['CONTAINER_CREATED_EVENT', 'p'],
      ['CONTAINER_STARTED_EVENT', 'p'],
      ['CONTAINER_CREATED_EVENT', 'c1'],
      ['CONTAINER_STARTED_EVENT', 'c2'],
      ['CONTAINER_STOPPED_EVENT', 'c1'],
      ['CONTAINER_DELETED_EVENT', 'p'],
    ];
    const emitted = sequence.map(([type, id]) => events.emit(type, id, id));
    await Promise.all(emitted);
    const want = ['CREATED p', 'STARTED p', 'CREATED c1', 'STARTED c2', 'STOPPED c1', 'DELETED p'];
    expect((await take(a, 6)).map(brief)).toEqual(want);
    const fromB = await take(b, 6);
    expect(fromB.map(brief)).toEqual(want);
    // The snapshot went with its own event; the times are the emit times, in order.
    expect(fromB.map((e) => e.containers[0].container.id)).toEqual(['p', 'p', 'c1', 'c2', 'c1', 'p']);
    expect(fromB.every((e, i) => i === 0 || e.createdAt >= fromB[i - 1].createdAt)).toBe(true);
    expect(events.subscribers).toBe(0);
  });

  it('reads the synchronous part of a snapshot at emit time', async () => {
    let state = 'CREATED';
    const events = new ContainerEvents({
      snapshot: async () => {
        const seen = state; // read before the first await, as the container service does
        await new Promise((r) => setTimeout(r, 10));
        return { containers: [{ container: { id: seen } as CriContainer }] };
      },
    });
    const sub = events.subscribe();
    const first = events.emit('CONTAINER_CREATED_EVENT', 'c', 'p');
    state = 'RUNNING';
    const second = events.emit('CONTAINER_STARTED_EVENT', 'c', 'p');
    await Promise.all([first, second]);
    expect((await take(sub, 2)).map((e) => e.containers[0].container.id)).toEqual(['CREATED', 'RUNNING']);
  });

  it('sends an event without a pod when its snapshot fails, and goes on', async () => {
    const lines: string[] = [];
    const events = new ContainerEvents({
      snapshot: async (id) => {
        if (id === 'gone') throw new Error('no such sandbox');
        return pod(id);
      },
      logger: createLogger({ level: 'warn', write: (l) => lines.push(l) }),
    });
    const sub = events.subscribe();
    await events.emit('CONTAINER_DELETED_EVENT', 'gone', 'gone');
    await events.emit('CONTAINER_CREATED_EVENT', 'next', 'next');
    const got = await take(sub, 2);
    expect(got.map((e) => [brief(e), e.sandbox, e.containers.length])).toEqual([
      ['DELETED gone', undefined, 0],
      ['CREATED next', undefined, 1],
    ]);
    expect(lines).toEqual([expect.stringMatching(/level=warn msg="container event without pod status" container=gone sandbox=gone type=CONTAINER_DELETED_EVENT error="no such sandbox"/)]);
  });

  it('sends an event without a pod when its snapshot does not come in time, and does not hold up the next', async () => {
    const lines: string[] = [];
    const events = new ContainerEvents({
      snapshot: (id) => (id === 'stuck' ? new Promise<PodSnapshot>(() => undefined) : Promise.resolve(pod(id))),
      snapshotTimeoutMs: 50,
      logger: createLogger({ level: 'warn', write: (l) => lines.push(l) }),
    });
    const sub = events.subscribe();
    const stuck = events.emit('CONTAINER_STOPPED_EVENT', 'stuck', 'stuck');
    const next = events.emit('CONTAINER_CREATED_EVENT', 'next', 'next');
    await Promise.all([stuck, next]);
    expect((await take(sub, 2)).map((e) => [brief(e), e.containers.length])).toEqual([
      ['STOPPED stuck', 0],
      ['CREATED next', 1],
    ]);
    expect(lines).toEqual([expect.stringMatching(/msg="container event without pod status" container=stuck .*error="no pod status after 50 ms"/)]);
  });

  it('gives a new subscriber only what comes after it while another is subscribed', async () => {
    const events = new ContainerEvents({ snapshot: async (id) => pod(id) });
    const early = events.subscribe();
    await events.emit('CONTAINER_CREATED_EVENT', 'a', 'a');
    const late = events.subscribe();
    await events.emit('CONTAINER_CREATED_EVENT', 'b', 'b');
    expect((await take(early, 2)).map(brief)).toEqual(['CREATED a', 'CREATED b']);
    expect((await take(late, 1)).map(brief)).toEqual(['CREATED b']);
  });

  it('keeps events while nobody subscribes, for 5 minutes and at most holdLimit, and hands them to the next subscriber', async () => {
    let now = 1_000_000;
    const lines: string[] = [];
    const events = new ContainerEvents({ snapshot: async (id) => pod(id), holdLimit: 3, now: () => now, logger: createLogger({ level: 'debug', write: (l) => lines.push(l) }) });
    await events.emit('CONTAINER_CREATED_EVENT', 'old', 'old');
    now += 5 * 60_000; // 'old' is now 5 minutes old: discarded when the next is kept
    for (const id of ['a', 'b', 'c', 'd']) await events.emit('CONTAINER_CREATED_EVENT', id, id);
    // 'a' went over the limit of 3.
    expect(events.waiting).toBe(3);
    expect(events.stats).toEqual({ disconnected: 0, dropped: 0, discarded: 2 });
    expect(lines.filter((l) => l.includes('discarded'))).toEqual([
      expect.stringMatching(/level=debug msg="container event discarded" container=old type=CONTAINER_CREATED_EVENT/),
      expect.stringMatching(/container=a /),
    ]);
    const first = events.subscribe();
    const second = events.subscribe();
    expect(events.waiting).toBe(0);
    await events.emit('CONTAINER_STARTED_EVENT', 'd', 'd');
    expect((await take(first, 4)).map(brief)).toEqual(['CREATED b', 'CREATED c', 'CREATED d', 'STARTED d']);
    expect((await take(second, 1)).map(brief)).toEqual(['STARTED d']);
  });

  it('discards kept events that grew old before anyone subscribed', async () => {
    let now = 0;
    const events = new ContainerEvents({ snapshot: async (id) => pod(id), now: () => now });
    await events.emit('CONTAINER_CREATED_EVENT', 'x', 'x');
    now += 5 * 60_000 + 1;
    const sub = events.subscribe();
    expect(events.stats.discarded).toBe(1);
    await events.emit('CONTAINER_STARTED_EVENT', 'x', 'x');
    expect((await take(sub, 1)).map(brief)).toEqual(['STARTED x']);
  });

  it('disconnects a subscriber that falls queueLimit events behind with ResourceExhausted, without slowing the others', async () => {
    const lines: string[] = [];
    const events = new ContainerEvents({ snapshot: async (id) => pod(id), queueLimit: 5, logger: createLogger({ level: 'info', write: (l) => lines.push(l) }) });
    const stalled = events.subscribe();
    const reader = events.subscribe();
    const read: string[] = [];
    const reading = (async () => {
      for await (const e of reader) {
        read.push(e.containerId);
        if (read.length === 20) break;
      }
    })();
    for (let i = 0; i < 20; i++) {
      await events.emit('CONTAINER_CREATED_EVENT', `c${i}`, 'p');
      await new Promise((r) => setImmediate(r)); // the reader reads as it goes
    }
    await reading;
    expect(read).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
    // 5 queued, the 6th overflowed: all 6 dropped; the ones after it went to the reader only.
    expect(events.stats).toEqual({ disconnected: 1, dropped: 6, discarded: 0 });
    expect(lines).toEqual([expect.stringMatching(/level=warn msg="disconnected container event subscriber that fell behind" queued=5 type=CONTAINER_CREATED_EVENT container=c5/)]);
    // Its queue was discarded: the stalled reader gets the error first thing.
    const first = await stalled[Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => e);
    expect(isResourceExhausted(first)).toBe(true);
    expect(String(first)).toMatch(/container event subscriber fell behind: 5 events queued/);
    expect(events.subscribers).toBe(0);
  });

  it('drops a subscriber at once when its signal aborts, also while it waits, and leaves no listener', async () => {
    const events = new ContainerEvents({ snapshot: async (id) => pod(id) });
    const ac = new AbortController();
    const sub = events.subscribe(ac.signal);
    const waiting = take(sub, 1);
    expect(events.subscribers).toBe(1);
    ac.abort();
    expect(events.subscribers).toBe(0);
    expect(await waiting).toEqual([]);
    // Nothing kept for it: with nobody subscribed, the next event waits for the next subscriber.
    await events.emit('CONTAINER_CREATED_EVENT', 'after', 'after');
    expect(events.waiting).toBe(1);
    // A subscription closed by its consumer removes its abort listener.
    const ac2 = new AbortController();
    const sub2 = events.subscribe(ac2.signal);
    expect(getEventListeners(ac2.signal, 'abort')).toHaveLength(1);
    expect((await take(sub2, 1)).map(brief)).toEqual(['CREATED after']);
    expect(getEventListeners(ac2.signal, 'abort')).toHaveLength(0);
    expect(events.subscribers).toBe(0);
    // An already aborted signal gives an ended subscription.
    expect(await take(events.subscribe(AbortSignal.abort()), 1)).toEqual([]);
    expect(events.subscribers).toBe(0);
  });

  it('ends every subscription on close, and later ones at once', async () => {
    const events = new ContainerEvents({ snapshot: async (id) => pod(id) });
    const a = take(events.subscribe(), 1);
    const b = take(events.subscribe(), 1);
    events.close();
    expect(await Promise.all([a, b])).toEqual([[], []]);
    await events.emit('CONTAINER_CREATED_EVENT', 'x', 'x');
    expect(events.waiting).toBe(0);
    expect(await take(events.subscribe(), 1)).toEqual([]);
  });
});
