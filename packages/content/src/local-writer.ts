import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
} from '@berth/errdefs';
import { CANONICAL_ALGORITHM, Digester, parseDigest, type Digest, type ParsedDigest } from './digest';
import { fsyncDir, isErrno, scanFile, writeFully, writevFully } from './fs-util';
import { type IngestDigest, openIngestDigest } from './hash-worker';
import { INGEST_FILE, createIngest, readIngest } from './ingest';
import { validateLabels, type LabelStore } from './label-store';
import type { GrowingBlob, Labels, Status, Writer } from './types';

/** What a writer needs from the store that opened it. */
export interface WriterHost {
  readonly ingestRoot: string;
  readonly labelStore?: LabelStore;
  blobPath(digest: ParsedDigest): string;
  /** Releases the ref lock the writer was opened under. */
  release(ref: string): void;
  /** Told of each blob a writer committed, or found already present when it tried to. */
  committed?(digest: Digest, size: number): void;
  /** Blobs of at least this many bytes (by their announced total) are hashed on the hashing thread. */
  readonly hashOffloadMinBytes: number;
}

/**
 * The local store's writer: one read-write file handle on `ingest/<hash>/data`, positional
 * writes at the current offset, and an incremental hash: updated on this thread while the write
 * is in flight, or, for a blob announced large, by the hashing thread reading back what was
 * written (see hash-worker.ts). Nothing is synced until commit, and `updatedat` is written on
 * close only.
 */
export class LocalWriter implements Writer {
  private fh: FileHandle | undefined;
  private closed = false;
  private failure: unknown;
  private committed: Digest | undefined;
  /** The digest of every byte, once a commit computed it (also when the blob turned out stored already). */
  private complete: Digest | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly followers = new Set<IngestFollower>();

  private constructor(
    private readonly host: WriterHost,
    readonly ref: string,
    private readonly dir: string,
    fh: FileHandle,
    private readonly hasher: IngestDigest,
    private offset: number,
    private readonly total: number,
    private readonly expected: Digest | undefined,
    private readonly startedAt: Date,
    private updatedAt: Date,
    private readonly notify: boolean,
  ) {
    this.fh = fh;
  }

  /**
   * Opens the ingest in `dir` for `ref`, resuming it when it exists and fits (same ref, no
   * conflicting total) by re-hashing its data; otherwise (re)creates it empty, as containerd does
   * with an ingest it cannot resume. The caller holds the ref lock.
   */
  static async open(
    host: WriterHost,
    ref: string,
    dir: string,
    options: { total: number; expected?: Digest; notify?: boolean },
  ): Promise<LocalWriter> {
    const { total, expected } = options;
    let status = await readIngest(dir);
    const resume =
      status !== undefined && status.ref === ref && !(total > 0 && status.total > 0 && total !== status.total);
    if (!resume || status === undefined) {
      await fsp.rm(dir, { recursive: true, force: true });
      const startedAt = new Date();
      await createIngest(host.ingestRoot, dir, { ref, total, expected, startedAt });
      status = { ref, offset: 0, total, expected, startedAt, updatedAt: startedAt };
    }
    const want = expected ?? status.expected;
    const algorithm = want ? parseDigest(want).algorithm : CANONICAL_ALGORITHM;
    const path = join(dir, INGEST_FILE.data);
    const fh = await fsp.open(path, 'r+');
    let hasher: IngestDigest | undefined;
    try {
      // The hash state is not persisted: rebuild it from the bytes that reached the disk.
      const offset = resume ? (await fh.stat()).size : 0;
      const announced = total || (resume ? status.total : 0);
      hasher = await openIngestDigest(algorithm, fh, path, offset, announced > 0 && announced >= host.hashOffloadMinBytes);
      if (resume && total > 0 && status.total === 0) {
        await fsp.writeFile(join(dir, INGEST_FILE.total), String(total));
      }
      if (resume && expected && expected !== status.expected) {
        await fsp.writeFile(join(dir, INGEST_FILE.expected), expected);
      }
      return new LocalWriter(host, ref, dir, fh, hasher, offset, total || status.total, want, status.startedAt, status.updatedAt, options.notify ?? true);
    } catch (err) {
      hasher?.close();
      await fh.close();
      throw err;
    }
  }

