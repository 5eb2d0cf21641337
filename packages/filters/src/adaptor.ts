/**
 * How a filter sees an object: by field path. `undefined` means the field is absent, which is
 * distinct from present-but-empty for the presence test (`labels.foo`) and for `==`.
 *
 * The helpers mirror containerd's adaptors: a fixed field matches on its first path segment and
 * ignores any further segments (`id.x==overlayfs` matches plugin `overlayfs`), a nested field
 * (`target.digest`) needs exactly its own segments first, and a label-style map takes the rest of
 * the path, joined with `.`, as its key (`labels.a.b` and `labels."a.b"` both look up `a.b`).
 */
export interface Adaptor {
  /** Returns the value at the path, or `undefined` when the object has no such field. */
  field(path: readonly string[]): string | undefined;
}

/** A function that resolves a field path; see `adaptorFromFields`. */
export type FieldLookup = (path: readonly string[]) => string | undefined;

/**
 * Wraps a lookup function as an adaptor (containerd's `AdapterFunc`). The empty path is answered
 * as absent without calling the function.
 */
export function adaptorFromFields(lookup: FieldLookup): Adaptor {
  return {
    field(path) {
      return path.length === 0 ? undefined : lookup(path);
    },
  };
}

/**
 * A map whose entries are looked up by the rest of the path, joined with `.`: object labels,
 * descriptor annotations. Build with `mapField`.
 */
export class MapField {
  /** @param entries a `Map` or a plain record (only its own properties are seen); `undefined` = empty. */
  constructor(private readonly entries: ReadonlyMap<string, string> | Readonly<Record<string, string>> | undefined) {}

  /** Returns the entry whose key is `path` joined with `.`, or `undefined`. */
  get(path: readonly string[]): string | undefined {
    const entries = this.entries;
    if (entries === undefined) return undefined;
    const key = path.length === 1 ? path[0] : path.join('.');
    if (entries instanceof Map) return entries.get(key);
    const record = entries as Readonly<Record<string, string>>;
    return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
  }
}

/** Creates a label-style map field (see `MapField`). */
export function mapField(
  entries: ReadonlyMap<string, string> | Readonly<Record<string, string>> | undefined,
): MapField {
  return new MapField(entries);
}

/**
 * One node of a field tree:
 * - a string: the field's value, whatever segments follow;
 * - `undefined`: the field is absent;
 * - a `MapField`: the rest of the path is a key into it;
 * - a function: resolves the rest of the path itself (an event payload behind `event.`);
 * - a nested tree: the next segment selects within it (`target.digest`).
 */
export type FieldNode = string | undefined | MapField | FieldLookup | FieldTree;

/** Fields by name; see `FieldNode`. */
export interface FieldTree {
  readonly [segment: string]: FieldNode;
}

/**
 * Creates an adaptor over a tree of fields, e.g. for an image:
 *
 * ```ts
 * adaptorFromTree({
 *   name: nonEmpty(image.name),
 *   target: { digest: nonEmpty(image.target?.digest), mediatype: nonEmpty(image.target?.mediaType) },
 *   labels: mapField(image.labels),
 *   annotations: mapField(image.target?.annotations),
 * })
 * ```
 */
export function adaptorFromTree(tree: FieldTree): Adaptor {
  return { field: (path) => lookupTree(tree, path, 0) };
}

function lookupTree(tree: FieldTree, path: readonly string[], at: number): string | undefined {
  if (at >= path.length) return undefined;
  const segment = path[at];
  if (!Object.prototype.hasOwnProperty.call(tree, segment)) return undefined;
  const node = tree[segment];
  if (node === undefined || typeof node === 'string') return node;
  if (node instanceof MapField) return node.get(path.slice(at + 1));
  if (typeof node === 'function') return node(path.slice(at + 1));
  return lookupTree(node, path, at + 1);
}

/**
 * Creates an adaptor for the common shape "a few fixed fields plus `labels.*`": `fixed` maps a
 * first path segment to its value (`undefined` = absent) and `labels.<key>` reads the label map.
 * Builds nothing per lookup, so it suits Lists over many objects.
 */
export function labelsAdaptor(
  fixed: Readonly<Record<string, string | undefined>>,
  labels: ReadonlyMap<string, string> | Readonly<Record<string, string>> | undefined,
): Adaptor {
  const labelMap = mapField(labels);
  return {
    field(path) {
      if (path.length === 0) return undefined;
      const head = path[0];
      if (head === 'labels') return labelMap.get(path.slice(1));
      return Object.prototype.hasOwnProperty.call(fixed, head) ? fixed[head] : undefined;
    },
  };
}

/**
 * Returns the value, or `undefined` when it is empty: containerd reports most string fields
 * (image name, container id, plugin type...) as absent when they are empty.
 */
export function nonEmpty(value: string | undefined | null): string | undefined {
  return value === undefined || value === null || value === '' ? undefined : value;
}
