/**
 * The prefetcher's worker thread: extracts one blob at a time into a directory, off the
 * daemon's event loop (extraction makes synchronous file system calls). Messages in:
 * {@link PrefetchJob}; out: {@link PrefetchOutcome}.
 */
import { createReadStream, mkdirSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { applyLayer, type ApplyResult } from './apply';
import { decompress } from './compression';

export interface PrefetchJob {
  id: number;
  blob: string;
  dir: string;
}

export type PrefetchOutcome = { id: number; result: ApplyResult } | { id: number; error: string };

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

if (parentPort) {
  const port = parentPort;
  port.on('message', (job: PrefetchJob) => {
    void run(job).then((outcome) => port.postMessage(outcome));
  });
}