  write(chunk: Uint8Array): Promise<number> {
    return this.writev([chunk]);
  }

  writev(chunks: readonly Uint8Array[]): Promise<number> {
    return this.serial(async () => {
      const fh = this.usable();
      const length = chunks.reduce((n, c) => n + c.byteLength, 0);
      if (length === 0) return 0;
      // Start the write (it runs on the libuv pool), then hash on this thread meanwhile (inline).
      const written = chunks.length === 1 ? writeFully(fh, chunks[0], this.offset) : writevFully(fh, chunks, this.offset);
      this.hasher.update(chunks);
      try {
        await written;
      } catch (err) {
        // The hash already covers bytes the disk may not have: refuse further writes.
        this.failure = err;
        this.endFollowers(new FailedPreconditionError(`writer for ref ${this.ref} failed a write`, { cause: err }));
        throw err;
      }
      this.offset += length;
      this.hasher.written(this.offset);
      this.updatedAt = new Date();
      for (const f of this.followers) f.update(this.offset);
      return length;
    });
  }

  truncate(size: number): Promise<void> {
    return this.serial(async () => {
      if (size !== 0) throw new NotImplementedError(`truncate to ${size}: only 0 is supported`);
      const fh = this.open();
      this.endFollowers(new FailedPreconditionError(`writer for ref ${this.ref} was truncated`));
      await fh.truncate(0);
      this.hasher.reset();
      this.offset = 0;
      this.failure = undefined;
      this.updatedAt = new Date();
    });
  }

  commit(size: number, expected?: Digest, labels?: Labels): Promise<void> {
    return this.serial(async () => {
      if (this.closed) throw new FailedPreconditionError('cannot commit on closed writer');
      try {
        await this.commitOpen(size, expected || undefined, labels);
      } finally {
        // containerd ends the writer on every commit outcome; a failed check keeps the ingest.
        await this.finish();
      }
    });
  }

  digest(): Promise<Digest> {
    const known = this.committed ?? this.complete;
    return known !== undefined ? Promise.resolve(known) : this.serial(() => this.hasher.digest(this.offset));
  }

  async status(): Promise<Status> {
    return {
      ref: this.ref,
      offset: this.offset,
      total: this.total,
      ...(this.expected ? { expected: this.expected } : {}),
      startedAt: this.startedAt,
      updatedAt: this.updatedAt,
    };
  }

  close(): Promise<void> {
    return this.serial(() => this.finish());
  }

  follow(): Promise<GrowingBlob> {
    return this.serial(async () => {
      this.usable();
      const fh = await fsp.open(join(this.dir, INGEST_FILE.data), 'r');
      const f = new IngestFollower(fh, this.offset, () => this.followers.delete(f));
      this.followers.add(f);
      return f;
    });
  }

  /** Ends every follower: with `verified`, or with the error that ended the writer. */
  private endFollowers(end: 'verified' | Error): void {
    for (const f of this.followers) f.end(end);
    this.followers.clear();
  }

