import { InvalidArgumentError, goQuote } from '@berth/errdefs';

/**
 * Longest identifier containerd accepts, in bytes of UTF-8 (Go's `len`). Only ASCII can pass the
 * pattern, but the length check runs first, so a long non-ASCII id gets the length message.
 */
export const MAX_LENGTH = 76;

/**
 * The identifier grammar: runs of ASCII letters and digits, joined by single `.`, `_` or `-`.
 * Its `source` is the text containerd prints in its error message.
 */
export const PATTERN = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;

/**
 * Checks an identifier (namespace, container, lease, snapshot key component...) against
 * containerd's rules.
 *
 * @throws InvalidArgumentError with containerd's message: `identifier must not be empty`,
 *   `identifier "<id>" greater than maximum length (76 characters)` or
 *   `identifier "<id>" must match <pattern>`.
 */
export function validate(id: string): void {
  if (id.length === 0) {
    throw new InvalidArgumentError('identifier must not be empty');
  }
  if (Buffer.byteLength(id, 'utf8') > MAX_LENGTH) {
    throw new InvalidArgumentError(`identifier ${goQuote(id)} greater than maximum length (${MAX_LENGTH} characters)`);
  }
  if (!PATTERN.test(id)) {
    throw new InvalidArgumentError(`identifier ${goQuote(id)} must match ${PATTERN.source}`);
  }
}

/** Reports whether `validate` would accept the identifier. */
export function isValid(id: string): boolean {
  return id.length > 0 && Buffer.byteLength(id, 'utf8') <= MAX_LENGTH && PATTERN.test(id);
}
