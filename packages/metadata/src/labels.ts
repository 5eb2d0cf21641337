import { InvalidArgumentError } from '@berth/errdefs';

/** The most bytes a label's key and value may take together, as containerd enforces. */
export const MAX_LABEL_SIZE = 4096;

/**
 * Checks one label against containerd's size limit, and refuses the key `__proto__`: the
 * database's encoding (msgpack) cannot give it back (it reads it as `__proto_`, so that no
 * object gets a prototype from stored data). containerd takes any key.
 */
export function validateLabel(key: string, value: string): void {
  if (key === '__proto__') throw new InvalidArgumentError('label key "__proto__" is reserved');
  const size = Buffer.byteLength(key) + Buffer.byteLength(value);
  if (size > MAX_LABEL_SIZE) {
    throw new InvalidArgumentError(`label key and value greater than maximum size (${MAX_LABEL_SIZE} bytes), key: ${key.slice(0, 10)}`);
  }
}

/** Checks every label of a set. */
export function validateLabels(labels: Readonly<Record<string, string>> | undefined): void {
  for (const [k, v] of Object.entries(labels ?? {})) validateLabel(k, v);
}

/**
 * Reads `key` of a label-style map (labels, annotations, extensions) as an own property only: a
 * plain object answers `constructor` or `toString` from its prototype, which is no label.
 */
export function ownValue<T>(map: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return map !== undefined && Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
}

/** Sets `key` of a label-style map as an own property (an assignment to `__proto__` would not). */
export function setOwn<T>(map: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
}
