import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '@berth/errdefs';
import { isDigest, type Digest } from './digest';
import { isErrno, parseTime, readOptional, roundedTime } from './fs-util';
import type { Status } from './types';

/*
 * One ingest directory, `ingest/<sha256 hex of ref>/`, laid out as containerd's local store lays
 * it out, plus `expected`, which containerd leaves to its metadata layer:
 *
 *   ref        the ref, verbatim (the directory name is only its hash)
 *   data       the bytes written so far; its size is the offset
 *   startedat  RFC 3339 time the ingest was created
 *   updatedat  RFC 3339 time of the last close; the data file's mtime is newer while writing
 *   total      expected size in decimal, only when known
 *   expected   expected digest, only when known (Berth addition, ignored by containerd)
 */

/** Names of the files in an ingest directory. */
export const INGEST_FILE = {
  ref: 'ref',
  data: 'data',
  startedAt: 'startedat',
  updatedAt: 'updatedat',
  total: 'total',
  expected: 'expected',
} as const;

/** Prefix of directories an ingest is staged in before it appears under its real name. */
export const STAGING_PREFIX = '.tmp-';

/** Longest accepted ref, in UTF-8 bytes. Refs never reach a path, so this only bounds the `ref` file. */
export const MAX_REF_LENGTH = 4096;

const INGEST_NAME = /^[0-9a-f]{64}$/;

/** Checks a ref: InvalidArgument when empty or longer than {@link MAX_REF_LENGTH} bytes. */
export function validateRef(ref: unknown): string {
  if (typeof ref !== 'string' || ref === '') throw new InvalidArgumentError('ref must not be empty');
  const bytes = Buffer.byteLength(ref);
  if (bytes > MAX_REF_LENGTH) {
    throw new InvalidArgumentError(`ref is ${bytes} bytes long, more than the maximum ${MAX_REF_LENGTH}`);
  }
  return ref;
}

/** Returns the directory name of a ref's ingest: the hex sha256 of the ref, as containerd names it. */
export function ingestName(ref: string): string {
  return createHash('sha256').update(ref, 'utf8').digest('hex');
}

/** Reports whether a directory entry under `ingest/` can be an ingest (not staging, not junk). */
export function isIngestName(name: string): boolean {
  return INGEST_NAME.test(name);
}

/**
 * Reads an ingest directory's status. Returns undefined when it is not a usable ingest (no data
 * or no ref file: removed meanwhile, half-committed, or half-created by a crash). Damaged
 * timestamp or total files fall back to the data file's times and 0, so a damaged ingest stays
 * visible and can still be aborted.
 */
export async function readIngest(dir: string): Promise<Status | undefined> {
  let dataStat;
  try {
    dataStat = await fsp.stat(join(dir, INGEST_FILE.data), { bigint: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
  const [ref, startedText, updatedText, totalText, expectedText] = await Promise.all(
    [INGEST_FILE.ref, INGEST_FILE.startedAt, INGEST_FILE.updatedAt, INGEST_FILE.total, INGEST_FILE.expected].map(
      (name) => readOptional(join(dir, name)),
    ),
  );
  if (ref === undefined) return undefined;
  const modified = roundedTime(dataStat.mtimeNs);
  const startedAt = parseTime(startedText) ?? modified;
  // updatedat is written on close only; while a writer is busy the data file is fresher.
  const recorded = parseTime(updatedText) ?? startedAt;
  const updatedAt = modified > recorded ? modified : recorded;
  const total = Number.parseInt(totalText ?? '', 10);
  const expected = expectedText?.trim();
  return {
    ref,
    offset: Number(dataStat.size),
    total: Number.isSafeInteger(total) && total > 0 ? total : 0,
    ...(expected && isDigest(expected) ? { expected } : {}),
    startedAt,
    updatedAt,
  };
}

/** What a new ingest starts with. */
export interface NewIngest {
  ref: string;
  total: number;
  expected?: Digest;
  startedAt: Date;
}

/**
 * Creates an ingest directory with its files and an empty data file, atomically: everything is
 * written in a staging directory that is then renamed into place, so a crash never leaves a
 * half-made ingest under a real name. The target must not exist.
 */
export async function createIngest(ingestRoot: string, dir: string, ingest: NewIngest): Promise<void> {
  const staging = await fsp.mkdtemp(join(ingestRoot, STAGING_PREFIX));
  try {
    const stamp = ingest.startedAt.toISOString();
    const files: [string, string][] = [
      [INGEST_FILE.ref, ingest.ref],
      [INGEST_FILE.startedAt, stamp],
      [INGEST_FILE.updatedAt, stamp],
      [INGEST_FILE.data, ''],
    ];
    if (ingest.total > 0) files.push([INGEST_FILE.total, String(ingest.total)]);
    if (ingest.expected) files.push([INGEST_FILE.expected, ingest.expected]);
    await Promise.all(files.map(([name, text]) => fsp.writeFile(join(staging, name), text, { mode: 0o644 })));
    await fsp.rename(staging, dir);
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/** Removes staging directories left by a crash. Run only when no writer of this root is active. */
export async function removeStaging(ingestRoot: string): Promise<void> {
  for (const name of await fsp.readdir(ingestRoot)) {
    if (name.startsWith(STAGING_PREFIX)) await fsp.rm(join(ingestRoot, name), { recursive: true, force: true });
  }
}
