import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from '@berth/errdefs';

/**
 * A content digest, `<algorithm>:<lowercase hex>`, as OCI descriptors and containerd's API carry
 * it. Kept a plain string so values from protobuf messages and JSON need no conversion; use
 * {@link parseDigest} or {@link validateDigest} at every boundary.
 */
export type Digest = string;

/** The digest algorithms the store accepts, after go-digest's registered set. */
export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';

/** The algorithm used when none is asked for: every blob a writer produces without `expected`. */
export const CANONICAL_ALGORITHM: DigestAlgorithm = 'sha256';

/** Length of the hex part per algorithm (twice the hash size in bytes). */
const HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/** The digest of zero bytes, what a fresh writer reports. */
export const EMPTY_DIGEST: Digest = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

// go-digest's general shape: an algorithm of lowercase components joined by . + _ -, then an
// encoded part. Used only to tell "unsupported algorithm" from "garbage", as go-digest does.
const GENERAL_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const LOWER_HEX = /^[a-f0-9]+$/;

/** The parts of a valid digest. */
export interface ParsedDigest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
}

/** Reports whether `name` is an algorithm the store can hash with. */
export function isSupportedAlgorithm(name: string): name is DigestAlgorithm {
  return Object.prototype.hasOwnProperty.call(HEX_LENGTH, name);
}

/**
 * Splits and checks a digest. Throws InvalidArgumentError with go-digest's exact (bare) messages,
 * which containerd sends unchanged: `invalid checksum digest format`, `invalid checksum digest
 * length`, `unsupported digest algorithm`. Wrap with errdefs `wrap` to add context.
 */
export function parseDigest(value: unknown): ParsedDigest {
  if (typeof value !== 'string') throw invalid('invalid checksum digest format');
  const i = value.indexOf(':');
  if (i <= 0 || i === value.length - 1) throw invalid('invalid checksum digest format');
  const algorithm = value.slice(0, i);
  const hex = value.slice(i + 1);
  if (!isSupportedAlgorithm(algorithm)) {
    throw invalid(GENERAL_DIGEST.test(value) ? 'unsupported digest algorithm' : 'invalid checksum digest format');
  }
  if (hex.length !== HEX_LENGTH[algorithm]) throw invalid('invalid checksum digest length');
  if (!LOWER_HEX.test(hex)) throw invalid('invalid checksum digest format');
  return { algorithm, hex };
}

/** Returns `value` typed as a digest after checking it; throws as {@link parseDigest}. */
export function validateDigest(value: unknown): Digest {
  parseDigest(value);
  return value as Digest;
}

/** Reports whether `value` is a valid digest of a supported algorithm. */
export function isDigest(value: unknown): value is Digest {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

function invalid(message: string): InvalidArgumentError {
  return new InvalidArgumentError(message, { bare: true });
}

/**
 * Hashes a stream of bytes incrementally. {@link digest} can be read at any time without ending
 * the hash, so a writer can report its running digest between chunks.
 */
export class Digester {
  private hash: Hash;
  private count = 0;

  constructor(readonly algorithm: DigestAlgorithm = CANONICAL_ALGORITHM) {
    if (!isSupportedAlgorithm(algorithm)) throw invalid('unsupported digest algorithm');
    this.hash = createHash(algorithm);
  }

  /** Adds bytes to the hash. */
  update(data: Uint8Array): this {
    this.hash.update(data);
    this.count += data.byteLength;
    return this;
  }

  /** Returns the digest of every byte added so far; more bytes may follow. */
  digest(): Digest {
    return `${this.algorithm}:${this.hash.copy().digest('hex')}`;
  }

  /** Returns how many bytes were added. */
  get size(): number {
    return this.count;
  }

  /** Starts over, as if no bytes had been added. */
  reset(): void {
    this.hash = createHash(this.algorithm);
    this.count = 0;
  }
}

/** Returns the digest of a byte array or a UTF-8 string. */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = CANONICAL_ALGORITHM): Digest {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return new Digester(algorithm).update(bytes).digest();
}

/** Hashes a byte stream (a Node Readable or any async iterable of chunks) without buffering it. */
export async function digestStream(
  source: AsyncIterable<Uint8Array>,
  algorithm: DigestAlgorithm = CANONICAL_ALGORITHM,
): Promise<{ digest: Digest; size: number }> {
  const d = new Digester(algorithm);
  for await (const chunk of source) d.update(chunk);
  return { digest: d.digest(), size: d.size };
}
