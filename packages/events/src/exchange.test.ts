import { ContainerCreate, Envelope, GO_ZERO_TIME, NamespaceCreate, TaskExit, packAny, unpackAny } from '@berth/api/events';
import { context } from '@berth/context';
import { isFailedPrecondition, isInvalidArgument, isResourceExhausted } from '@berth/errdefs';
import { Exchange, validateTopic } from './exchange';

const ctx = (namespace?: string) => context({ namespace });

async function take(it: AsyncIterable<Envelope>, n: number): Promise<Envelope[]> {
  const out: Envelope[] = [];
  if (n === 0) return out;
  for await (const e of it) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

describe('Exchange', () => {
  it('delivers envelopes in publish order with namespace, topic, time and bare type URLs', async () => {
    const ex = new Exchange();
    const sub = ex.subscribe(ctx(), []);
    const before = Date.now();
    await ex.publish(ctx('default'), '/namespaces/create', NamespaceCreate, { name: 'a', labels: {} });
    await ex.publish(ctx('other'), '/containers/create', ContainerCreate, { id: 'c1', image: 'busybox' });
    const got = await take(sub, 2);
    expect(got.map((e) => [e.namespace, e.topic, e.event?.typeUrl])).toEqual([
      ['default', '/namespaces/create', 'containerd.events.NamespaceCreate'],
      ['other', '/containers/create', 'containerd.events.ContainerCreate'],
    ]);
    expect(got[0].timestamp!.getTime()).toBeGreaterThanOrEqual(before);
    expect(unpackAny(got[1].event!)).toMatchObject({ id: 'c1', image: 'busybox' });
    expect(ex.subscribers).toBe(0);
  });

  it.each([
    [['namespace==b'], ['b:/x/one', 'b:/tasks/exit']],
    [['topic=="/x/two"'], ['a:/x/two']],
    [['event.id==c2'], ['a:/x/two']],
    [['event.container_id==t1'], ['b:/tasks/exit']],
    [['namespace==a,topic~=one', 'event.exit_status==137'], ['a:/x/one', 'b:/tasks/exit']],
  ])('filters %p', async (filters, want) => {
    const ex = new Exchange();
    const sub = ex.subscribe(ctx(), filters);
    await ex.publish(ctx('a'), '/x/one', ContainerCreate, { id: 'c1' });
    await ex.publish(ctx('b'), '/x/one', ContainerCreate, { id: 'c1' });
    await ex.publish(ctx('a'), '/x/two', ContainerCreate, { id: 'c2' });
    await ex.publish(ctx('b'), '/tasks/exit', TaskExit, { containerId: 't1', id: 't1', exitStatus: 137 });
    sub.close();
    const got: string[] = [];
    for await (const e of sub) got.push(`${e.namespace}:${e.topic}`);
    expect(got).toEqual(want);
  });

  it('refuses a publish without a namespace, as containerd words it', async () => {
    const err = await new Exchange().publish(ctx(), '/x', ContainerCreate, {}).catch((e) => e);
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toBe('failed publishing event: namespace is required: failed precondition');
  });

  it.each([
    ['bad', `envelope topic "bad": must start with '/': invalid argument`],
    ['', 'envelope topic "": must not be empty: invalid argument'],
    ['/', 'envelope topic "/": must have at least one component: invalid argument'],
    ['/a//b', 'envelope topic "/a//b": failed validation on component "": identifier must not be empty: invalid argument'],
  ])('refuses topic %p', (topic, message) => {
    let err: unknown;
    try {
      validateTopic(topic);
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toBe(message);
  });

  it('forwards envelopes keeping their namespace and time, and refuses a zero time', async () => {
    const ex = new Exchange();
    const sub = ex.subscribe(ctx(), []);
    const when = new Date('2024-01-02T03:04:05Z');
    await ex.forward(ctx(), { timestamp: when, namespace: 'shim', topic: '/tasks/exit', event: packAny(TaskExit, { id: 'x' }) });
    expect((await take(sub, 1))[0]).toMatchObject({ timestamp: when, namespace: 'shim', topic: '/tasks/exit' });
    const err = await ex.forward(ctx(), { timestamp: GO_ZERO_TIME, namespace: 'shim', topic: '/tasks/exit', event: undefined }).catch((e) => e);
    expect(err.message).toBe('timestamp must be set on forwarded event: invalid argument');
  });

  it('disconnects a subscriber that falls behind without slowing the publisher or others', async () => {
    const ex = new Exchange({ queueLimit: 10 });
    const slow = ex.subscribe(ctx(), []);
    const fast = ex.subscribe(ctx(), []);
    const seen: number[] = [];
    const reading = (async () => {
      for await (const e of fast) {
        seen.push(Number((unpackAny(e.event!) as { id: string }).id));
        if (seen.length === 50) break;
      }
    })();
    for (let i = 0; i < 50; i++) {
      await ex.publish(ctx('a'), '/x', ContainerCreate, { id: String(i) });
      await new Promise((r) => setImmediate(r));
    }
    await reading;
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const err = await (async () => {
      try {
        for await (const _ of slow) void _;
      } catch (e) {
        return e;
      }
    })();
    expect(isResourceExhausted(err)).toBe(true);
  });

  it('ends a subscription when its context is cancelled', async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    const sub = ex.subscribe(context({ signal: ac.signal }), []);
    const done = take(sub, 5);
    ac.abort();
    expect(await done).toEqual([]);
    expect(ex.subscribers).toBe(0);
  });
});
