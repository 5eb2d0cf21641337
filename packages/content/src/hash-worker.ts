import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { UnavailableError, UnknownError } from '@berth/errdefs';
import { Digester, type Digest, type DigestAlgorithm } from './digest';
import { scanFile } from './fs-util';
import type { HashReply, HashRequest } from './hash-worker-protocol';

/**
 * The running digest of an ingest file, as its writer sees it. The writer calls `update` with
 * the chunks of a write while the write is in flight and `written` once the file holds them.
 */
export interface IngestDigest {
  readonly algorithm: DigestAlgorithm;
  update(chunks: readonly Uint8Array[]): void;
  /** Bytes [0, size) are in the file. */
  written(size: number): void;
  /** The digest of the first `size` bytes written (every byte so far). */
  digest(size: number): Promise<Digest>;
  /** Starts over from an empty file. */
  reset(): void;
  /** Ends the digest; no call follows. */
  close(): void;
}

/** Blobs this large and larger are hashed on the hashing thread by default. */
export const DEFAULT_HASH_OFFLOAD_MIN_BYTES = 1 << 20;

/**
 * Opens the running digest of the ingest file `path`, whose first `size` bytes are already
 * written (a resumed ingest): on the hashing thread when `offload`, else on this thread from
 * the bytes handed to `update` (the existing ones read back through `fh` first).
 */
export async function openIngestDigest(
  algorithm: DigestAlgorithm,
  fh: FileHandle,
  path: string,
  size: number,
  offload: boolean,
): Promise<IngestDigest> {
  if (offload) return new OffloadedDigest(algorithm, path, size);
  const digester = new Digester(algorithm);
  if (size > 0) await scanFile(fh, (chunk) => digester.update(chunk), size);
  return new InlineDigest(digester);
}

/** Hashes on the writer's thread, from the chunks of each write. */
class InlineDigest implements IngestDigest {
  constructor(private readonly digester: Digester) {}

  get algorithm(): DigestAlgorithm {
    return this.digester.algorithm;
  }

  update(chunks: readonly Uint8Array[]): void {
    for (const c of chunks) this.digester.update(c);
  }

  written(): void {}

  async digest(): Promise<Digest> {
    return this.digester.digest();
  }

  reset(): void {
    this.digester.reset();
  }

  close(): void {}
}

/**
 * Hashes on the hashing thread, which reads the file back as the writer reports bytes written:
 * the writer's thread (a daemon's event loop) spends nothing on the hash, and a large download
 * and its hash run on two cores.
 */
class OffloadedDigest implements IngestDigest {
  private id: number;

  constructor(
    readonly algorithm: DigestAlgorithm,
    private readonly path: string,
    size: number,
  ) {
    this.id = hashThread.open(path, algorithm, size);
  }

  update(): void {}

  written(size: number): void {
    hashThread.send({ op: 'grow', id: this.id, upTo: size });
  }

  digest(size: number): Promise<Digest> {
    return hashThread.digest(this.id, size);
  }

  reset(): void {
    hashThread.send({ op: 'close', id: this.id });
    this.id = hashThread.open(this.path, this.algorithm, 0);
  }

  close(): void {
    hashThread.close(this.id);
  }
}

/** How long the hashing thread stays up with no digest open. */
export const HASH_THREAD_IDLE_MS = 30_000;

const WORKER_SCRIPT = __filename.endsWith('.ts') ? join(__dirname, '../dist/hash-worker-main.js') : join(__dirname, 'hash-worker-main.js');

/**
 * The one hashing thread of the process, started with the first offloaded digest and ended after
 * {@link HASH_THREAD_IDLE_MS} with none open (a daemon that ingested once does not keep its
 * memory). It keeps the process alive only while someone waits for a digest, and a crash fails the
 * open digests (their commits fail; the next writer starts a new thread).
 */
class HashThread {
  private worker: Worker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private nextId = 1;
  private nextSeq = 1;
  private readonly active = new Set<number>();
  private readonly waiting = new Map<number, { resolve(d: Digest): void; reject(e: Error): void }>();
  /** Digest jobs lost with a crashed thread: their digests fail. */
  private readonly lost = new Map<number, string>();

  open(path: string, algorithm: DigestAlgorithm, upTo: number): number {
    const id = this.nextId++;
    this.active.add(id);
    clearTimeout(this.idle);
    this.idle = undefined;
    this.ensure();
    this.send({ op: 'open', id, path, algorithm, upTo });
    return id;
  }

  send(m: HashRequest): void {
    this.worker?.postMessage(m);
  }

  digest(id: number, upTo: number): Promise<Digest> {
    const lost = this.lost.get(id);
    if (lost !== undefined || !this.worker) return Promise.reject(new UnavailableError(`hashing thread: ${lost ?? 'not running'}`));
    const seq = this.nextSeq++;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.worker!.ref();
      this.send({ op: 'digest', id, seq, upTo });
    });
  }

  close(id: number): void {
    this.lost.delete(id);
    if (!this.active.delete(id)) return;
    this.send({ op: 'close', id });
    if (this.active.size === 0) {
      const w = this.worker;
      this.idle = setTimeout(() => {
        if (this.worker !== w || this.active.size > 0) return;
        this.worker = undefined;
        void w?.terminate();
      }, HASH_THREAD_IDLE_MS);
      this.idle.unref();
    }
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SCRIPT);
    w.unref();
    w.on('message', (r: HashReply) => {
      const p = this.waiting.get(r.seq);
      if (!p) return;
      this.waiting.delete(r.seq);
      if (this.waiting.size === 0) w.unref();
      if ('digest' in r) p.resolve(r.digest);
      else p.reject(new UnknownError(`hashing an ingest: ${r.error}`));
    });
    const fail = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      for (const id of this.active) this.lost.set(id, why);
      this.active.clear();
      for (const p of this.waiting.values()) p.reject(new UnavailableError(`hashing thread: ${why}`));
      this.waiting.clear();
    };
    w.on('error', (err) => fail(err.message));
    w.on('exit', (code) => fail(`exited with code ${code}`));
    this.worker = w;
    return w;
  }
}

const hashThread = new HashThread();
