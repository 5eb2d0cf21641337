import { parseGoDuration } from './hosts-config-duration';

describe('parseGoDuration', () => {
  it.each([
    ['0', 0],
    ['1s', 1000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['1.1s', 1100],
    ['.5s', 500],
    ['1.s', 1000],
    ['100us', 0.1],
    ['100µs', 0.1],
    ['100μs', 0.1],
    ['1500000ns', 1.5],
    ['1h2m3s4ms', 3_723_004],
    ['-2s', -2000],
    ['+2s', 2000],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it.each(['', '1', 's', '.s', '1d', '1 s', '1s ', '1S', '--1s', '1.2.3s', '3000000h'])('rejects %j', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });
});
