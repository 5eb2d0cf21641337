import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from '@berth/errdefs';

/** Hex length per digest algorithm the client can verify. */
const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/**
 * Checks a digest string (`sha256:<64 lowercase hex>`, sha384 or sha512) and returns it.
 * Throws InvalidArgumentError naming the value otherwise: the registry client only moves bytes
 * it can verify.
 */
export function checkDigest(value: string): string {
  const i = value.indexOf(':');
  const algorithm = i > 0 ? value.slice(0, i) : '';
  const hex = value.slice(i + 1);
  const length = HEX_LENGTH[algorithm];
  if (length === undefined) throw new InvalidArgumentError(`digest "${value}": unsupported or malformed digest`);
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidArgumentError(`digest "${value}": invalid ${algorithm} digest`);
  }
  return value;
}

/** Returns a fresh hash for the algorithm of a (checked) digest. */
export function hashFor(digest: string): Hash {
  return createHash(checkDigest(digest).slice(0, digest.indexOf(':')));
}

/** Returns the digest of bytes in the algorithm of `like` (sha256 when omitted). */
export function digestOf(data: Uint8Array, like = 'sha256:'): string {
  const algorithm = like.slice(0, like.indexOf(':'));
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
