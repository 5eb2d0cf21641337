import { InvalidArgumentError } from '@berth/errdefs';

// go-digest's registered algorithms and the length of their hex part.
const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };
// go-digest's general digest shape, used only to tell "unsupported algorithm" from garbage.
const GENERAL_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const LOWER_HEX = /^[a-f0-9]+$/;

/**
 * Checks a digest string as go-digest's `Validate` does and throws InvalidArgumentError with its
 * bare message (`invalid checksum digest format`, `invalid checksum digest length`,
 * `unsupported digest algorithm`), for the caller to wrap. The metadata layer keeps its own
 * copy of this check so that it does not depend on the content store package.
 */
export function checkDigest(value: string): void {
  const fail = (why: string) => new InvalidArgumentError(why, { bare: true });
  const i = value.indexOf(':');
  if (i <= 0 || i === value.length - 1) throw fail('invalid checksum digest format');
  const algorithm = value.slice(0, i);
  const hex = value.slice(i + 1);
  if (!Object.prototype.hasOwnProperty.call(HEX_LENGTH, algorithm)) {
    throw fail(GENERAL_DIGEST.test(value) ? 'unsupported digest algorithm' : 'invalid checksum digest format');
  }
  if (hex.length !== HEX_LENGTH[algorithm]) throw fail('invalid checksum digest length');
  if (!LOWER_HEX.test(hex)) throw fail('invalid checksum digest format');
}