  private async commitOpen(size: number, expected: Digest | undefined, labels: Labels | undefined): Promise<void> {
    const fh = this.usable();
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new InvalidArgumentError(`commit size must be a non-negative integer, got ${size}`);
    }
    if (size > 0 && size !== this.offset) {
      throw new FailedPreconditionError(`"${this.ref}" failed size validation: ${this.offset} != ${size}`);
    }
    let digest = await this.hasher.digest(this.offset);
    this.complete = digest;
    if (expected !== undefined) {
      const want = parseDigest(expected);
      if (want.algorithm !== this.hasher.algorithm) {
        // Asked for another algorithm than the one hashed while writing: hash the data again.
        const other = new Digester(want.algorithm);
        await scanFile(fh, (chunk) => other.update(chunk), this.offset);
        digest = other.digest();
      }
      if (digest !== expected) {
        throw new FailedPreconditionError(`unexpected commit digest ${digest}, expected ${expected}`);
      }
    }
    const labelStore = this.host.labelStore;
    if (labels && labelStore) validateLabels(labels);
    // The bytes are the blob's: a follower that read them all has read the blob.
    this.endFollowers('verified');

    const target = this.host.blobPath(parseDigest(digest));
    // Make the file final before it becomes visible: data on disk, commit time, read-only.
    await fh.sync();
    const now = new Date();
    await fh.utimes(now, now);
    const { mode } = await fh.stat();
    await fh.chmod(mode & 0o777 & ~0o333);
    this.fh = undefined;
    await fh.close();

    await fsp.mkdir(dirname(target), { recursive: true });
    if (await exists(target)) {
      await fsp.rm(this.dir, { recursive: true, force: true });
      if (this.notify) this.host.committed?.(digest, this.offset);
      throw new AlreadyExistsError(`content ${digest}`);
    }
    try {
      // Atomic: readers see no blob or the whole blob. A concurrent commit of the same content
      // under another ref may replace it with identical bytes, which is harmless.
      await fsp.rename(join(this.dir, INGEST_FILE.data), target);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError(`reference ${this.ref}`, { cause: err });
      throw err;
    }
    await fsyncDir(dirname(target));
    this.committed = digest;
    await fsp.rm(this.dir, { recursive: true, force: true });
    if (labels && labelStore) await labelStore.update(digest, () => labels);
    if (this.notify) this.host.committed?.(digest, this.offset);
  }

  /** Records `updatedat` for a later resume, closes the file and releases the ref, once. */
  private async finish(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hasher.close();
    this.endFollowers(new FailedPreconditionError(`writer for ref ${this.ref} closed before its commit`));
    const fh = this.fh;
    this.fh = undefined;
    try {
      if (fh) {
        await fsp.writeFile(join(this.dir, INGEST_FILE.updatedAt), this.updatedAt.toISOString()).catch((err) => {
          // Aborted meanwhile: nothing left to record.
          if (!isErrno(err, 'ENOENT')) throw err;
        });
      }
    } finally {
      try {
        await fh?.close();
      } finally {
        this.host.release(this.ref);
      }
    }
  }

  /** Returns the file handle of a writer that is still open. */
  private open(): FileHandle {
    if (this.closed || !this.fh) throw new FailedPreconditionError(`writer for ref ${this.ref} is closed`);
    return this.fh;
  }

  /** Returns the file handle of a writer that is open and has not failed. */
  private usable(): FileHandle {
    const fh = this.open();
    if (this.failure !== undefined) {
      throw new FailedPreconditionError(`writer for ref ${this.ref} failed a write; truncate(0) or reopen to resume`, {
        cause: this.failure,
      });
    }
    return fh;
  }

  /** Runs operations one after another, in call order, whatever each one's outcome. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/** A {@link GrowingBlob} over an ingest's data file, told of each write by its writer. */
class IngestFollower implements GrowingBlob {
  ended: GrowingBlob['ended'];
  private readonly listeners = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly fh: FileHandle,
    public written: number,
    private readonly detach: () => void,
  ) {}

  get fd(): number {
    return this.fh.fd;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  update(written: number): void {
    this.written = written;
    for (const l of this.listeners) l();
  }

  end(end: 'verified' | Error): void {
    if (this.ended !== undefined) return;
    this.ended = end;
    for (const l of this.listeners) l();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.end(new FailedPreconditionError('follower closed'));
    await this.fh.close();
  }
}
