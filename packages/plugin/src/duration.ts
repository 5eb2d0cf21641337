import { InvalidArgumentError } from '@berth/errdefs';

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration as Go's time.ParseDuration does ("0s", "100ms", "1h30m", "1.5s", "-2s";
 * a bare "0" too) and returns milliseconds. InvalidArgument for anything else.
 */
export function parseDuration(text: string): number {
  const bad = () => new InvalidArgumentError(`time: invalid duration ${JSON.stringify(text)}`, { bare: true });
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw bad();
  let total = 0;
  const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m) throw bad();
    total += parseFloat(m[1]) * UNITS[m[2]];
    s = s.slice(m[0].length);
  }
  return sign * total;
}
