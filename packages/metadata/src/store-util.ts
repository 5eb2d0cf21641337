import { setOwn } from './labels';

/** Returns a copy of a label-style map without its empty values: an empty value means "delete". */
export function cleanMap(map: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(map ?? {})) if (v !== '') setOwn(out, k, v);
  return out;
}

/**
 * Returns the update time for an object last updated at `previous` (ms): now, or one
 * millisecond after `previous` when the clock has not moved on, so every update is visible as a
 * newer `updated_at` even when two land in the same millisecond.
 */
export function nextUpdatedAt(previous: number): number {
  return Math.max(Date.now(), previous + 1);
}
