import type { OciDescriptor } from '@berth/images';
import { blobName } from './pull-progress';
import type { ProgressSink } from './types';

/** How often uploads in flight report their offset, as containerd's progress tracker. */
export const PROGRESS_INTERVAL_MS = 300;

interface Job {
  name: string;
  parents: string[];
  desc: OciDescriptor;
  offset: number;
  reported: number;
  active: boolean;
  done: boolean;
}

/**
 * Reports a push's blobs as containerd's progress tracker does: `waiting` (0 of size, with
 * parents) when a blob is added; every {@link PROGRESS_INTERVAL_MS} `uploading` (offset of size)
 * for uploads whose offset grew; `complete` (size of size, with parents) once the registry has
 * committed it, or `already exists` (size of size, no parents) when it had it.
 */
export class UploadTracker {
  private readonly jobs = new Map<string, Job>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly progress: ProgressSink, intervalMs = PROGRESS_INTERVAL_MS) {
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  /** Tracks a blob; reports it `waiting`. */
  add(desc: OciDescriptor, parents: string[]): void {
    if (this.jobs.has(desc.digest)) return;
    const job: Job = { name: blobName(desc), parents, desc, offset: 0, reported: 0, active: false, done: false };
    this.jobs.set(desc.digest, job);
    this.progress({ event: 'waiting', name: job.name, parents, progress: 0, total: desc.size, desc });
  }

  /** The upload of a blob (re)starts at `offset`. */
  started(digest: string, offset = 0): void {
    const job = this.jobs.get(digest);
    if (!job || job.done) return;
    job.active = true;
    job.offset = offset;
    if (offset < job.reported) job.reported = offset;
  }

  /** `n` more bytes of a blob went out. */
  advanced(digest: string, n: number): void {
    const job = this.jobs.get(digest);
    if (job && !job.done) job.offset += n;
  }

  /** The registry committed the blob. */
  complete(digest: string): void {
    const job = this.finish(digest);
    if (job) this.progress({ event: 'complete', name: job.name, parents: job.parents, progress: job.desc.size, total: job.desc.size, desc: job.desc });
  }

  /** The registry had the blob already (or mounted it from another repository). */
  exists(digest: string): void {
    const job = this.finish(digest);
    if (job) this.progress({ event: 'already exists', name: job.name, progress: job.desc.size, total: job.desc.size, desc: job.desc });
  }

  /** Reports what moved since the last tick and stops ticking. */
  stop(): void {
    clearInterval(this.timer);
    this.tick();
  }

  private finish(digest: string): Job | undefined {
    const job = this.jobs.get(digest);
    if (!job || job.done) return undefined;
    job.done = true;
    job.active = false;
    return job;
  }

  private tick(): void {
    for (const job of this.jobs.values()) {
      if (!job.active || job.done || job.offset <= job.reported) continue;
      job.reported = job.offset;
      this.progress({ event: 'uploading', name: job.name, parents: job.parents, progress: job.offset, total: job.desc.size, desc: job.desc });
    }
  }
}
