import * as fs from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { activeCompileCache } from '@berth/compile-cache';
import type { GrowingBlob } from '@berth/content';
import { FailedPreconditionError, errorOfKind, kindOf } from '@berth/errdefs';
import { untilAborted } from './abort';
import type { ApplyResult } from './apply';
import type { GrowthMessage, PrefetchJob, PrefetchOutcome, StreamJob, StreamProgress, WorkerRequest } from './prefetch-worker';

/** Where a committed blob's file is (the local content store's blob path). */
export type BlobPathOf = (digest: string) => string;

/** The worker script: next to this module once built; from the build output under jest (sources are .ts). */
const WORKER_SCRIPT = __filename.endsWith('.ts') ? join(__dirname, '../dist/prefetch-worker-main.js') : join(__dirname, 'prefetch-worker-main.js');

export interface LayerPrefetcherOptions {
  /** A prefetched tree nobody took is removed after this long. Default 2 minutes. */
  ttlMs?: number;
  /** Blobs waiting for extraction at most; later ones are not prefetched. Default 64. */
  maxQueued?: number;
  /** The worker threads end after this long without work (each costs ~10 MiB). Default 30 s. */
  workerIdleMs?: number;
  /** Debug log: trees taken, blobs not prefetched and why. */
  log?: (msg: string, fields: Record<string, string>) => void;
}

type State = 'queued' | 'running' | 'ready' | 'failed';

/** What a worker thread does: streamed applies, or extractions of committed blobs. */
type WorkerSlot = 'stream' | 'extract';
const WORKER_SLOTS: readonly WorkerSlot[] = ['stream', 'extract'];

interface Entry {
  digest: string;
  dir: string;
  state: State;
  done: Promise<void>;
  finish: () => void;
  result?: ApplyResult;
  timer?: NodeJS.Timeout;
}

/** Where {@link LayerPrefetcher.applyStreamed} applies a blob, and how. */
export interface StreamTarget {
  /** The directory the layer is applied into (an overlay upper, or a bind source). */
  dir: string;
  /** Whether `dir` is an overlay upper over `parents` (whiteouts become overlay ones). */
  overlay: boolean;
  parents: readonly string[];
  mediaType?: string;
  expectedDiffId?: string;
  signal?: AbortSignal;
  /** Told how many bytes of the blob were read so far. */
  onProgress?: (read: number) => void;
}

/** Where {@link LayerPrefetcher.take} moves a tree to, and what the apply needs of it. */
export interface PrefetchTarget {
  /** The directory the layer is applied into: must be empty and on the prefetcher's file system. */
  dir: string;
  /** Whether the target has layers below it (an overlay upper with lowerdirs). */
  hasParents: boolean;
  expectedDiffId?: string;
  signal?: AbortSignal;
}

/**
 * Extracts layer blobs as soon as they are committed to the content store (or a pull says a layer
 * is stored before its turn), one at a time on a worker thread of their own, off the event loop
 * and beside the thread that applies a pull's next layer as it downloads, so that the unpack
 * finds the layer already on disk and only moves it into the snapshot. containerd extracts layer
 * by layer, each after the one below; here extraction overlaps the transfer and the layers below.
 *
 * A tree is extracted as an overlay upper directory over nothing. It is used only where that is
 * the same result as applying in place: into an empty directory, and, over parents, only if the
 * layer created no directory implicitly (those take their attributes from the layers below);
 * without parents, only if it had no whiteouts. Otherwise, and whenever extraction failed or has
 * not started, the caller applies the blob itself (the only path that reports layer errors).
 * Trees live under one directory that is emptied on open and close; nothing there is state.
 */
export class LayerPrefetcher {
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  /**
   * Two worker threads, started when needed: one applies blobs as they download (a pull's next
   * layer), the other extracts committed blobs ahead of their turn, so that on a machine with
   * more than one core the layers after the next are unpacked meanwhile.
   */
  private readonly workers: Record<WorkerSlot, Worker | undefined> = { stream: undefined, extract: undefined };
  /** Jobs posted and not answered, with the worker each went to. */
  private readonly jobs = new Map<number, { worker: Worker; done: (o: PrefetchOutcome) => void; progress?: (read: number) => void }>();
  private nextJob = 1;
  private nextDir = 1;
  private readonly ttlMs: number;
  private readonly maxQueued: number;
  private readonly workerIdleMs: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly log: NonNullable<LayerPrefetcherOptions['log']>;

  private constructor(
    readonly dir: string,
    private readonly blobPath: BlobPathOf,
    options: LayerPrefetcherOptions,
  ) {
    this.ttlMs = options.ttlMs ?? 120_000;
    this.maxQueued = options.maxQueued ?? 64;
    this.workerIdleMs = options.workerIdleMs ?? 30_000;
    this.log = options.log ?? (() => undefined);
  }

