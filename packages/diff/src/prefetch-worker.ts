/**
 * The prefetcher's worker thread: extracts blobs off the daemon's event loop (extraction makes
 * synchronous file system calls). Messages in: {@link WorkerRequest}; out: {@link PrefetchOutcome}
 * and, for streamed applies, {@link StreamProgress}.
 */
import { createReadStream, mkdirSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { activeCompileCache } from '@berth/compile-cache';
import { errorOfKind, kindOf, type ErrorKind } from '@berth/errdefs';
import { applyLayer, type ApplyResult } from './apply';
import { decompress } from './compression';
import { GrowthTracker, readGrowing } from './growing';

/** Extract a committed blob into a new directory (an overlay upper over nothing). */
export interface PrefetchJob {
  kind: 'extract';
  id: number;
  blob: string;
  dir: string;
}

/**
 * Apply a blob while it is being written, into its target: `fd` is open on the blob's file (the
 * main thread owns it), `written` bytes are there now; growth messages follow.
 */
export interface StreamJob {
  kind: 'stream';
  id: number;
  fd: number;
  written: number;
  dir: string;
  overlay: boolean;
  parents: string[];
  mediaType?: string;
  expectedDiffId?: string;
}

/** The blob of a stream job grew, or its writer ended (an error travels as its kind and message). */
export interface GrowthMessage {
  kind: 'growth';
  id: number;
  written: number;
  ended?: 'verified' | { errorKind: ErrorKind; message: string };
}

/** Stop a stream job (its caller gave up). */
export interface AbortMessage {
  kind: 'abort';
  id: number;
}

export type WorkerRequest = PrefetchJob | StreamJob | GrowthMessage | AbortMessage;

export type PrefetchOutcome = { id: number; result: ApplyResult } | { id: number; error: string; errorKind?: ErrorKind };

/** Bytes of a stream job's blob read so far. */
export interface StreamProgress {
  id: number;
  read: number;
}

/** Rebuilds an error that crossed the thread boundary, with its kind. */
export function reviveError(e: { errorKind: ErrorKind; message: string }): Error {
  return errorOfKind(e.errorKind, e.message, { bare: true });
}

/** Whether a blob, once decompressed, begins with a POSIX tar header (`ustar` magic). */
export async function startsWithTarHeader(path: string): Promise<boolean> {
  const head: Buffer[] = [];
  let n = 0;
  for await (const c of decompress(createReadStream(path, { end: 64 * 1024 - 1 }))) {
    head.push(c);
    n += c.length;
    if (n >= 512) break;
  }
  return n >= 512 && Buffer.concat(head).toString('latin1', 257, 262) === 'ustar';
}

async function run(job: PrefetchJob): Promise<PrefetchOutcome> {
  try {
    if (!(await startsWithTarHeader(job.blob))) return { id: job.id, error: 'not a tar' };
    mkdirSync(job.dir, { mode: 0o755 });
    const result = await applyLayer(job.dir, createReadStream(job.blob, { highWaterMark: 1 << 20 }), { overlay: true, parents: [] });
    return { id: job.id, result };
  } catch (err) {
    return { id: job.id, error: (err as Error).message };
  }
}

/** Stream jobs running: their blob's growth, and the abort of each. */
const streams = new Map<number, { growth: GrowthTracker; abort: AbortController }>();

async function runStream(job: StreamJob, report: (p: StreamProgress) => void): Promise<PrefetchOutcome> {
  const growth = new GrowthTracker(job.written);
  const abort = new AbortController();
  streams.set(job.id, { growth, abort });
  try {
    let read = 0;
    const source = (async function* () {
      for await (const chunk of readGrowing(job.fd, growth, abort.signal)) {
        read += chunk.length;
        report({ id: job.id, read });
        yield chunk;
      }
    })();
    const result = await applyLayer(job.dir, source, {
      overlay: job.overlay,
      parents: job.parents,
      mediaType: job.mediaType,
      expectedDiffId: job.expectedDiffId,
      signal: abort.signal,
    });
    return { id: job.id, result };
  } catch (err) {
    return { id: job.id, error: (err as Error).message, errorKind: kindOf(err) };
  } finally {
    streams.delete(job.id);
  }
}

/** Once the first job is done, this thread's code cache (if any) is written, off the job's path. */
let cacheSaved = false;
function afterJob(): void {
  if (cacheSaved) return;
  cacheSaved = true;
  setImmediate(() => activeCompileCache()?.saveIfStale());
}

function onMessage(port: NonNullable<typeof parentPort>, msg: WorkerRequest): void {
  switch (msg.kind) {
    case 'extract':
      void run(msg).then((outcome) => {
        port.postMessage(outcome);
        afterJob();
      });
      return;
    case 'stream':
      void runStream(msg, (p) => port.postMessage(p)).then((outcome) => {
        port.postMessage(outcome);
        afterJob();
      });
      return;
    case 'growth':
      streams.get(msg.id)?.growth.update(msg.written, msg.ended === undefined || msg.ended === 'verified' ? msg.ended : reviveError(msg.ended));
      return;
    case 'abort':
      streams.get(msg.id)?.abort.abort(errorOfKind('canceled', 'apply abandoned by its caller', { bare: true }));
      return;
  }
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (msg: WorkerRequest) => onMessage(port, msg));
}
