/**
 * The lease labels the collector reads (containerd's names). `containerd.io/gc.root` and the
 * `gc.ref` label families belong to the kinds that answer them (see GcKind in @berth/metadata).
 */
export { GC_ROOT } from '@berth/metadata';
export const GC_EXPIRE = 'containerd.io/gc.expire';
export const GC_FLAT = 'containerd.io/gc.flat';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Parses a `containerd.io/gc.expire` value (RFC 3339) to milliseconds since the epoch;
 * undefined when it is not a valid time, which containerd treats as no expiry.
 */
export function parseExpiry(value: string | undefined): number | undefined {
  if (value === undefined || !RFC3339.test(value)) return undefined;
  // Date.parse takes at most millisecond precision; RFC 3339 allows nanoseconds.
  const ms = Date.parse(value.toUpperCase().replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? undefined : ms;
}
