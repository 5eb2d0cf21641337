import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { DataLossError } from '@berth/errdefs';

/** Reports whether `err` is a Node system error with the given code (ENOENT, EEXIST, ...). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** Reads a small text file, or returns undefined when it does not exist. */
export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/** Parses a timestamp file's text (RFC 3339, as containerd and Berth write it); undefined if unusable. */
export function parseTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text.trim());
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/**
 * Returns a file time as a Date rounded to the nearest millisecond. Times set through `utimes`
 * come back a few nanoseconds early (seconds travel as a double), and truncating would move
 * them into the previous millisecond.
 */
export function roundedTime(ns: bigint): Date {
  return new Date(Math.round(Number(ns / 1000n) / 1000));
}

/** Flushes a directory's entries (a rename into it) to disk. */
export async function fsyncDir(path: string): Promise<void> {
  const fh = await fsp.open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes all of `data` at `position`, retrying short writes; DataLoss when the disk takes nothing. */
export async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new DataLossError(`short write: ${done} of ${data.byteLength} bytes`);
    done += bytesWritten;
  }
}

/** Writes all of `chunks`, in order, at `position` with one system call when it takes them all. */
export async function writevFully(fh: FileHandle, chunks: readonly Uint8Array[], position: number): Promise<void> {
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const { bytesWritten } = await fh.writev(chunks as Uint8Array[], position);
  if (bytesWritten >= total) return;
  // A short write: the rest one chunk at a time.
  let skip = bytesWritten;
  let at = position + bytesWritten;
  for (const c of chunks) {
    if (skip >= c.byteLength) {
      skip -= c.byteLength;
      continue;
    }
    const rest = c.subarray(skip);
    skip = 0;
    await writeFully(fh, rest, at);
    at += rest.byteLength;
  }
}

/** Size of the buffers used to hash or copy files: large enough to amortise system calls. */
export const IO_CHUNK = 1 << 20;

/**
 * Feeds bytes [0, limit) of an open file to `sink`, reusing one buffer, and returns how many bytes
 * were read (less than `limit` only when the file is shorter). `limit` omitted means "to the end".
 */
export async function scanFile(fh: FileHandle, sink: (chunk: Uint8Array) => void, limit = Infinity): Promise<number> {
  const buffer = Buffer.allocUnsafe(IO_CHUNK);
  let position = 0;
  while (position < limit) {
    const want = Math.min(buffer.byteLength, limit - position);
    const { bytesRead } = await fh.read(buffer, 0, want, position);
    if (bytesRead === 0) break;
    sink(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return position;
}
