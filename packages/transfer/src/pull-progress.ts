import { ANNOTATION_REF_NAME, isConfigType, isIndexType, isLayerType, isManifestType, type OciDescriptor } from '@berth/images';
import type { ProgressSink } from './types';

/** How often a pull reports the bytes of the blobs in flight, in milliseconds (containerd's 300). */
export const PROGRESS_INTERVAL_MS = 300;

/** The in-toto statement type of attestation manifests' layers (BuildKit provenance, SBOMs). */
const MEDIA_TYPE_IN_TOTO = 'application/vnd.in-toto+json';

/**
 * Names a blob as containerd's pull does, for progress events and as its ingest ref:
 * `<kind>-<digest>`, or `<kind>-<ref name>@<digest>` when the descriptor carries an OCI ref-name
 * annotation. The kind is index, manifest, layer, config, attestation or unknown.
 */
export function blobName(desc: OciDescriptor): string {
  const mt = desc.mediaType;
  let kind = 'unknown';
  if (isManifestType(mt)) kind = 'manifest';
  else if (isIndexType(mt)) kind = 'index';
  else if (isLayerType(mt)) kind = 'layer';
  else if (isConfigType(mt)) kind = 'config';
  else if (mt === MEDIA_TYPE_IN_TOTO) kind = 'attestation';
  const refName = desc.annotations?.[ANNOTATION_REF_NAME];
  return refName ? `${kind}-${refName}@${desc.digest}` : `${kind}-${desc.digest}`;
}

/** A blob being fetched, as the tracker reports it. */
interface Job {
  desc: OciDescriptor;
  parents: string[];
  /** Bytes in the ingest now. */
  offset: number;
  /** Bytes in the last event sent. */
  reported: number;
}

/**
 * The progress of a pull's blobs (containerd-transfer.md §4): `waiting` when a blob is queued,
 * `downloading` on a timer for the blobs whose ingest grew since the last event, `complete` when
 * committed, `already exists` for a blob the store had. The last `downloading` of a blob always
 * comes before its `complete`.
 */
export class BlobProgress {
  private readonly jobs = new Map<string, Job>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly sink: ProgressSink,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  /** Starts the timer; {@link stop} ends it. */
  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Makes a last pass over the blobs in flight and ends the timer. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.tick();
  }

  /** Reports a blob the store already has (no parents, as containerd sends it). */
  exists(name: string, desc: OciDescriptor): void {
    this.jobs.delete(name);
    this.sink({ event: 'already exists', name, progress: desc.size, total: desc.size, desc });
  }

  /** Reports a blob queued for fetching; `offset` is what an earlier, interrupted pull left in its ingest. */
  waiting(name: string, desc: OciDescriptor, parents: string[], offset = 0): void {
    this.jobs.set(name, { desc, parents, offset, reported: 0 });
    this.sink({ event: 'waiting', name, parents, progress: 0, total: desc.size, desc });
  }

  /** Records how many bytes a blob's ingest holds; reported at the next tick. */
  wrote(name: string, offset: number): void {
    const job = this.jobs.get(name);
    if (job) job.offset = offset;
  }

  /** Reports a blob committed to the store. */
  complete(name: string, desc: OciDescriptor): void {
    const parents = this.jobs.get(name)?.parents;
    this.jobs.delete(name);
    this.sink({ event: 'complete', name, ...(parents ? { parents } : {}), progress: desc.size, total: desc.size, desc });
  }

  /** Forgets a blob whose fetch failed. */
  drop(name: string): void {
    this.jobs.delete(name);
  }

  private tick(): void {
    for (const [name, job] of this.jobs) {
      if (job.offset <= job.reported) continue;
      job.reported = job.offset;
      this.sink({ event: 'downloading', name, parents: job.parents, progress: job.offset, total: job.desc.size, desc: job.desc });
    }
  }
}
