import { RequestCache } from './request-cache';

describe('RequestCache', () => {
  it('gives 8-character URL-safe tokens that work once', () => {
    const c = new RequestCache<string>();
    const tokens = Array.from({ length: 200 }, (_, i) => c.insert(`r${i}`));
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(new Set(tokens).size).toBe(200);
    expect(c.consume(tokens[7])).toBe('r7');
    expect(c.consume(tokens[7])).toBeUndefined();
    expect(c.consume('nope')).toBeUndefined();
  });

  it('forgets a request after its TTL, and drops the oldest when full', () => {
    let now = 1000;
    const c = new RequestCache<string>(60_000, 3, () => now);
    const a = c.insert('a');
    now += 59_999;
    expect(c.consume(a)).toBe('a');
    const b = c.insert('b');
    now += 60_000;
    expect(c.consume(b)).toBeUndefined();
    const [x, y, z, w] = ['x', 'y', 'z', 'w'].map((v) => c.insert(v));
    expect(c.size).toBe(3);
    expect([c.consume(x), c.consume(y), c.consume(z), c.consume(w)]).toEqual([undefined, 'y', 'z', 'w']);
  });
});
