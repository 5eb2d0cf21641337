import type { Context } from '@berth/context';
import type { GrowingBlob, MetadataContentStore, MetadataWriter } from '@berth/content';
import {
  InvalidArgumentError,
  isAlreadyExists,
  isCanceled,
  isDeadlineExceeded,
  isFailedPrecondition,
  isNotFound,
  isUnavailable,
  wrap,
} from '@berth/errdefs';
import type { OciDescriptor } from '@berth/images';
import { ConcurrencyLimit, type ImageReference, type RegistryClient, sleep } from '@berth/remotes';
import type { BlobProgress } from './pull-progress';

/** The largest write a pull makes into an ingest. */
const WRITE_SIZE = 1 << 20;

/** What {@link BlobFetcher.fetch} found: the blob was fetched now, or the store had it. */
export type FetchOutcome = 'fetched' | 'exists';

/** Settings of a {@link BlobFetcher}. */
export interface BlobFetcherOptions {
  client: RegistryClient;
  /** The reference the blobs are fetched for (its repository). */
  ref: ImageReference;
  content: MetadataContentStore;
  progress: BlobProgress;
  /** Blobs transferred at once; more wait, first come first served. */
  concurrency: number;
}

/** Per-blob options of {@link BlobFetcher.fetch}. */
export interface FetchBlobOptions {
  /** The progress name of the blob: also its ingest ref, so an interrupted pull resumes it. */
  name: string;
  /** Names of the descriptors that list the blob, for its progress events. */
  parents: string[];
  /** Labels the blob is committed with. */
  labels: Record<string, string>;
  /** Called once the blob waits for a transfer slot (or needs none): lets a caller order the queue. */
  onQueued?: () => void;
  /** The blob's bytes, already downloaded and verified by {@link BlobFetcher.download}: only stored. */
  bytes?: Buffer;
}

/** The largest blob {@link BlobFetcher.download} takes into memory. */
export const SMALL_BLOB_SIZE = 1 << 20;

/** The longest wait between attempts to open a ref another writer holds, in milliseconds. */
const MAX_LOCK_DELAY_MS = 1_000;

/**
 * Fetches blobs from a registry into the namespaced content store, one ingest per blob named by
 * its progress name. A blob already in the namespace is not fetched. An ingest left by an
 * interrupted pull is resumed from its offset (the store rehashes what it holds and checks the
 * digest at commit); if the resumed bytes turn out wrong, the blob is fetched again from byte 0,
 * once. Bytes that fail verification are never committed, and their ingest is removed so that
 * the next pull does not resume from them. A ref another writer holds (a concurrent pull of the
 * same blob) is waited for: that writer's commit then makes this one "already exists".
 */
export class BlobFetcher {
  private readonly slots: ConcurrencyLimit;
  /** The writer of each blob being fetched, once open (undefined: nothing to fetch). */
  private readonly writers = new Map<string, Promise<MetadataWriter | undefined>>();

  constructor(private readonly options: BlobFetcherOptions) {
    this.slots = new ConcurrencyLimit(options.concurrency);
  }

  /**
   * The bytes of a blob this fetcher is fetching, as they arrive (see `GrowingBlob`): for an
   * unpack that runs alongside the download. Undefined when the blob needs no fetch, or its fetch
   * is over or never started; the caller then reads the stored blob.
   */
  async follow(digest: string): Promise<GrowingBlob | undefined> {
    const writer = await this.writers.get(digest)?.catch(() => undefined);
    // A writer that committed or closed meanwhile cannot be followed: the blob is stored (or failed).
    return writer?.follow().catch(() => undefined);
  }

