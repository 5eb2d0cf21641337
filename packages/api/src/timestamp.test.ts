import { Image } from './gen/containerd/services/images/v1/images';
import { GO_ZERO_TIME, GO_ZERO_TIME_SECONDS, isZeroTime, orZeroTime } from './timestamp';

describe('Go zero time helpers', () => {
  it('GO_ZERO_TIME is 0001-01-01T00:00:00Z', () => {
    expect(GO_ZERO_TIME.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(GO_ZERO_TIME.getTime()).toBe(GO_ZERO_TIME_SECONDS * 1000);
    expect(GO_ZERO_TIME_SECONDS).toBe(-62135596800);
  });

  it.each([
    ['undefined', undefined, true],
    ['the Go zero time', new Date('0001-01-01T00:00:00Z'), true],
    ['the Unix epoch (an empty Timestamp)', new Date(0), true],
    ['a real time', new Date('2024-05-01T12:00:00Z'), false],
    ['one millisecond after the Go zero time', new Date(GO_ZERO_TIME_SECONDS * 1000 + 1), false],
  ])('isZeroTime(%s) is %s', (_name, d, zero) => {
    expect(isZeroTime(d)).toBe(zero);
  });

  it('orZeroTime keeps real times and replaces unset ones with a fresh Go zero time', () => {
    const real = new Date('2024-05-01T12:00:00Z');
    expect(orZeroTime(real)).toBe(real);
    const a = orZeroTime(undefined);
    expect(a.getTime()).toBe(GO_ZERO_TIME.getTime());
    expect(a).not.toBe(GO_ZERO_TIME);
    expect(orZeroTime(new Date(0)).getTime()).toBe(GO_ZERO_TIME.getTime());
  });

  it('matches what ts-proto decodes for absent, empty and Go-zero Timestamps', () => {
    // Image.created_at is field 7: absent, present-empty (0x3a 0x00), and Go zero time.
    const absent = Image.decode(Uint8Array.from([]));
    const empty = Image.decode(Uint8Array.from([0x3a, 0x00]));
    const goZero = Image.decode(Image.encode({ name: '', labels: {}, createdAt: GO_ZERO_TIME }).finish());
    expect(absent.createdAt).toBeUndefined();
    expect(empty.createdAt?.getTime()).toBe(0);
    expect(goZero.createdAt?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
    for (const m of [absent, empty, goZero]) expect(isZeroTime(m.createdAt)).toBe(true);
  });
});
