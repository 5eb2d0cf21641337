import { createHash } from 'node:crypto';

/** Snapshot keys up to this many bytes are stored as they are. */
export const MAX_RAW_KEY_BYTES = 1024;

/**
 * Returns the form of a snapshot key used inside an lmdb key. lmdb keys are limited to 1978
 * bytes, but a snapshot key is any string (4 KiB ones included): a key longer than
 * MAX_RAW_KEY_BYTES is stored as its first MAX_RAW_KEY_BYTES bytes, a NUL and its sha256, which is
 * longer than any raw key and so never equal to one. Records keep the full key; listing order is
 * restored by the callers for the (rare) long keys that share a 1 KiB prefix.
 */
export function storedKey(key: string): string {
  const bytes = Buffer.from(key);
  if (bytes.length <= MAX_RAW_KEY_BYTES) return key;
  let cut = MAX_RAW_KEY_BYTES;
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--; // never split a UTF-8 sequence
  return `${bytes.subarray(0, cut).toString()}\u0000${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Compares keys bytewise as lmdb orders them (UTF-8), not by UTF-16 code units. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
