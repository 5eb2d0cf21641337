/** Nanoseconds per unit, for the units Go's time.ParseDuration accepts (both micro signs included). */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 MICRO SIGN
  'μs': 1_000n, // U+03BC GREEK SMALL LETTER MU
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go's Duration is an int64 count of nanoseconds; anything longer is an error there too. */
const MAX_NS = (1n << 63n) - 1n;

/** One component: digits, an optional fraction, a unit (`1`, `.5`, `1.` are allowed numbers). */
const COMPONENT = /(\d*)(?:\.(\d*))?([^\d.]+)/y;

/**
 * Parses a Go duration string (`"1s"`, `"500ms"`, `"1m30s"`, `"1.5h"`, `"-2s"`, `"0"`) into
 * milliseconds, possibly fractional (`"100us"` is 0.1). Returns undefined when the text is not a
 * valid Go duration. Fractions finer than a nanosecond are truncated, as Go does.
 */
export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return undefined;

  let total = 0n;
  for (let at = 0; at < rest.length; ) {
    COMPONENT.lastIndex = at;
    const m = COMPONENT.exec(rest);
    if (!m) return undefined;
    const [whole, int, frac, unit] = m;
    if (int === '' && !frac) return undefined; // "." or a bare unit has no number
    const perUnit = UNIT_NS[unit];
    if (perUnit === undefined) return undefined;
    total += BigInt(int || '0') * perUnit;
    if (frac) total += (BigInt(frac) * perUnit) / 10n ** BigInt(frac.length);
    if (total > MAX_NS) return undefined;
    at += whole.length;
  }
  const ms = Number(total) / 1e6;
  return negative ? -ms : ms;
}
