/** The labels the garbage collector reads (containerd's names). */
export const GC_ROOT = 'containerd.io/gc.root';
export const GC_EXPIRE = 'containerd.io/gc.expire';
export const GC_FLAT = 'containerd.io/gc.flat';
const GC_REF_CONTENT = 'containerd.io/gc.ref.content';
const GC_REF_SNAPSHOT = 'containerd.io/gc.ref.snapshot.';

/** What a gc.ref label points at. */
export type LabelRef = { kind: 'content'; digest: string } | { kind: 'snapshot'; snapshotter: string; key: string };

/**
 * Returns what one label references, if it is a reference: `containerd.io/gc.ref.content`
 * exactly or followed by `.` or `/` and anything -> the blob named by the value;
 * `containerd.io/gc.ref.snapshot.<snapshotter>` optionally followed by `/` and anything -> that
 * snapshotter's snapshot named by the value. Empty values reference nothing.
 */
export function labelRef(key: string, value: string): LabelRef | undefined {
  if (value === '') return undefined;
  if (key.startsWith(GC_REF_CONTENT)) {
    const next = key.charAt(GC_REF_CONTENT.length);
    if (next === '' || next === '.' || next === '/') return { kind: 'content', digest: value };
    return undefined;
  }
  if (key.startsWith(GC_REF_SNAPSHOT)) {
    const rest = key.slice(GC_REF_SNAPSHOT.length);
    const slash = rest.indexOf('/');
    const snapshotter = slash < 0 ? rest : rest.slice(0, slash);
    if (snapshotter === '') return undefined;
    return { kind: 'snapshot', snapshotter, key: value };
  }
  return undefined;
}

/** Returns every reference among a set of labels. */
export function labelRefs(labels: Record<string, string> | undefined): LabelRef[] {
  const out: LabelRef[] = [];
  for (const [k, v] of Object.entries(labels ?? {})) {
    const ref = labelRef(k, v);
    if (ref) out.push(ref);
  }
  return out;
}

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
