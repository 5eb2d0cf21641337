import { type Context, namespaceRequired } from '@berth/context';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  isAlreadyExists,
  isFailedPrecondition,
  isNotFound,
} from '@berth/errdefs';
import {
  type MetadataDb,
  type NamespaceRecord,
  type ReadTx,
  namespacesPrefix,
  addLeaseResource,
  nextSequence,
  objectKey,
  objectsPrefix,
  parseNamespaceKey,
  parseObjectKey,
  removeLeasedEverywhere,
  holdExisting,
  leaseHolds,
  ownValue,
  setOwn,
} from '@berth/metadata';
import { parseDigest, type Digest } from './digest';
import { gcLockOf } from './gc-lock';
import { validateIngestRef } from './ingest-ref';
import { dropEmptyLabels, validateLabels } from './label-store';
import { DEFAULT_LOCK_RETRY, RefLocks, type LockRetry } from './ref-locks';
import type {
  ContentStore,
  DescriptorLike,
  Info,
  InfoFilter,
  Labels,
  ReaderAt,
  Status,
  GrowingBlob,
  StatusFilter,
  Writer,
  WriterOptions,
} from './types';

/*
 * Records in the metadata database (see @berth/metadata schema.ts):
 *
 *   ['v1', 'ns', <ns>, 'blobs', <digest>]   -> BlobRecord     the blob is visible in <ns>
 *   ['v1', 'ns', <ns>, 'ingests', <ref>]    -> IngestRecord   an open or abandoned write of <ns>
 *   ['v1', 'seq', 'ingests/<ns>']           -> number         last backend ref sequence of <ns>
 *
 * Blob bytes live once in the backend LocalContentStore, under their digest; ingests live there
 * under the backend ref `<ns>/<seq>/<ref>`, so two namespaces using the same client ref never
 * share an ingest. A blob record is written only after the backend commit made the file durable,
 * and deleting a record never touches the file (the garbage collector reclaims unreferenced
 * files), so a record never points at a missing file.
 */

/** A blob as a namespace sees it. Times are milliseconds since the epoch. */
export interface BlobRecord {
  size: number;
  createdAt: number;
  updatedAt: number;
  labels: Labels;
}

/** A namespace's ingest: where its data lives in the backend, and when GC may collect it. */
export interface IngestRecord {
  /** `<ns>/<seq>/<ref>`: the ref of the ingest in the backend store. */
  backendRef: string;
  /** Milliseconds since the epoch after which an unleased ingest may be collected. */
  expireAt?: number;
  expected?: Digest;
}

/** How long an ingest opened without a lease is kept (containerd's 24 hours). */
export const INGEST_EXPIRY_MS = 24 * 60 * 60 * 1000;

/** "shared": blobs already in the backend are linked without their data; "isolated": never. */
export type ContentSharingPolicy = 'shared' | 'isolated';

export interface MetadataContentStoreOptions {
  /** Default "shared", containerd's default. */
  policy?: ContentSharingPolicy;
  /** How long a second writer for a locked ref retries. Default 10 retries, 50 ms apart. */
  lockRetry?: Partial<LockRetry>;
}

const blobKey = (ns: string, digest: Digest) => objectKey(ns, 'blobs', digest);
const ingestKey = (ns: string, ref: string) => objectKey(ns, 'ingests', ref);

function toInfo(digest: Digest, r: BlobRecord): Info {
  return { digest, size: r.size, createdAt: new Date(r.createdAt), updatedAt: new Date(r.updatedAt), labels: { ...r.labels } };
}

/** Validates a digest the store is given, keeping go-digest's message. */
function checkDigest(digest: unknown): Digest {
  parseDigest(digest);
  return digest as Digest;
}

/**
 * The daemon's content store: per-namespace visibility, labels, and ingests in the metadata
 * database, over one backend {@link ContentStore} that holds the bytes (the local store, or a
 * proxy plugin's). Every operation takes the
 * caller's {@link Context} first; its namespace is required, and its lease (if any) holds the
 * ingests and blobs the call creates.
 *
 * The local store stays context-free, so a Node program can use it alone; this layer is where
 * namespaces and leases exist. {@link bind} gives a context-free view for one context (what the
 * conformance suite runs against).
 */
