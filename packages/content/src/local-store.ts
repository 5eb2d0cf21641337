import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@berth/errdefs';
import { isSupportedAlgorithm, parseDigest, validateDigest, type Digest, type DigestAlgorithm, type ParsedDigest } from './digest';
import { BlobHandles } from './blob-handles';
import { FileReaderAt } from './file-reader-at';
import { isErrno, roundedTime } from './fs-util';
import { ingestName, isIngestName, readIngest, removeStaging, validateRef } from './ingest';
import { dropEmptyLabels, validateLabels, type LabelStore } from './label-store';
import { DEFAULT_HASH_OFFLOAD_MIN_BYTES } from './hash-worker';
import { LocalWriter, type WriterHost } from './local-writer';
import { DEFAULT_LOCK_RETRY, RefLocks, type LockRetry } from './ref-locks';
import type {
  ContentStore,
  DescriptorLike,
  Info,
  InfoFilter,
  Labels,
  ReaderAt,
  Status,
  StatusFilter,
  Writer,
  WriterOptions,
} from './types';

/*
 * On-disk layout under the store root (the daemon's `<root>/io.containerd.content.v1.content`),
 * the same as containerd's local store so either can read the other's root:
 *
 *   blobs/<alg>/<hex>          committed blobs, read-only, complete (they arrive by rename)
 *   ingest/<sha256(ref)>/      one per unfinished write; files described in ingest.ts
 *   ingest/.tmp-*              an ingest being created; removed at open if left by a crash
 *
 * Anything in blobs/ whose name is not a valid digest of its directory's algorithm is ignored.
 */

/** Options for {@link LocalContentStore.open}. */
export interface LocalContentStoreOptions {
  /**
   * Where blob labels live. Default: none, and then `update` throws FailedPrecondition, commit
   * labels are dropped and `info` has no labels, as containerd's local store without a label
   * store behaves. The daemon leaves it unset (its metadata layer owns labels per namespace);
   * a program using the store alone can pass `new FileLabelStore(join(root, 'labels'))`.
   */
  labelStore?: LabelStore;
  /** How long a second writer for a locked ref retries. Default 10 retries, 50 ms apart. */
  lockRetry?: Partial<LockRetry>;
  /**
   * Writers of blobs announced (by `total`) at least this large hash on a thread of their own,
   * which reads back what they wrote, so that the caller's thread only writes. Default 1 MiB;
   * `Infinity` hashes every blob on the caller's thread.
   */
  hashOffloadMinBytes?: number;
}

/**
 * A content store in a local directory, usable by the daemon and by any Node program. Blobs are
 * streamed, never held whole in memory; writers are resumable across restarts; a committed blob
 * is never visible partially written.
 *
 * Use one instance per root: ref locks are held in the instance.
 */
export class LocalContentStore implements ContentStore {
  readonly labelStore?: LabelStore;
  private readonly locks = new RefLocks();
  private readonly lockRetry: LockRetry;
  private readonly blobRoot: string;
  private readonly ingestRoot: string;
  private readonly host: WriterHost;
  private readonly handles = new BlobHandles();
  private readonly committedListeners = new Set<(digest: Digest, size: number) => void>();
  private readonly writingListeners = new Set<() => void>();

  private constructor(
    readonly root: string,
    options: LocalContentStoreOptions,
  ) {
    this.labelStore = options.labelStore;
    this.lockRetry = { ...DEFAULT_LOCK_RETRY, ...options.lockRetry };
    this.blobRoot = join(root, 'blobs');
    this.ingestRoot = join(root, 'ingest');
    this.host = {
      ingestRoot: this.ingestRoot,
      labelStore: this.labelStore,
      blobPath: (d) => this.blobPath(d),
      release: (ref) => this.locks.release(ref),
      committed: (digest, size) => {
        for (const l of this.committedListeners) l(digest, size);
      },
      hashOffloadMinBytes: options.hashOffloadMinBytes ?? DEFAULT_HASH_OFFLOAD_MIN_BYTES,
    };
  }

  /**
   * Calls `listener` (synchronously: it must only schedule work) after each blob a writer of
   * this store committed, or found already present when it tried to. Returns the unsubscriber.
   */
  onCommitted(listener: (digest: Digest, size: number) => void): () => void {
    this.committedListeners.add(listener);
    return () => this.committedListeners.delete(listener);
  }

  /**
   * Calls `listener` (synchronously) when a writer is opened for others to hear of (not one with
   * `notify: false`, whose writer applies what it writes itself): a transfer is starting.
   */
  onWriting(listener: () => void): () => void {
    this.writingListeners.add(listener);
    return () => this.writingListeners.delete(listener);
  }

  /**
   * Opens (creating if needed) the store rooted at `root` and removes ingest staging directories
   * a crash may have left.
   */
  static async open(root: string, options: LocalContentStoreOptions = {}): Promise<LocalContentStore> {
    const store = new LocalContentStore(root, options);
    await fsp.mkdir(store.blobRoot, { recursive: true });
    await fsp.mkdir(store.ingestRoot, { recursive: true });
    await removeStaging(store.ingestRoot);
    return store;
  }

  async info(digest: Digest): Promise<Info> {
    const parsed = parseDigest(digest);
    const info = await this.blobInfo(digest, parsed);
    if (!info) throw new NotFoundError(`content ${digest}`);
    return info;
  }