  /** Opens the prefetcher on `dir`, removing trees a previous run left. */
  static async open(dir: string, blobPath: BlobPathOf, options: LayerPrefetcherOptions = {}): Promise<LayerPrefetcher> {
    await fs.promises.rm(dir, { recursive: true, force: true });
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    return new LayerPrefetcher(dir, blobPath, options);
  }

  /** Digests extracted or being extracted (for tests and introspection). */
  get pending(): Array<{ digest: string; state: State }> {
    return [...this.entries.values()].map((e) => ({ digest: e.digest, state: e.state }));
  }

  /**
   * Starts the worker thread ahead of the first job (a transfer is beginning), so that its boot
   * is not on the path of the unpack that may follow.
   */
  warm(): void {
    if (this.closed) return;
    this.ensureWorker('stream');
    if (this.jobs.size === 0 && this.queue.length === 0) this.idleSoon();
  }

  /** Whether a worker thread is up (for tests). */
  get workerRunning(): boolean {
    return this.workers.stream !== undefined || this.workers.extract !== undefined;
  }

  /** Schedules extraction of a committed blob; blobs that are not a tar (compressed or not) are skipped. */
  offer(digest: string): void {
    if (this.closed || this.entries.has(digest) || this.queue.length >= this.maxQueued) return;
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    // A directory of its own per offer: a tree still being removed never meets a new extraction.
    const e: Entry = { digest, dir: join(this.dir, `${digest.replace(':', '-')}.${this.nextDir++}`), state: 'queued', done, finish };
    this.entries.set(digest, e);
    this.queue.push(e);
    this.running ??= this.pump().finally(() => (this.running = undefined));
  }

  /**
   * Moves the prefetched tree of `digest` into `target.dir` when one is usable there, waiting
   * for an extraction in progress; returns its apply result, or undefined when the caller must
   * apply the blob itself. A wrong diff ID fails as the apply would, with nothing moved.
   */
  async take(digest: string, target: PrefetchTarget): Promise<ApplyResult | undefined> {
    const e = this.entries.get(digest);
    if (!e) return undefined;
    if (e.state === 'queued') {
      this.queue.splice(this.queue.indexOf(e), 1);
      this.forget(e);
      return undefined;
    }
    // A caller that goes away (client gone, deadline passed) stops waiting; the tree stays
    // for another taker until the idle timer removes it.
    if (e.state === 'running') await untilAborted(e.done, target.signal);
    target.signal?.throwIfAborted();
    if (e.state !== 'ready' || this.entries.get(digest) !== e) return undefined;
    this.forget(e);
    const result = e.result!;
    const dep = result.dependsOnParents;
    try {
      if (target.hasParents ? dep.implicitDirs > 0 || dep.opaqueRoot : dep.whiteouts > 0) return undefined;
      if (target.expectedDiffId !== undefined && target.expectedDiffId !== result.digest) {
        throw new FailedPreconditionError(`wrong diff id calculated on extraction "${result.digest}", expected "${target.expectedDiffId}"`);
      }
      const [there, here] = [fs.statSync(target.dir), fs.statSync(e.dir)];
      if (!there.isDirectory() || there.dev !== here.dev || fs.readdirSync(target.dir).length > 0) return undefined;
      // Renames within one file system: each entry moves whole, with its attributes.
      // Names as bytes: a layer's names need not be UTF-8.
      for (const name of fs.readdirSync(e.dir, { encoding: 'buffer' })) {
        fs.renameSync(Buffer.concat([Buffer.from(`${e.dir}/`), name]), Buffer.concat([Buffer.from(`${target.dir}/`), name]));
      }
      this.log('layer applied from its prefetched tree', { digest });
      return result;
    } finally {
      removeLater(e.dir); // empty once moved; a declined tree goes off the event loop
    }
  }

  /** Stops extracting and removes every tree. */
  async close(): Promise<void> {
    this.closed = true;
    this.queue.length = 0;
    clearTimeout(this.idleTimer);
    // An extraction in progress ends here; its job fails.
    await Promise.all(Object.values(this.workers).map((w) => w?.terminate()));
    await this.running;
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
    await fs.promises.rm(this.dir, { recursive: true, force: true });
  }

  private forget(e: Entry): void {
    clearTimeout(e.timer);
    if (this.entries.get(e.digest) === e) this.entries.delete(e.digest);
  }

  private async pump(): Promise<void> {
    for (let e = this.queue.shift(); e && !this.closed; e = this.queue.shift()) await this.extract(e);
    if (!this.closed) this.idleSoon();
  }

