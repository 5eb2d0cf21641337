/**
 * Helpers for containerd's "unset" times.
 *
 * Go peers encode an unset `time.Time` as 0001-01-01T00:00:00Z (seconds = -62135596800), for
 * example `Process.exited_at` of a running task. With ts-proto's `useDate=true`:
 * - an absent Timestamp field decodes to `undefined`;
 * - a present but empty Timestamp (zero-length sub-message) decodes to the Unix epoch;
 * - the Go zero time decodes to a valid `Date` in year 1.
 * All three mean "unset" here. Millisecond precision only: ts-proto drops sub-millisecond nanos.
 */

/** Seconds of the Go zero time (0001-01-01T00:00:00Z) since the Unix epoch. */
export const GO_ZERO_TIME_SECONDS = -62_135_596_800;

const GO_ZERO_TIME_MS = GO_ZERO_TIME_SECONDS * 1000;

/**
 * The Go zero time, 0001-01-01T00:00:00Z. Shared instance: do not mutate it; `orZeroTime`
 * returns a fresh copy when a value is needed.
 */
export const GO_ZERO_TIME: Date = new Date(GO_ZERO_TIME_MS);

/**
 * Returns true when `d` means "no time": undefined, the Go zero time, or the Unix epoch that an
 * empty Timestamp message decodes to.
 */
export function isZeroTime(d?: Date | null): boolean {
  if (d === undefined || d === null) return true;
  const ms = d.getTime();
  return ms === GO_ZERO_TIME_MS || ms === 0;
}

/**
 * Returns `d`, or a new Go zero time when `d` is unset (see `isZeroTime`): what a Go peer would
 * send for the same value. Use it for fields containerd always emits.
 */
export function orZeroTime(d?: Date | null): Date {
  return d === undefined || d === null || isZeroTime(d) ? new Date(GO_ZERO_TIME_MS) : d;
}
