import { ContainerCreate, Envelope, GO_ZERO_TIME, ImageCreate, NamespaceCreate, TaskCreate, TaskExit, TaskIO, packAny, unpackAny } from '@berth/api/events';
import { context } from '@berth/context';
import { isFailedPrecondition, isInvalidArgument, isResourceExhausted } from '@berth/errdefs';
import { parseAll } from '@berth/filters';
import { createLogger } from '@berth/log';
import { collectEvents, EventRecorder } from './event-recorder';
import { Exchange, envelopeAdaptor, validateTopic } from './exchange';

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
    [['namespace==a,topic~=one', 'event.id==t1'], ['a:/x/one', 'b:/tasks/exit']],
    // Numbers are not filterable in containerd (its generated adaptors skip them).
    [['event.exit_status==137'], []],
    [['event.containerId==t1'], []],
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
    const bad = await new Exchange().publish(ctx('default'), 'x', ContainerCreate, {}).catch((e) => e);
    expect(bad.message).toBe(`envelope topic "x": must start with '/': invalid argument`);
    const none = await new Exchange().publishAny(ctx('default'), '/x', undefined).catch((e) => e);
    expect([isInvalidArgument(none), none.message]).toEqual([true, 'failed publishing event: event must be set: invalid argument']);
  });

  it('publishes an Any verbatim, whatever its type URL', async () => {
    const ex = new Exchange();
    const sub = ex.subscribe(ctx(), ['event.id==x', 'topic=="/raw"']);
    const raw = { typeUrl: 'type.googleapis.com/foo.Bar', value: Buffer.from([1, 2, 3]) };
    await ex.publishAny(ctx('n'), '/raw', raw);
    expect((await take(sub, 1))[0].event).toEqual(raw);
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
  });

  it.each([
    [{ namespace: '' }, 'event envelope has invalid namespace: identifier must not be empty: invalid argument'],
    [{ namespace: 'Bad!', topic: 'x', timestamp: GO_ZERO_TIME }, 'event envelope has invalid namespace: identifier "Bad!" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument'],
    [{ topic: 'x', timestamp: GO_ZERO_TIME }, `envelope topic "x": must start with '/': invalid argument`],
    [{ timestamp: GO_ZERO_TIME }, 'timestamp must be set on forwarded event: invalid argument'],
    [{ timestamp: undefined }, 'timestamp must be set on forwarded event: invalid argument'],
    [{ event: undefined }, 'event must be set on forwarded event: invalid argument'],
  ])('refuses to forward %p as containerd words it', async (patch, message) => {
    const env = { timestamp: new Date(), namespace: 'shim', topic: '/tasks/exit', event: packAny(TaskExit, { id: 'x' }), ...patch };
    const err = await new Exchange().forward(ctx(), env).catch((e) => e);
    expect([isInvalidArgument(err), err.message]).toEqual([true, message]);
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

  it('bounds a stalled subscriber to its queue, discards it on disconnect and logs the dropped count', async () => {
    const lines: string[] = [];
    const ex = new Exchange({ queueLimit: 10, logger: createLogger({ level: 'info', write: (l) => lines.push(l) }) });
    const stalled = ex.subscribe(ctx(), []);
    const filtered = ex.subscribe(ctx(), ['topic=="/y"']);
    for (let i = 0; i < 25; i++) await ex.publish(ctx('a'), '/x', ContainerCreate, { id: String(i) });
    // 10 queued, the 11th overflowed: all 11 dropped; the 14 after it went to nobody.
    expect(ex.stats).toEqual({ disconnected: 1, dropped: 11 });
    expect(ex.subscribers).toBe(1);
    const again = ex.subscribe(ctx(), []);
    for (let i = 0; i < 12; i++) await ex.publish(ctx('a'), '/x', ContainerCreate, { id: String(i) });
    expect(ex.stats).toEqual({ disconnected: 2, dropped: 22 });
    expect(lines.filter((l) => l.includes('fell behind'))).toEqual([
      expect.stringMatching(/level=warn msg="disconnected event subscriber that fell behind" queued=10 dropped=11 topic=\/x disconnected_total=1 dropped_total=11/),
      expect.stringMatching(/queued=10 dropped=11 topic=\/x disconnected_total=2 dropped_total=22/),
    ]);
    // The queued envelopes were discarded: the stalled reader gets the error first thing.
    const first = await stalled[Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => e);
    expect(isResourceExhausted(first)).toBe(true);
    expect(isResourceExhausted(await again[Symbol.asyncIterator]().next().catch((e: unknown) => e))).toBe(true);
    filtered.close();
  });

  it('refuses a bad filter as containerd words it', () => {
    expect(() => new Exchange().subscribe(ctx(), ['topic=='])).toThrow(
      'failed parsing subscription filters: filters: parse error: [topic==]: expected value or quoted: invalid argument',
    );
  });

  it('ends every subscription on close, and later ones at once', async () => {
    const ex = new Exchange();
    const a = take(ex.subscribe(ctx(), []), 3);
    ex.close();
    expect(await a).toEqual([]);
    expect(await take(ex.subscribe(ctx(), []), 1)).toEqual([]);
    expect(ex.subscribers).toBe(0);
  });

  it('does not leave abort listeners behind on a long-lived signal', async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    let listeners = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    const remove = ac.signal.removeEventListener.bind(ac.signal);
    ac.signal.addEventListener = ((...args: Parameters<typeof add>) => (listeners++, add(...args))) as typeof add;
    ac.signal.removeEventListener = ((...args: Parameters<typeof remove>) => (listeners--, remove(...args))) as typeof remove;
    for (let i = 0; i < 100; i++) ex.subscribe(context({ signal: ac.signal }), []).close();
    expect(listeners).toBe(0);
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

describe('envelopeAdaptor matches event fields as containerd 1.6 does (observed against it)', () => {
  const envs: Array<[string, Envelope]> = [
    ['/exit', { timestamp: new Date(), namespace: 'n', topic: '/exit', event: packAny(TaskExit, { containerId: 't1', id: 't1', pid: 5, exitStatus: 137, exitedAt: new Date() }) }],
    ['/create', { timestamp: new Date(), namespace: 'n', topic: '/create', event: packAny(TaskCreate, { containerId: 't2', io: { stdin: 'in', terminal: false }, pid: 5 }) }],
    ['/io', { timestamp: new Date(), namespace: 'n', topic: '/io', event: packAny(TaskIO, { stdin: 'in', terminal: false }) }],
    ['/ns', { timestamp: new Date(), namespace: 'n', topic: '/ns', event: packAny(NamespaceCreate, { name: 'n1', labels: { k: 'v', 'a.b': 'v' } }) }],
    ['/ctr', { timestamp: new Date(), namespace: 'n', topic: '/ctr', event: packAny(ContainerCreate, { id: 'c', image: 'i', runtime: { name: 'rc' } }) }],
    ['/img', { timestamp: new Date(), namespace: 'n', topic: '/img', event: packAny(ImageCreate, { name: 'nimg', labels: { k: 'v' } }) }],
    ['/raw', { timestamp: new Date(), namespace: 'n', topic: '/raw', event: { typeUrl: 'foo.Bar', value: Buffer.from([0x0a, 0x01, 0x41]) } }],
  ];
  it.each([
    ['event.exit_status==137', []],
    ['event.pid==5', []],
    ['event.exited_at', []],
    ['event.io.terminal==false', ['/create']],
    ['event.terminal==false', ['/io']],
    ['event.terminal', ['/io']],
    ['event.labels.k==v', ['/ns', '/img']],
    ['event.labels.a.b==v', ['/ns']],
    ['event.runtime.name==rc', ['/ctr']],
    ['event.id', ['/exit', '/ctr']],
    ['event.container_id==t1', ['/exit']],
    ['event.containerId==t1', []],
    ['event.io.stdin==in', ['/create']],
    ['event.name~=^n', ['/ns', '/img']],
    ['event', []],
  ])('%s', (filter, want) => {
    const f = parseAll([filter]);
    expect(envs.filter(([, e]) => f.match(envelopeAdaptor(e))).map(([t]) => t)).toEqual(want);
  });
});

describe('EventRecorder and collectEvents', () => {
  it('record what a piece of code published, decoded', async () => {
    const ex = new Exchange();
    const events = await collectEvents(ex, async () => {
      await ex.publish(ctx('a'), '/namespaces/create', NamespaceCreate, { name: 'a', labels: { x: 'y' } });
    });
    expect(events).toEqual([{ namespace: 'a', topic: '/namespaces/create', typeUrl: 'containerd.events.NamespaceCreate', event: { name: 'a', labels: { x: 'y' } } }]);
    const rec = new EventRecorder(ex, ['topic~=^/containers/']);
    await ex.publish(ctx('a'), '/namespaces/delete', NamespaceCreate, { name: 'a' });
    await ex.publish(ctx('a'), '/containers/delete', ContainerCreate, { id: 'c' });
    expect((await rec.take()).map((e) => e.topic)).toEqual(['/containers/delete']);
    expect(await rec.take()).toEqual([]);
    await rec.close();
    expect(ex.subscribers).toBe(0);
  });
});
