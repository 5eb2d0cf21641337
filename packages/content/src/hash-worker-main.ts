/**
 * The hashing thread of {@link file://./hash-worker.ts}: it hashes ingest files as their writers
 * say bytes reached them, reading the bytes back (from the page cache) so that the writer's
 * thread only writes. Node builtins only: the thread starts in a few milliseconds.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-worker-protocol';

interface Job {
  fd: number;
  hash: Hash;
  algorithm: string;
  /** Bytes [0, hashed) are in the hash. */
  hashed: number;
  /** What went wrong reading the file; reported at the next digest. */
  error?: string;
}

const jobs = new Map<number, Job>();
const buffer = Buffer.allocUnsafe(1 << 20);
const port = parentPort!;

/** Reads and hashes the job's file up to `upTo`, unless an earlier read failed. */
function catchUp(job: Job, upTo: number): void {
  while (job.error === undefined && job.hashed < upTo) {
    try {
      const n = readSync(job.fd, buffer, 0, Math.min(buffer.length, upTo - job.hashed), job.hashed);
      if (n === 0) {
        job.error = `ingest file ends at ${job.hashed} bytes, expected ${upTo}`;
        break;
      }
      job.hash.update(buffer.subarray(0, n));
      job.hashed += n;
    } catch (err) {
      job.error = (err as Error).message;
    }
  }
}

function drop(id: number): void {
  const job = jobs.get(id);
  if (!job) return;
  jobs.delete(id);
  if (job.fd >= 0) closeSync(job.fd);
}

port.on('message', (m: HashRequest) => {
  switch (m.op) {
    case 'open': {
      drop(m.id);
      const job: Job = { fd: -1, hash: createHash(m.algorithm), algorithm: m.algorithm, hashed: 0 };
      try {
        job.fd = openSync(m.path, 'r');
      } catch (err) {
        job.error = (err as Error).message;
      }
      jobs.set(m.id, job);
      catchUp(job, m.upTo);
      return;
    }
    case 'grow': {
      const job = jobs.get(m.id);
      if (job) catchUp(job, m.upTo);
      return;
    }
    case 'digest': {
      const job = jobs.get(m.id);
      let reply: HashReply;
      if (!job) reply = { seq: m.seq, error: 'no such hash job' };
      else {
        catchUp(job, m.upTo);
        reply = job.error !== undefined ? { seq: m.seq, error: job.error } : { seq: m.seq, digest: `${job.algorithm}:${job.hash.copy().digest('hex')}` };
      }
      port.postMessage(reply);
      return;
    }
    case 'close':
      drop(m.id);
      return;
  }
});