  /**
   * Downloads a small blob (at most {@link SMALL_BLOB_SIZE}) into memory, verified against its
   * digest, in a transfer slot, with its progress events up to `downloading`; {@link fetch} with
   * `bytes` then stores it (and reports it complete). A pull reads an index, manifest or config
   * from these bytes at once, while the store's commit runs beside the fetches that follow.
   */
  async download(ctx: Context, desc: OciDescriptor, options: Pick<FetchBlobOptions, 'name' | 'parents' | 'onQueued'>): Promise<Buffer> {
    const { progress, client, ref } = this.options;
    const { name } = options;
    if (desc.size > SMALL_BLOB_SIZE) throw new InvalidArgumentError(`${desc.digest}: ${desc.size} bytes is too large to hold in memory`);
    progress.waiting(name, desc, options.parents);
    let release: (() => void) | undefined;
    let queued = false;
    const markQueued = () => {
      if (!queued) options.onQueued?.();
      queued = true;
    };
    try {
      const slot = this.slots.acquire(ctx.signal);
      markQueued();
      release = await slot;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of await client.fetch(ref, desc, { signal: ctx.signal })) {
        chunks.push(chunk as Buffer);
        size += (chunk as Buffer).length;
        progress.wrote(name, size);
      }
      return Buffer.concat(chunks, size);
    } catch (err) {
      progress.drop(name);
      if (isCanceled(err) || isDeadlineExceeded(err)) throw err;
      throw wrap(err, `failed to fetch ${name}`);
    } finally {
      release?.();
      markQueued();
    }
  }

  /** Fetches one blob (see the class); progress events go to the tracker. */
  async fetch(ctx: Context, desc: OciDescriptor, options: FetchBlobOptions): Promise<FetchOutcome> {
    let opened!: (w: MetadataWriter | undefined) => void;
    this.writers.set(desc.digest, new Promise((resolve) => (opened = resolve)));
    try {
      return await this.fetchOnce(ctx, desc, options, opened);
    } finally {
      opened(undefined);
      this.writers.delete(desc.digest);
    }
  }

  private async fetchOnce(ctx: Context, desc: OciDescriptor, options: FetchBlobOptions, opened: (w: MetadataWriter | undefined) => void): Promise<FetchOutcome> {
    const { progress } = this.options;
    const { name } = options;
    // The blob takes its place in the queue before its ingest opens: the caller queues the next
    // blob as soon as this one is queued, and opening takes a while.
    const slot = options.bytes ? undefined : this.slots.acquire(ctx.signal);
    // Cancelled while the ingest opens: the error that reaches the caller is the open's, or the slot's below.
    slot?.catch(() => undefined);
    let release: (() => void) | undefined;
    options.onQueued?.();
    try {
      let writer = await this.open(ctx, desc, name);
      if (!writer) {
        progress.exists(name, desc);
        return 'exists';
      }
      try {
        let offset = (await writer.status()).offset;
        if (offset > desc.size) {
          await writer.truncate(0);
          offset = 0;
        }
        opened(writer);
        if (slot) {
          progress.waiting(name, desc, options.parents, offset);
          release = await slot;
        }
        for (let restarted = false; ; restarted = true) {
          try {
            if (options.bytes) await this.writeBytes(writer, options.bytes, offset);
            else await this.copy(ctx, writer, desc, name, offset);
            await writer.commit(desc.size, desc.digest, options.labels);
            progress.complete(name, desc);
            return 'fetched';
          } catch (err) {
            if (isAlreadyExists(err)) {
              progress.exists(name, desc);
              return 'exists';
            }
            if (!isFailedPrecondition(err)) throw err;
            // The ingest holds wrong bytes (a bad registry, or a bad earlier pull): never resume from them.
            await writer.close();
            await this.discard(ctx, name);
            if (offset === 0 || restarted) throw err;
            writer = await this.open(ctx, desc, name);
            if (!writer) {
              progress.exists(name, desc);
              return 'exists';
            }
            offset = 0;
          }
        }
      } finally {
        // Keeps the ingest (and its bytes) for the next pull when this one failed or was cancelled.
        await writer?.close().catch(() => undefined);
      }
    } catch (err) {
      progress.drop(name);
      if (isCanceled(err) || isDeadlineExceeded(err)) throw err;
      throw wrap(err, `failed to fetch ${name}`);
    } finally {
      // A slot granted and not used (the blob was there) goes to the next blob at once.
      if (release) release();
      else void slot?.then((r) => r(), () => undefined);
    }
  }

  /** Writes downloaded bytes from `offset` on (nothing when the writer links a stored blob). */
  private async writeBytes(writer: MetadataWriter, bytes: Buffer, offset: number): Promise<void> {
    if (offset >= bytes.length) return;
    await writer.write(bytes.subarray(offset));
  }

  /** Streams the blob from `offset` on into the writer, reporting the ingest's size as it grows. */
  private async copy(ctx: Context, writer: MetadataWriter, desc: OciDescriptor, name: string, offset: number): Promise<void> {
    if (offset >= desc.size) return;
    const { client, ref, progress } = this.options;
    // The writer hashes what it stores and checks the digest at commit: the fetcher checks sizes.
    // Network chunks (16-64 KiB) are gathered into writes of up to WRITE_SIZE (one writev each, no
    // copy), and the next write is gathered while the previous one is on disk: one write in flight.
    let position = offset;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let inFlight: Promise<unknown> = Promise.resolve();
    const flush = async () => {
      const chunks = pending;
      const end = position + pendingBytes;
      pending = [];
      pendingBytes = 0;
      await inFlight;
      inFlight = writer.writev(chunks).then(() => progress.wrote(name, end));
      position = end;
    };
    try {
      await client.fetchTo(
        ref,
        desc,
        (chunk) => {
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes >= WRITE_SIZE) return flush();
        },
        { offset, signal: ctx.signal, sizeOnly: true },
      );
      if (pendingBytes > 0) await flush();
    } finally {
      await inFlight.catch(() => undefined);
    }
    await inFlight;
  }

  /**
   * Opens the blob's ingest; undefined when the namespace has the blob (it then joins the
   * context's lease). Waits while another writer holds the ref.
   */
  private async open(ctx: Context, desc: OciDescriptor, name: string): Promise<MetadataWriter | undefined> {
    for (let delay = 25; ; delay = Math.min(delay * 2, MAX_LOCK_DELAY_MS)) {
      try {
        // The pull unpacks what it fetched itself: the prefetcher need not hear of it.
        return await this.options.content.writer(ctx, { ref: name, total: desc.size, expected: desc.digest, notify: false });
      } catch (err) {
        if (isAlreadyExists(err)) return undefined;
        if (!isUnavailable(err)) throw err;
      }
      await sleep(delay, ctx.signal);
    }
  }

  /** Removes an ingest whose bytes are wrong. */
  private async discard(ctx: Context, name: string): Promise<void> {
    try {
      await this.options.content.abort(ctx, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