  async update(info: { digest: Digest; labels?: Labels }, fieldpaths: readonly string[] = []): Promise<Info> {
    const digest = info.digest;
    parseDigest(digest);
    if (!this.labelStore) throw new FailedPreconditionError('update not supported on immutable content store');
    let replace = fieldpaths.length === 0;
    const keys: string[] = [];
    for (const path of fieldpaths) {
      if (path === 'labels') replace = true;
      else if (path.startsWith('labels.')) keys.push(path.slice('labels.'.length));
      else throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on content info ${JSON.stringify(digest)}`);
    }
    const given = info.labels ?? {};
    validateLabels(given);
    await this.info(digest);
    await this.labelStore.update(digest, (current) => {
      if (replace) return dropEmptyLabels(given);
      const next = { ...current };
      for (const key of keys) {
        const value = given[key];
        if (value === undefined || value === '') delete next[key];
        else next[key] = value;
      }
      return next;
    });
    return this.info(digest);
  }

  async walk(fn: (info: Info) => void | Promise<void>, filter?: InfoFilter): Promise<void> {
    for (const algorithm of await this.algorithmDirs()) {
      const dir = await fsp.opendir(join(this.blobRoot, algorithm));
      for await (const entry of dir) {
        if (!entry.isFile()) continue;
        const digest = `${algorithm}:${entry.name}`;
        let parsed: ParsedDigest;
        try {
          parsed = parseDigest(digest);
        } catch {
          continue; // not a blob: junk or an old temporary file
        }
        const info = await this.blobInfo(digest, parsed);
        if (!info || (filter && !filter(info))) continue;
        await fn(info);
      }
    }
  }

  async delete(digest: Digest): Promise<void> {
    const parsed = parseDigest(digest);
    const path = this.blobPath(parsed);
    this.handles.invalidate(path);
    try {
      await fsp.unlink(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError(`content ${digest}`, { cause: err });
      throw err;
    }
    await this.labelStore?.delete(digest);
  }

  async readerAt(desc: DescriptorLike): Promise<ReaderAt> {
    const digest = desc.digest;
    try {
      const { fh, size, release } = await this.handles.acquire(this.blobPath(parseDigest(digest)));
      return new FileReaderAt(fh, size, release);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError(`content ${digest}`, { cause: err });
      throw err;
    }
  }

  async status(ref: string): Promise<Status> {
    validateRef(ref);
    const status = await readIngest(join(this.ingestRoot, ingestName(ref)));
    if (!status || status.ref !== ref) throw new NotFoundError(`reference ${ref}`);
    return status;
  }

  async listStatuses(filter?: StatusFilter): Promise<Status[]> {
    const out: Status[] = [];
    for (const name of await fsp.readdir(this.ingestRoot)) {
      if (!isIngestName(name)) continue;
      // Ingests committed or aborted while listing just drop out.
      const status = await readIngest(join(this.ingestRoot, name));
      if (status && (!filter || filter(status))) out.push(status);
    }
    return out;
  }

  async abort(ref: string): Promise<void> {
    validateRef(ref);
    const dir = join(this.ingestRoot, ingestName(ref));
    try {
      await fsp.stat(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError(`reference ${ref}`, { cause: err });
      throw err;
    }
    // As in containerd, abort does not wait for a writer holding the ref: that writer's commit
    // then fails with NotFound.
    await fsp.rm(dir, { recursive: true, force: true });
  }

  async writer(options: WriterOptions): Promise<Writer> {
    const ref = validateRef(options.ref);
    const total = options.total ?? 0;
    if (!Number.isSafeInteger(total) || total < 0) {
      throw new InvalidArgumentError(`total must be a non-negative integer, got ${total}`);
    }
    const expected = options.expected ? validateDigest(options.expected) : undefined;
    await this.locks.acquire(ref, this.lockRetry);
    try {
      if (expected !== undefined && (await this.blobInfo(expected, parseDigest(expected)))) {
        throw new AlreadyExistsError(`content ${expected}`);
      }
      const notify = options.notify ?? true;
      const w = await LocalWriter.open(this.host, ref, join(this.ingestRoot, ingestName(ref)), { total, expected, notify });
      if (notify) for (const l of this.writingListeners) l();
      return w;
    } catch (err) {
      this.locks.release(ref);
      throw err;
    }
  }

  async diskUsage(digest: Digest): Promise<number> {
    const parsed = parseDigest(digest);
    try {
      const stat = await fsp.stat(this.blobPath(parsed), { bigint: true });
      if (stat.isFile()) return Number(stat.blocks) * 512;
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
    }
    throw new NotFoundError(`content ${digest}`);
  }

  /** Returns the path of a blob, whether or not it exists. */
  blobPath(digest: ParsedDigest): string {
    return join(this.blobRoot, digest.algorithm, digest.hex);
  }

  private async blobInfo(digest: Digest, parsed: ParsedDigest): Promise<Info | undefined> {
    let stat;
    try {
      stat = await fsp.stat(this.blobPath(parsed), { bigint: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw err;
    }
    if (!stat.isFile()) return undefined;
    const createdAt = roundedTime(stat.mtimeNs);
    const record = await this.labelStore?.get(digest);
    return {
      digest,
      size: Number(stat.size),
      createdAt,
      updatedAt: record && record.updatedAt > createdAt ? record.updatedAt : createdAt,
      labels: record?.labels ?? {},
    };
  }

  private async algorithmDirs(): Promise<DigestAlgorithm[]> {
    const names = await fsp.readdir(this.blobRoot);
    return names.filter(isSupportedAlgorithm).sort();
  }
}