  /** Ends the worker once it has had nothing to do for `workerIdleMs`. */
  private idleSoon(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.jobs.size > 0 || this.queue.length > 0) return;
      for (const slot of WORKER_SLOTS) {
        void this.workers[slot]?.terminate();
        this.workers[slot] = undefined;
      }
    }, this.workerIdleMs).unref();
  }

  private async extract(e: Entry): Promise<void> {
    e.state = 'running';
    try {
      const outcome = await this.runJob({ kind: 'extract', id: this.nextJob++, blob: this.blobPath(e.digest), dir: e.dir });
      // Not a layer, or a layer the real apply will refuse with its own error.
      if ('error' in outcome) {
        this.log('blob not prefetched', { digest: e.digest, reason: outcome.error });
        throw new Error(outcome.error);
      }
      e.result = outcome.result;
      e.state = 'ready';
      e.timer = setTimeout(() => {
        this.forget(e);
        removeLater(e.dir);
      }, this.ttlMs).unref();
    } catch {
      e.state = 'failed';
      this.forget(e);
      removeLater(e.dir);
    } finally {
      e.finish();
    }
  }

  /**
   * Applies a blob while it is being written (see `GrowingBlob` in @berth/content) on the worker
   * thread, straight into `target.dir`: the download and the extraction run side by side, on two
   * threads. Not queued behind prefetches. Rejects with the apply's error (its kind kept), or with
   * the writer's when it ended without verifying the bytes; `target.signal` abandons the apply.
   */
  async applyStreamed(source: GrowingBlob, target: StreamTarget): Promise<ApplyResult> {
    if (this.closed) throw new FailedPreconditionError('layer prefetcher is closed');
    target.signal?.throwIfAborted();
    const id = this.nextJob++;
    const job: StreamJob = {
      kind: 'stream',
      id,
      fd: source.fd,
      written: source.written,
      dir: target.dir,
      overlay: target.overlay,
      parents: [...target.parents],
      mediaType: target.mediaType,
      expectedDiffId: target.expectedDiffId,
    };
    const w = this.ensureWorker('stream');
    const post = (m: WorkerRequest) => w.postMessage(m);
    const growth = () => {
      const ended = source.ended;
      const msg: GrowthMessage = { kind: 'growth', id, written: source.written };
      if (ended === 'verified') msg.ended = ended;
      else if (ended) msg.ended = { errorKind: kindOf(ended), message: ended.message };
      post(msg);
    };
    const onAbort = () => post({ kind: 'abort', id });
    clearTimeout(this.idleTimer);
    const outcome = new Promise<PrefetchOutcome>((done) => this.jobs.set(id, { worker: w, done, progress: target.onProgress }));
    const unsubscribe = source.onChange(growth);
    target.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      post(job);
      // The writer may have moved on between reading `written` for the job and subscribing.
      growth();
      const o = await outcome;
      if ('error' in o) throw errorOfKind(o.errorKind ?? 'unknown', o.error, { bare: true });
      return o.result;
    } finally {
      unsubscribe();
      target.signal?.removeEventListener('abort', onAbort);
      if (this.jobs.size === 0 && this.queue.length === 0) this.idleSoon();
    }
  }

  /** Runs one job on the worker. */
  private runJob(job: PrefetchJob): Promise<PrefetchOutcome> {
    clearTimeout(this.idleTimer);
    const w = this.ensureWorker('extract');
    return new Promise((done) => {
      this.jobs.set(job.id, { worker: w, done });
      w.postMessage(job);
    });
  }

  /** A worker thread, started if needed (unreferenced: it never keeps the process alive). */
  private ensureWorker(slot: WorkerSlot): Worker {
    const running = this.workers[slot];
    if (running) return running;
    // The daemon's code cache, if it runs with one, serves the worker's modules too.
    const compileCache = activeCompileCache()?.dir;
    const w = new Worker(WORKER_SCRIPT, compileCache ? { workerData: { compileCache } } : {});
    w.unref();
    const failAll = (error: string) => {
      for (const [id, job] of this.jobs) {
        if (job.worker !== w) continue;
        this.jobs.delete(id);
        job.done({ id, error });
      }
      if (this.workers[slot] === w) this.workers[slot] = undefined;
    };
    w.on('message', (o: PrefetchOutcome | StreamProgress) => {
      const job = this.jobs.get(o.id);
      if ('read' in o) return job?.progress?.(o.read);
      this.jobs.delete(o.id);
      job?.done(o);
    });
    w.on('error', (err) => failAll(err.message));
    w.on('exit', () => failAll('prefetch worker exited'));
    this.workers[slot] = w;
    return w;
  }
}

/** Removes a tree in the background (thread pool); a failure leaves it for the next startup. */
function removeLater(dir: string): void {
  fs.rm(dir, { recursive: true, force: true }, () => undefined);
}
