/**
 * CRI messages in the JSON shape containerd's Go structs give them (gogo's generated `json`
 * tags: snake_case names, `omitempty`, enums as numbers), which is what containerd keeps in its
 * sandbox metadata extension and shows in verbose status. Map fields keep their keys as given.
 */

/** Fields whose values are string maps: their keys are data, not names. */
const MAP_FIELDS = new Set(['labels', 'annotations', 'sysctls']);

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (k: string): string => k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

/** A ts-proto message (camelCase, defaults filled in) as Go's encoding/json prints the gogo struct. */
export function toGoJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toGoJson);
  if (typeof value !== 'object' || value === null) return typeof value === 'bigint' ? Number(value) : value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (isEmpty(v)) continue;
    out[snake(k)] = MAP_FIELDS.has(k) ? { ...(v as object) } : toGoJson(v);
  }
  return out;
}

/** The reverse of {@link toGoJson}: camelCase names, for ts-proto's `fromPartial`. */
export function fromGoJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromGoJson);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const name = camel(k);
    out[name] = MAP_FIELDS.has(name) ? { ...(v as object) } : fromGoJson(v);
  }
  return out;
}