export class MetadataContentStore {
  readonly policy: ContentSharingPolicy;
  private readonly locks = new RefLocks();
  private readonly lockRetry: LockRetry;

  constructor(
    readonly db: MetadataDb,
    readonly backend: ContentStore,
    options: MetadataContentStoreOptions = {},
  ) {
    this.policy = options.policy ?? 'shared';
    this.lockRetry = { ...DEFAULT_LOCK_RETRY, ...options.lockRetry };
  }

  /** Returns a blob's info in the namespace; NotFound `content digest <d>` when it has none. */
  async info(ctx: Context, digest: Digest): Promise<Info> {
    const ns = namespaceRequired(ctx);
    checkDigest(digest);
    const record = this.db.view((tx) => tx.get<BlobRecord>(blobKey(ns, digest)));
    if (!record) throw notFound(digest);
    return toInfo(digest, record);
  }

  /**
   * Changes a blob's labels: `labels` replaces all, `labels.<k>` sets or (empty value) deletes
   * one; no paths replaces all. Bumps `updatedAt`. Other paths and oversized labels are
   * InvalidArgument.
   */
  async update(ctx: Context, info: { digest: Digest; labels?: Labels }, fieldpaths: readonly string[] = []): Promise<Info> {
    const ns = namespaceRequired(ctx);
    const digest = checkDigest(info.digest);
    let replace = fieldpaths.length === 0;
    const keys: string[] = [];
    for (const path of fieldpaths) {
      if (path === 'labels') replace = true;
      else if (path.startsWith('labels.')) keys.push(path.slice('labels.'.length));
      else throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on content info ${JSON.stringify(digest)}`);
    }
    const given = info.labels ?? {};
    validateLabels(given);
    const record = this.db.update((tx) => {
      const key = blobKey(ns, digest);
      const current = tx.get<BlobRecord>(key);
      if (!current) throw notFound(digest);
      let labels: Labels;
      if (replace) {
        labels = dropEmptyLabels(given);
      } else {
        labels = { ...current.labels };
        for (const k of keys) {
          const value = ownValue(given, k);
          if (value === undefined || value === '') delete labels[k];
          else setOwn(labels, k, value);
        }
      }
      const next: BlobRecord = { ...current, labels, updatedAt: Math.max(Date.now(), current.updatedAt) };
      tx.ensureNamespace(ns);
      tx.put(key, next);
      return next;
    });
    return toInfo(digest, record);
  }

  /** Calls `fn` for each blob of the namespace (that `filter` accepts), in digest order. */
  async walk(ctx: Context, fn: (info: Info) => void | Promise<void>, filter?: InfoFilter): Promise<void> {
    for (const info of await this.list(ctx, filter)) await fn(info);
  }

  /** Returns the blobs of the namespace (that `filter` accepts), in digest order. */
  async list(ctx: Context, filter?: InfoFilter): Promise<Info[]> {
    const ns = namespaceRequired(ctx);
    // Collected in one read snapshot: lmdb reads must not span an await.
    const infos = this.db.view((tx) => {
      const out: Info[] = [];
      for (const { key, value } of tx.range<BlobRecord>(objectsPrefix(ns, 'blobs'))) {
        const id = parseObjectKey(key, 'blobs');
        if (!id) continue;
        const info = toInfo(id[0], value);
        if (!filter || filter(info)) out.push(info);
      }
      return out;
    });
    return infos;
  }

  /**
   * Removes a blob from the namespace, and from every lease of the namespace that held it. The
   * backend file stays: the garbage collector reclaims it once no namespace references it.
   * NotFound `content digest <d>` when the namespace has no such blob.
   */
  async delete(ctx: Context, digest: Digest): Promise<void> {
    const ns = namespaceRequired(ctx);
    checkDigest(digest);
    this.db.update((tx) => {
      if (!tx.remove(blobKey(ns, digest))) throw notFound(digest);
      removeLeasedEverywhere(tx, ns, { type: 'content', id: digest });
      tx.markDeletion();
    });
  }

  /** Opens a blob of the namespace for reading; NotFound `content digest <d>` when it has none. */
  async readerAt(ctx: Context, desc: DescriptorLike): Promise<ReaderAt> {
    const ns = namespaceRequired(ctx);
    const digest = checkDigest(desc.digest);
    if (!this.db.view((tx) => tx.has(blobKey(ns, digest)))) throw notFound(digest);
    return this.backend.readerAt({ digest });
  }

  /** Returns the status of one of the namespace's ingests; NotFound `reference <ref>` when none. */
  async status(ctx: Context, ref: string): Promise<Status> {
    const ns = namespaceRequired(ctx);
    validateIngestRef(ref);
    const record = this.db.view((tx) => tx.get<IngestRecord>(ingestKey(ns, ref)));
    const status = record && (await this.backendStatus(record.backendRef));
    if (!record || !status) throw new NotFoundError(`reference ${ref}`);
    return asClientStatus(status, ref, record);
  }

  /** Returns the status of the namespace's ingests (that `filter` accepts), by ref. */
  async listStatuses(ctx: Context, filter?: StatusFilter): Promise<Status[]> {
    const ns = namespaceRequired(ctx);
    const records = this.db.view((tx) => ingestsOf(tx, ns));
    const out: Status[] = [];
    for (const [ref, record] of records) {
      // An ingest whose backend data is gone (aborted, or never created) is not listed.
      const status = await this.backendStatus(record.backendRef);
      if (!status) continue;
      const st = asClientStatus(status, ref, record);
      if (!filter || filter(st)) out.push(st);
    }
    return out;
  }

  /** Removes an ingest of the namespace and its data; NotFound `reference <ref>` when none. */
  async abort(ctx: Context, ref: string): Promise<void> {
    const ns = namespaceRequired(ctx);
    validateIngestRef(ref);
    const record = this.db.update((tx) => {
      const key = ingestKey(ns, ref);
      const rec = tx.get<IngestRecord>(key);
      if (!rec) throw new NotFoundError(`reference ${ref}`);
      tx.remove(key);
      removeLeasedEverywhere(tx, ns, { type: 'ingests', id: ref });
      return rec;
    });
    // The record's removal is on disk before the data goes.
    await this.db.durable();
    await this.backend.abort(record.backendRef).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
  }

  /**
   * Opens or resumes the namespace's ingest `ref`. AlreadyExists `content <d>` when `expected` is
   * already in the namespace (the blob then joins the caller's lease first, so the caller can go
   * on using it); Unavailable `ref <ns>/<seq>/<ref> locked for ...` when another writer holds
   * it. Under the shared policy, an `expected` blob already in the backend (another
   * namespace's) with a matching or unknown size opens a writer that needs no data: its status
   * reports offset = total = the blob's size, and its commit links the blob.
   */
  async writer(ctx: Context, options: WriterOptions): Promise<MetadataWriter> {
    const ns = namespaceRequired(ctx);
    const ref = validateIngestRef(options.ref);
    const total = options.total ?? 0;
    if (!Number.isSafeInteger(total) || total < 0) throw new InvalidArgumentError(`total must be a non-negative integer, got ${total}`);
    let expected: Digest | undefined;
    if (options.expected) expected = checkDigest(options.expected);
    if (expected && this.hold(ctx, expected)) throw new AlreadyExistsError(`content ${expected}`);

    // The ref is locked before its record is written. A writer waiting for a ref must not
    // rewrite the record of the writer holding it: that one's commit removes the record, and the
    // waiting writer's data would then be an ingest nothing references, for the collector to take.
    const lockKey = `${ns}\u0000${ref}`;
    const holder = () => this.db.view((tx) => tx.get<IngestRecord>(ingestKey(ns, ref))?.backendRef) ?? ref;
    await this.locks.acquire(lockKey, this.lockRetry, holder);
    try {
      const record = () =>
        this.db.update((tx) => {
          tx.ensureNamespace(ns);
          const key = ingestKey(ns, ref);
          const existing = tx.get<IngestRecord>(key);
          const bref = existing?.backendRef ?? `${ns}/${nextSequence(tx, `ingests/${ns}`)}/${ref}`;
          const want = expected ?? existing?.expected;
          const rec: IngestRecord = {
            backendRef: bref,
            ...(ctx.lease ? {} : { expireAt: Date.now() + INGEST_EXPIRY_MS }),
            ...(want ? { expected: want } : {}),
          };
          tx.put(key, rec);
          addLeaseResource(tx, ns, ctx.lease, { type: 'ingests', id: ref });
          return bref;
        });

      let shared: Info | undefined;
      let backendRef: string;
      if (expected && this.policy === 'shared') {
        // The ingest record names the expected blob, which keeps the backend file from the
        // collector's file phase (see collectBackend); writing it and looking the blob up under
        // the shared lock means the collector either removed the file before (no sharing: the
        // client sends the data) or keeps it until the ingest goes.
        const want = expected;
        backendRef = await gcLockOf(this.backend).shared(async () => {
          const bref = record();
          const info = await this.backend.info(want).catch((err) => {
            if (isNotFound(err)) return undefined;
            throw err;
          });
          if (info && (total === 0 || total === info.size)) shared = info;
          return bref;
        });
      } else {
        backendRef = record();
      }

      const host: NamespacedHost = { store: this, ns, lease: ctx.lease, release: () => this.locks.release(lockKey) };
      const notify = options.notify ?? true;
      if (shared) return new MetadataWriter(host, ref, backendRef, total || shared.size, expected, undefined, shared, notify);
      const backendWriter = await this.openBackend(backendRef, total, expected, notify);
      return new MetadataWriter(host, ref, backendRef, total, expected, backendWriter, undefined, notify);
    } catch (err) {
      this.locks.release(lockKey);
      throw err;
    }
  }

  /** Returns a context-free {@link ContentStore} acting in `ctx`'s namespace (and lease). */
  bind(ctx: Context): ContentStore {
    return {
      info: (d) => this.info(ctx, d),
      update: (info, paths) => this.update(ctx, info, paths),
      walk: (fn, filter) => this.walk(ctx, fn, filter),
      delete: (d) => this.delete(ctx, d),
      readerAt: (desc) => this.readerAt(ctx, desc),
      status: (ref) => this.status(ctx, ref),
      listStatuses: (filter) => this.listStatuses(ctx, filter),
      abort: (ref) => this.abort(ctx, ref),
      writer: (options) => this.writer(ctx, options),
    };
  }

  /** Opens the backend writer of an ingest; `expected` only when the backend lacks it. */
  async openBackend(backendRef: string, total: number, expected: Digest | undefined, notify = true): Promise<Writer> {
    try {
      return await this.backend.writer({ ref: backendRef, total, expected, notify });
    } catch (err) {
      // The blob reached the backend through another namespace (or the isolated policy): write
      // it again, and let the commit link it.
      if (expected && isAlreadyExists(err)) return this.backend.writer({ ref: backendRef, total, notify });
      throw err;
    }
  }

  /**
   * Records a committed blob in the namespace and forgets the ingest, in one transaction; the
   * blob joins the writer's lease. Returns false (changing only the ingest, and the lease) when
   * the namespace already had the blob.
   */
  link(host: NamespacedHost, ref: string, backendRef: string, digest: Digest, size: number, labels: Labels): boolean {
    const { ns, lease } = host;
    return this.db.update((tx) => {
      tx.ensureNamespace(ns);
      const key = ingestKey(ns, ref);
      if (tx.get<IngestRecord>(key)?.backendRef === backendRef) {
        tx.remove(key);
        removeLeasedEverywhere(tx, ns, { type: 'ingests', id: ref });
      }
      const bkey = blobKey(ns, digest);
      if (tx.has(bkey)) {
        // The caller goes on using the blob it found: hold it as if this commit created it.
        holdExisting(tx, ns, lease, { type: 'content', id: digest });
        return false;
      }
      const now = Date.now();
      tx.put(bkey, { size, createdAt: now, updatedAt: now, labels: dropEmptyLabels(labels) } satisfies BlobRecord);
      addLeaseResource(tx, ns, lease, { type: 'content', id: digest });
      return true;
    });
  }

  /** Resolves once the metadata written so far is on disk (see MetadataDb.durable). */
  durable(): Promise<void> {
    return this.db.durable();
  }

  /** Reports whether the namespace has a blob. */
  has(ctx: Context, digest: Digest): boolean {
    const ns = namespaceRequired(ctx);
    return this.db.view((tx) => tx.has(blobKey(ns, digest)));
  }

  /**
   * Reports whether the namespace has a blob, and when it has, adds it to `ctx`'s lease (in the
   * transaction that found it), for a caller that answers "already exists" and goes on using
   * it. NotFound `lease does not exist` for a lease that does not.
   */
  hold(ctx: Context, digest: Digest): boolean {
    const ns = namespaceRequired(ctx);
    const resource = { type: 'content', id: digest };
    const seen = this.db.view((tx) => {
      if (!tx.has(blobKey(ns, digest))) return 'absent';
      return !ctx.lease || leaseHolds(tx, ns, ctx.lease, resource) ? 'held' : 'unheld';
    });
    if (seen !== 'unheld') return seen === 'held';
    return this.db.update((tx) => {
      if (!tx.has(blobKey(ns, digest))) return false;
      holdExisting(tx, ns, ctx.lease, resource);
      return true;
    });
  }

  /**
   * Removes backend blobs no namespace has a record of, and backend ingests no ingest record
   * points at (the garbage collector's file phase, run after its sweep). Returns how many it
   * removed. Safe against concurrent writers: backend ingests are listed before the records are
   * read (an ingest's record is written before its backend data), and the record check and the
   * removals hold the backend's lock exclusively, which every commit holds shared from the
   * backend commit until its blob record is written.
   */
  async collectBackend(): Promise<number> {
    const ingests = await this.backend.listStatuses();
    const blobs: Digest[] = [];
    await this.backend.walk((info) => void blobs.push(info.digest));
    return gcLockOf(this.backend).exclusive(async () => {
      const referenced = this.db.view((tx) => referencedEverywhere(tx));
      // What was read is on disk before anything goes: a power loss must not bring back a
      // reference to a removed file.
      await this.db.durable();
      let removed = 0;
      for (const digest of blobs) {
        if (referenced.blobs.has(digest)) continue;
        try {
          await this.backend.delete(digest);
          removed++;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      for (const st of ingests) {
        if (referenced.ingests.has(st.ref)) continue;
        try {
          await this.backend.abort(st.ref);
          removed++;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      return removed;
    });
  }

  private async backendStatus(backendRef: string): Promise<Status | undefined> {
    try {
      return await this.backend.status(backendRef);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

/** What a writer needs from the store that opened it. */
interface NamespacedHost {
  readonly store: MetadataContentStore;
  readonly ns: string;
  readonly lease?: string;
  release(): void;
}

/**
 * A writer of the namespaced store: a backend writer on the ingest's backend ref, or, for a blob
 * shared from another namespace, no backend writer at all until data is actually written.
 */
export class MetadataWriter implements Writer {
  private done = false;
  private committedDigest: Digest | undefined;
  private readonly openedAt = new Date();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: NamespacedHost,
    readonly ref: string,
    /** `<ns>/<seq>/<ref>`, the ingest's ref in the backend store. */
    readonly backendRef: string,
    private total: number,
    private readonly expected: Digest | undefined,
    private backend: Writer | undefined,
    private shared: Info | undefined,
    private readonly notify = true,
  ) {}

  /** Reports whether the writer links an existing blob instead of receiving data. */
  get isShared(): boolean {
    return this.shared !== undefined;
  }

  write(chunk: Uint8Array): Promise<number> {
    if (this.backend && !this.done) return this.backend.write(chunk);
    return this.serial(async () => (await this.materialize(true)).write(chunk));
  }

  writev(chunks: readonly Uint8Array[]): Promise<number> {
    const b = this.backend;
    if (b?.writev && !this.done) return b.writev(chunks);
    return this.serial(async () => {
      const w = await this.materialize(true);
      if (w.writev) return w.writev(chunks);
      let n = 0;
      for (const c of chunks) n += await w.write(c);
      return n;
    });
  }

  truncate(size: number): Promise<void> {
    if (size !== 0) return Promise.reject(new NotImplementedError(`truncate to ${size}: only 0 is supported`));
    if (this.backend && !this.done) return this.backend.truncate(0);
    return this.serial(async () => (await this.materialize(false)).truncate(0));
  }

  async digest(): Promise<Digest> {
    if (this.committedDigest) return this.committedDigest;
    if (this.shared) return this.shared.digest;
    return this.serial(() => this.backend!.digest());
  }

  async status(): Promise<Status> {
    if (this.shared) {
      const size = this.shared.size;
      return { ref: this.ref, offset: size, total: size, ...(this.expected ? { expected: this.expected } : {}), startedAt: this.openedAt, updatedAt: this.openedAt };
    }
    const st = await this.serial(() => this.backend!.status());
    return { ...st, ref: this.ref, total: st.total || this.total, ...(this.expected ? { expected: this.expected } : {}) };
  }

  commit(size: number, expected?: Digest, labels?: Labels): Promise<void> {
    return this.serial(async () => {
      if (this.done) throw new FailedPreconditionError('cannot commit on closed writer');
      try {
        await this.commitOpen(size, expected || undefined, labels ?? {});
      } catch (err) {
        // "Already exists" acknowledges a record too, maybe one another writer just made.
        if (isAlreadyExists(err)) await this.host.store.durable();
        throw err;
      } finally {
        await this.finish();
      }
      // A commit is acknowledged (a Write stream's reply) only once its record is on disk.
      await this.host.store.durable();
    });
  }

  close(): Promise<void> {
    return this.serial(() => this.finish());
  }

  /** The backend's {@link Writer.follow}; undefined for a writer that links a stored blob. */
  follow(): Promise<GrowingBlob | undefined> {
    return this.serial(async () => {
      if (this.done) throw new FailedPreconditionError(`writer for ref ${this.ref} is closed`);
      if (!this.backend?.follow) return undefined;
      return this.backend.follow();
    });
  }

  private async commitOpen(size: number, expected: Digest | undefined, labels: Labels): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`commit size must be a non-negative integer, got ${size}`);
    if (expected !== undefined) parseDigest(expected);
    validateLabels(labels);
    const { store } = this.host;
    // Shared with other commits, exclusive with the collector's file removal: from the backend
    // commit until the blob record exists, the blob is referenced by nothing in the metadata.
    await gcLockOf(store.backend).shared(() => this.commitLocked(size, expected, labels));
  }

  private async commitLocked(size: number, expected: Digest | undefined, labels: Labels): Promise<void> {
    const { store } = this.host;
    let digest: Digest;
    let written: number;
    if (this.shared) {
      written = this.shared.size;
      digest = this.shared.digest;
      if (size > 0 && size !== written) throw new FailedPreconditionError(`"${this.ref}" failed size validation: ${written} != ${size}`);
      if (expected !== undefined && expected !== digest) {
        throw new FailedPreconditionError(`unexpected commit digest ${digest}, expected ${expected}`);
      }
      // The blob was another namespace's when this writer opened; the collector may have removed
      // it since (under the lock now held it cannot any more).
      await store.backend.info(digest).catch((err) => {
        if (isNotFound(err)) throw new NotFoundError(`content ${digest}: removed while linking`, { bare: true, cause: err });
        throw err;
      });
      // A data-less link: drop any data an earlier writer left under this ref.
      await store.backend.abort(this.backendRef).catch(() => undefined);
    } else {
      const backend = this.backend!;
      try {
        await backend.commit(size, expected);
      } catch (err) {
        // Checks passed and the blob is already in the backend (another namespace's, or the
        // isolated policy): the bytes were verified, so link it.
        if (!isAlreadyExists(err)) throw this.clientError(err);
      }
      // Read after the commit, which the backend ran after every pending write.
      digest = expected ?? (await backend.digest());
      written = (await backend.status()).offset;
    }
    this.committedDigest = digest;
    if (!store.link(this.host, this.ref, this.backendRef, digest, written, labels)) {
      throw new AlreadyExistsError(`content ${digest}`);
    }
  }

  /** Names the client's ref, not the backend ref, in the backend's size check message. */
  private clientError(err: unknown): unknown {
    const quoted = JSON.stringify(this.backendRef);
    if (isFailedPrecondition(err) && err instanceof Error && err.message.startsWith(quoted)) {
      return new FailedPreconditionError(JSON.stringify(this.ref) + err.message.slice(quoted.length), { bare: true, cause: err });
    }
    return err;
  }

  /**
   * Turns a shared writer into one with a backend ingest, when a client sends data after all:
   * with `copy`, the ingest starts with the shared blob's bytes (the writer's offset is its size).
   */
  private async materialize(copy: boolean): Promise<Writer> {
    if (this.done) throw new FailedPreconditionError(`writer for ref ${this.ref} is closed`);
    if (this.backend) return this.backend;
    const shared = this.shared!;
    const { store } = this.host;
    const w = await store.openBackend(this.backendRef, this.total, undefined, this.notify);
    try {
      await w.truncate(0);
      if (copy) {
        const reader = await store.backend.readerAt({ digest: shared.digest });
        try {
          for await (const chunk of reader.createReadStream()) await w.write(chunk as Buffer);
        } finally {
          await reader.close();
        }
      }
    } catch (err) {
      await w.close();
      throw err;
    }
    this.backend = w;
    this.shared = undefined;
    return w;
  }

  private async finish(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      await this.backend?.close();
    } finally {
      this.host.release();
    }
  }

  /** Runs operations one after another, in call order, whatever each one's outcome. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function notFound(digest: Digest): NotFoundError {
  return new NotFoundError(`content digest ${digest}`);
}

function ingestsOf(tx: ReadTx, ns: string): Array<[string, IngestRecord]> {
  const out: Array<[string, IngestRecord]> = [];
  for (const { key, value } of tx.range<IngestRecord>(objectsPrefix(ns, 'ingests'))) {
    const id = parseObjectKey(key, 'ingests');
    if (id) out.push([id[0], value]);
  }
  return out;
}

/** Every blob digest and backend ingest ref some namespace references (or an ingest expects). */
function referencedEverywhere(tx: ReadTx): { blobs: Set<string>; ingests: Set<string> } {
  const blobs = new Set<string>();
  const ingests = new Set<string>();
  for (const { key } of tx.range<NamespaceRecord>(namespacesPrefix())) {
    const ns = parseNamespaceKey(key);
    if (ns === undefined) continue;
    for (const { key: k } of tx.range<BlobRecord>(objectsPrefix(ns, 'blobs'))) {
      const id = parseObjectKey(k, 'blobs');
      if (id) blobs.add(id[0]);
    }
    for (const [, record] of ingestsOf(tx, ns)) {
      ingests.add(record.backendRef);
      // An open ingest may be about to link its expected blob from the backend (shared policy).
      if (record.expected) blobs.add(record.expected);
    }
  }
  return { blobs, ingests };
}

function asClientStatus(st: Status, ref: string, record: IngestRecord): Status {
  const expected = record.expected ?? st.expected;
  const { expected: _drop, ...rest } = st;
  return { ...rest, ref, ...(expected ? { expected } : {}) };
}
