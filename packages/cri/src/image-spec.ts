/**
 * The image config as containerd's CRI plugin shows it in ImageStatus's verbose info: decoded
 * into the OCI image spec's Go types and encoded again, so only the spec's fields remain, empty
 * optional ones are left out, and times are written as Go writes RFC 3339 (no trailing zeros in
 * the fraction).
 */
export function ociImageSpecView(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const put = (key: string, v: unknown) => {
    if (!isEmpty(v)) out[key] = v;
  };
  put('created', goTime(raw.created));
  put('author', str(raw.author));
  out.architecture = str(raw.architecture);
  put('variant', str(raw.variant));
  out.os = str(raw.os);
  put('os.version', str(raw['os.version']));
  put('os.features', arr(raw['os.features']));
  out.config = imageConfig(obj(raw.config));
  const rootfs = obj(raw.rootfs);
  out.rootfs = { type: str(rootfs.type), diff_ids: Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids : null };
  const history = arr(raw.history)?.map((h) => {
    const e = obj(h);
    const o: Record<string, unknown> = {};
    for (const [k, v] of [
      ['created', goTime(e.created)],
      ['created_by', str(e.created_by)],
      ['author', str(e.author)],
      ['comment', str(e.comment)],
      ['empty_layer', e.empty_layer === true ? true : undefined],
    ] as const) {
      if (!isEmpty(v)) o[k] = v;
    }
    return o;
  });
  put('history', history);
  return out;
}

function imageConfig(c: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const key of ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped']) {
    const v = key === 'ArgsEscaped' ? (c[key] === true ? true : undefined) : c[key];
    if (!isEmpty(v)) o[key] = v;
  }
  return o;
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v).length === 0;
  return false;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const arr = (v: unknown): unknown[] | undefined => (Array.isArray(v) ? v : undefined);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** An RFC 3339 time as Go's RFC3339Nano writes it: the fraction without trailing zeros. */
function goTime(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(v);
  if (!m) return v;
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  return `${m[1]}${fraction ? `.${fraction}` : ''}${m[3]}`;
}

/** JSON with object keys sorted at every level, as Go encodes a map. */
export function sortedJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
