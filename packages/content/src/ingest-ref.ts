import { InvalidArgumentError } from '@berth/errdefs';

/**
 * Longest ingest ref the namespaced store accepts, in UTF-8 bytes. The ref is part of an lmdb key
 * (`['v1', 'ns', <ns>, 'ingests', <ref>]`), and lmdb keys are limited to 1978 bytes; 1024 leaves
 * room for the namespace (at most 76 bytes) and the key encoding. containerd itself has no limit.
 */
export const MAX_INGEST_REF_LENGTH = 1024;

/**
 * Checks a client's ingest ref for the namespaced store. Refs may contain `/` (ctr uses
 * `tar-blobs/sha256/<hex>` and `<ns>-<digest>` forms), but not: nothing at all, a leading `/`, a
 * `..` path segment, NUL, or more than {@link MAX_INGEST_REF_LENGTH} bytes. All are
 * InvalidArgument. containerd 1.6 accepts every non-empty ref; these refusals are Berth's.
 */
export function validateIngestRef(ref: unknown): string {
  if (typeof ref !== 'string' || ref === '') throw new InvalidArgumentError('ref must not be empty');
  const fail = (why: string) => {
    const shown = ref.length > 64 ? `${ref.slice(0, 64)}...` : ref;
    return new InvalidArgumentError(`invalid ref ${JSON.stringify(shown)}: ${why}`);
  };
  const bytes = Buffer.byteLength(ref);
  if (bytes > MAX_INGEST_REF_LENGTH) throw fail(`${bytes} bytes long, more than the maximum ${MAX_INGEST_REF_LENGTH}`);
  if (ref.includes('\0')) throw fail('must not contain NUL');
  if (ref.startsWith('/')) throw fail("must not start with '/'");
  if (ref.split('/').includes('..')) throw fail("must not contain a '..' path segment");
  return ref;
}
