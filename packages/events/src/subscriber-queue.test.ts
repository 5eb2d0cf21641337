import { SubscriberQueue } from './subscriber-queue';

describe('SubscriberQueue', () => {
  it('hands items over in order, and ends after what is queued once closed', async () => {
    const q = new SubscriberQueue<number>(10, () => undefined);
    for (const n of [0, 1, 2]) q.deliver(n);
    q.close();
    const got: number[] = [];
    for await (const n of q) got.push(n);
    expect(got).toEqual([0, 1, 2]);
  });

  it('wakes a waiting reader; falsy items are items', async () => {
    const q = new SubscriberQueue<number>(10, () => undefined);
    const it = q[Symbol.asyncIterator]();
    const next = it.next();
    q.deliver(0);
    expect(await next).toEqual({ value: 0, done: false });
  });

  it('refuses past its limit unless forced; fail discards the queue and the reader gets the error', async () => {
    let closed = 0;
    const q = new SubscriberQueue<string>(2, () => void (closed += 1));
    expect([q.deliver('a'), q.deliver('b'), q.deliver('c')]).toEqual([true, true, false]);
    expect(q.deliver('backlog', true)).toBe(true);
    expect(q.fail(new Error('behind'))).toBe(3);
    await expect(q[Symbol.asyncIterator]().next()).rejects.toThrow('behind');
    expect(closed).toBe(1);
    q.close();
    expect(closed).toBe(1);
  });

  it('runs onClose when the reader stops early', async () => {
    let closed = false;
    const q = new SubscriberQueue<number>(10, () => void (closed = true));
    q.deliver(1);
    q.deliver(2);
    for await (const _n of q) break;
    expect([closed, q.closed, q.deliver(3)]).toEqual([true, true, true]);
  });
});
