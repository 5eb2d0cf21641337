import type { Readable } from 'node:stream';
import type { Digest } from './digest';

/** Labels on a blob: string keys and values; an empty value means "absent". */
export type Labels = Record<string, string>;

/** What the store knows about a committed blob. */
export interface Info {
  digest: Digest;
  /** Size in bytes. */
  size: number;
  /** When the blob was committed. */
  createdAt: Date;
  /** When the blob or its labels last changed. */
  updatedAt: Date;
  /** The blob's labels; empty when the store keeps none. */
  labels: Labels;
}

/** The state of an ingest: an unfinished, resumable write identified by its ref. */
export interface Status {
  ref: string;
  /** Bytes written so far: where the next write goes. */
  offset: number;
  /** The size announced when the ingest was opened; 0 when unknown. */
  total: number;
  /** The digest the writer was told to expect, when it was told. */
  expected?: Digest;
  startedAt: Date;
  updatedAt: Date;
}

/** Names a blob to read. Any OCI descriptor fits; `size`, when given, is informational. */
export interface DescriptorLike {
  digest: Digest;
  size?: number;
}

/**
 * Random access to one committed blob. Holds an open handle until {@link close}; nothing is
 * buffered beyond the chunk being read.
 */
export interface ReaderAt {
  /** Size of the blob in bytes: readers compare offsets against it (read-past-end is theirs to report). */
  readonly size: number;
  /**
   * A file descriptor for positional reads of the blob while this reader is open (another
   * thread may use it), when the blob is a local file; never closed by its user.
   */
  readonly fd?: number;
  /**
   * Reads up to `buffer.byteLength` bytes starting at `offset` into `buffer` and returns how many
   * were read: fewer only at the end of the blob, 0 at or after the end. InvalidArgument for a
   * negative or non-integer offset.
   */
  readAt(buffer: Uint8Array, offset: number): Promise<number>;
  /**
   * Returns a stream of the bytes in [offset, offset + length), clipped to the blob; `length`
   * omitted means "to the end". Close the ReaderAt only after its streams have ended.
   */
  createReadStream(offset?: number, length?: number): Readable;
  /** Releases the handle. Safe to call more than once. */
  close(): Promise<void>;
}

/** What to open a writer for. */
export interface WriterOptions {
  /** Names the ingest; reopening the same ref resumes it. Required, at most 4096 bytes. */
  ref: string;
  /** The size the content should have, when known; 0 or omitted means unknown. */
  total?: number;
  /**
   * The digest the content should have, when known. Opening fails with AlreadyExists when it is
   * already committed; its algorithm is the one the writer hashes with.
   */
  expected?: Digest;
  /**
   * Whether the store's listeners hear of this writer and its blob (the layer prefetcher starts
   * its worker when a writer opens, and extracts the layers committed). Default true; a caller
   * that consumes the blob itself says false (a pull that unpacks warms the differ itself).
   */
  notify?: boolean;
}

/**
 * The bytes of an ingest while they are being written, for a reader that consumes them as they
 * arrive (an unpack that runs alongside the download). The reader makes positional reads on `fd`
 * up to `written`, and waits for {@link onChange} when it has caught up. It has read the whole
 * blob once `ended` is `verified` and it has read `written` bytes: the writer checked them against
 * the digest it committed. Any other end (the writer was closed, truncated or failed) is an error
 * for the reader: the bytes it read may not be the blob's.
 */
