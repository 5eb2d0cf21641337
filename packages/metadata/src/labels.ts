import { InvalidArgumentError } from '@berth/errdefs';

/** The most bytes a label's key and value may take together, as containerd enforces. */
export const MAX_LABEL_SIZE = 4096;

/** Checks one label against containerd's size limit. */
export function validateLabel(key: string, value: string): void {
  const size = Buffer.byteLength(key) + Buffer.byteLength(value);
  if (size > MAX_LABEL_SIZE) {
    throw new InvalidArgumentError(`label key and value greater than maximum size (${MAX_LABEL_SIZE} bytes), key: ${key.slice(0, 10)}`);
  }
}

/** Checks every label of a set. */
export function validateLabels(labels: Readonly<Record<string, string>> | undefined): void {
  for (const [k, v] of Object.entries(labels ?? {})) validateLabel(k, v);
}
