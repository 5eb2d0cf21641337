import { parseDuration } from './duration';

describe('parseDuration (Go time.ParseDuration, in milliseconds)', () => {
  it.each([
    ['0', 0],
    ['0s', 0],
    ['100ms', 100],
    ['1.5s', 1500],
    ['1h30m', 5_400_000],
    ['-2s', -2000],
    ['+10m', 600_000],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['.5s', 500],
    ['1h1m1s1ms', 3_661_001],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '10', 's', '1d', '1 s', '-', '1.5'])('refuses %j with Go\'s message', (text) => {
    expect(() => parseDuration(text)).toThrow(`time: invalid duration ${JSON.stringify(text)}`);
  });
});