export interface GrowingBlob {
  /** A file descriptor open for reading on the ingest's data until {@link close}. */
  readonly fd: number;
  /** How many bytes from offset 0 are on the file now. */
  readonly written: number;
  /** Undefined while the writer writes; then `verified`, or the error that ended it. */
  readonly ended: undefined | 'verified' | Error;
  /** Calls `listener` (synchronously) after `written` or `ended` changed; returns the unsubscriber. */
  onChange(listener: () => void): () => void;
  /** Closes the descriptor. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Appends bytes to one ingest and commits them as a blob. A writer holds its ref's lock from
 * {@link Ingester.writer} until {@link commit} or {@link close}; a writer that is neither committed
 * nor closed keeps the ref locked.
 *
 * Calls are applied in the order they are made, so writes may be issued without awaiting each.
 */
export interface Writer {
  readonly ref: string;
  /**
   * Appends `chunk` at the current offset and returns its length. The caller must not change the
   * chunk until the promise settles. A failed write leaves the writer unusable until `truncate(0)`
   * or a close and reopen (which resumes from what reached the disk).
   */
  write(chunk: Uint8Array): Promise<number>;
  /**
   * {@link write} of several chunks, appended in order with one system call where the store can:
   * a caller gathering network reads need not copy them into one buffer. Stores without it take
   * the chunks one {@link write} at a time.
   */
  writev?(chunks: readonly Uint8Array[]): Promise<number>;
  /**
   * Checks and stores the content as a blob, then removes the ingest and releases the ref.
   * `size` > 0 must equal the bytes written (FailedPrecondition `"<ref>" failed size validation:
   * <written> != <size>`); `expected`, when given, must equal the digest (FailedPrecondition
   * `unexpected commit digest <actual>, expected <expected>`). A failed check closes the writer
   * but keeps the ingest, which the next writer for the ref resumes. When the blob already
   * exists the ingest is removed and AlreadyExists `content <digest>` is thrown; clients treat
   * that as success. `labels` are stored with the blob when the store keeps labels (not when
   * the blob already existed, as in containerd's local store).
   */
  commit(size: number, expected?: Digest, labels?: Labels): Promise<void>;
  /** Discards the bytes written so far. Only `0` is supported (NotImplemented otherwise). */
  truncate(size: number): Promise<void>;
  /** Returns the digest of the bytes written so far (after a commit: the committed digest). */
  digest(): Promise<Digest>;
  /** Returns the ingest's status as this writer sees it. */
  status(): Promise<Status>;
  /** Releases the ref, keeping the ingest for a later resume. Safe after commit and when repeated. */
  close(): Promise<void>;
  /**
   * Opens the ingest's bytes for reading while they are written (see {@link GrowingBlob}), from
   * offset 0, including bytes a resumed ingest already held. Undefined when the writer receives no
   * bytes (it links a blob the store has). FailedPrecondition once the writer is closed or committed.
   * Stores that cannot offer it leave it out.
   */
  follow?(): Promise<GrowingBlob | undefined>;
}

/** Selects blobs in {@link Manager.walk}; the service builds it from containerd filter strings. */
export type InfoFilter = (info: Info) => boolean;
/** Selects ingests in {@link IngestManager.listStatuses} (containerd's filter field is `ref`). */
export type StatusFilter = (status: Status) => boolean;

/** Reads committed blobs. */
export interface Provider {
  /** Opens a blob for reading; NotFound `content <digest>` when absent. */
  readerAt(desc: DescriptorLike): Promise<ReaderAt>;
}

/** Opens writers. */
export interface Ingester {
  /**
   * Opens or resumes the ingest named `ref`. InvalidArgument for an empty or over-long ref, a
   * bad `total` or a malformed `expected`; AlreadyExists `content <expected>` when `expected` is
   * already committed; Unavailable `ref <ref> locked for <N>ms (since <time>)` when another
   * writer holds the ref past a short retry.
   */
  writer(options: WriterOptions): Promise<Writer>;
}

/** Inspects and removes committed blobs. */
export interface Manager {
  /** Returns a blob's info; NotFound `content <digest>` when absent, InvalidArgument when malformed. */
  info(digest: Digest): Promise<Info>;
  /**
   * Changes a blob's labels and returns its info. `fieldpaths` may hold `labels` (replace all) and
   * `labels.<key>` (set that key from `info.labels`, deleting it when the value is empty or
   * missing); none means "replace all labels". Other paths are InvalidArgument. A store that
   * keeps no labels throws FailedPrecondition.
   */
  update(info: { digest: Digest; labels?: Labels }, fieldpaths?: readonly string[]): Promise<Info>;
  /** Calls `fn` for every blob (that `filter` accepts), one at a time, awaiting each call. */
  walk(fn: (info: Info) => void | Promise<void>, filter?: InfoFilter): Promise<void>;
  /** Removes a blob; NotFound `content <digest>` when absent. Open readers keep working. */
  delete(digest: Digest): Promise<void>;
  /**
   * Returns the bytes a blob takes on disk (its allocated blocks, st_blocks * 512, as du counts
   * them); NotFound `content <digest>` when absent. Stores that cannot tell (a proxy) leave it out.
   */
  diskUsage?(digest: Digest): Promise<number>;
}

/** Inspects and removes ingests. */
export interface IngestManager {
  /** Returns an ingest's status; NotFound `reference <ref>` when there is none. */
  status(ref: string): Promise<Status>;
  /** Returns the status of every ingest (that `filter` accepts), in no particular order. */
  listStatuses(filter?: StatusFilter): Promise<Status[]>;
  /** Removes an ingest and its data; NotFound `reference <ref>` when there is none. */
  abort(ref: string): Promise<void>;
}

/**
 * A content-addressed blob store: blobs are written through resumable ingests and committed
 * under their digest. Implemented by the local filesystem store and, in the daemon, by the
 * namespaced metadata layer over it. Every implementation runs `runContentStoreSuite`.
 */
export interface ContentStore extends Manager, Provider, IngestManager, Ingester {}
