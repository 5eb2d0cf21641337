import { randomBytes } from 'node:crypto';
import { createGzip } from 'node:zlib';
import type { Context } from '@berth/context';
import type { ContentStore, GrowingBlob } from '@berth/content';
import { FailedPreconditionError, InvalidArgumentError, NotImplementedError, isAlreadyExists, wrap } from '@berth/errdefs';
import { type Mount, withTempMount } from '@berth/mount';
import { applyLayer, type ApplyResult } from './apply';
import { compressionOfMediaType } from './compression';
import type { LayerPrefetcher } from './prefetch';
import { DiffResult, DiffSink, writeDiff, writeOverlayDiff } from './diff';
import { GrowthTracker, readGrowing } from './growing';

/** An OCI descriptor as the differ takes and returns it. */
export interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** Media type of an uncompressed layer: what Apply returns (digest = the diff ID). */
export const MEDIA_TYPE_LAYER = 'application/vnd.oci.image.layer.v1.tar';
/** Media type of a gzip layer: Diff's default. */
export const MEDIA_TYPE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** The content label holding a compressed layer's diff ID. */
export const UNCOMPRESSED_LABEL = 'containerd.io/uncompressed';

/** Options of {@link Differ.compare}. */
export interface CompareOptions {
  /** Layer media type: `...tar` or `...tar+gzip` (default). */
  mediaType?: string;
  /** Ingest ref of the written layer; default a unique one. */
  ref?: string;
  /** Labels stored with the blob (besides `containerd.io/uncompressed`). */
  labels?: Record<string, string>;
}

/** Options of {@link Differ.apply}. */
export interface DifferApplyOptions {
  /** Fail with FailedPrecondition when the uncompressed digest differs. */
  expectedDiffId?: string;
  signal?: AbortSignal;
  /** Told how many bytes of the layer blob (compressed, as stored) have been read so far. */
  onProgress?: (read: number) => void;
  /**
   * Read the blob from here, while it is being written, instead of from the content store (an
   * unpack that runs alongside the download). The apply ends only once the writer verified the
   * bytes; when the writer ends otherwise, the apply fails and the caller removes its target.
   * In-process only: the Diff service never sets it.
   */
  source?: GrowingBlob;
}

/** Passes a stream through, telling `onProgress` the running byte count. */
async function* counted(source: AsyncIterable<Uint8Array>, onProgress: (read: number) => void): AsyncGenerator<Uint8Array> {
  let read = 0;
  for await (const chunk of source) {
    read += chunk.length;
    onProgress(read);
    yield chunk;
  }
}

/** containerd's diff.Applier + diff.Comparer. */
export interface Differ {
  /** Applies the layer blob `desc` onto `mounts`; returns the uncompressed tar's descriptor. */
  apply(ctx: Context, desc: LayerDescriptor, mounts: readonly Mount[], options?: DifferApplyOptions): Promise<LayerDescriptor>;
  /** Writes the changes from `lower` to `upper` as a layer into the content store. */
  compare(ctx: Context, lower: readonly Mount[], upper: readonly Mount[], options?: CompareOptions): Promise<LayerDescriptor>;
  /**
   * A hint that applies are coming (a pull that unpacks has begun): the differ may get ready for
   * them, say start its worker thread, so that doing so is not on the path of the first apply.
   */
  warm?(): void;
  /**
   * A hint that the committed layer blob `digest` will be applied after the layers below it: the
   * differ may extract it ahead, beside them, and use that extraction when its turn comes and the
   * result is the same (see {@link LayerPrefetcher}).
   */
  prefetch?(digest: string): void;
}

/** Gives the content store a call acts on (the namespaced store bound to the call's context). */
export type ContentFor = (ctx: Context) => ContentStore;

function option(m: Mount, name: string): string | undefined {
  const prefix = `${name}=`;
  const o = m.options.find((x) => x.startsWith(prefix));
  return o === undefined ? undefined : o.slice(prefix.length);
}

/**
 * Where a layer can be applied without mounting: the upper directory of a single overlay mount
 * (overlay whiteouts, lower dirs for implicit parents and copy-up), or the source of a single
 * writable bind mount (plain whiteouts). Undefined when the mounts must really be mounted.
 */
export function directApplyTarget(mounts: readonly Mount[]): { dir: string; overlay: boolean; parents: string[] } | undefined {
  if (mounts.length !== 1) return undefined;
  const m = mounts[0];
  if (m.type === 'bind' && !m.options.includes('ro') && m.source.startsWith('/')) return { dir: m.source, overlay: false, parents: [] };
  if (m.type === 'overlay') {
    const upper = option(m, 'upperdir');
    const lower = option(m, 'lowerdir');
    if (!upper || !upper.startsWith('/') || m.options.includes('ro')) return undefined;
    const parents = lower ? lower.split(':') : [];
    if (parents.some((p) => !p.startsWith('/'))) return undefined;
    return { dir: upper, overlay: parents.length > 0, parents };
  }
  return undefined;
}

/** The mounts made read-only, for reading both sides of a diff. */
function readOnly(mounts: readonly Mount[]): Mount[] {
  return mounts.map((m) => {
    const opts = m.options.filter((o) => o !== 'rw');
    if (!opts.includes('ro')) opts.push('ro');
    return { ...m, options: opts };
  });
}

/** The bytes of a blob being written, as they arrive (see {@link readGrowing}). */
async function* followBlob(blob: GrowingBlob, signal: AbortSignal): AsyncGenerator<Buffer> {
  const growth = new GrowthTracker(blob.written, blob.ended);
  const unsubscribe = blob.onChange(() => growth.update(blob.written, blob.ended));
  try {
    yield* readGrowing(blob.fd, growth, signal);
  } finally {
    unsubscribe();
  }
}

/** A stored blob as a {@link GrowingBlob} that is done growing (its reader owns the descriptor). */
function storedBlob(fd: number, size: number): GrowingBlob {
  return { fd, written: size, ended: 'verified', onChange: () => () => undefined, close: async () => undefined };
}

/** A unique ingest ref, as containerd's uniqueRef: `<nanos>-<random>`. */
export function uniqueRef(): string {
  const nanos = process.hrtime.bigint() % 1_000_000_000n;
  return `${nanos}-${randomBytes(3).toString('base64url')}`;
}

/**
 * The walking differ (`io.containerd.differ.v1 walking`): applies layers from the content store
 * and writes diffs into it. Applies straight into an overlay upper directory (or a bind source)
 * instead of mounting the chain, which is what makes Berth's unpack cheaper than containerd's.
 */
export class WalkingDiffer implements Differ {
  /** `prefetcher`: layers extracted ahead of time, taken when they fit the target (see {@link LayerPrefetcher}). */
  constructor(
    private readonly content: ContentFor,
    private readonly prefetcher?: LayerPrefetcher,
  ) {}

  warm(): void {
    this.prefetcher?.warm();
  }

  prefetch(digest: string): void {
    this.prefetcher?.offer(digest);
  }

  async apply(ctx: Context, desc: LayerDescriptor, mounts: readonly Mount[], options: DifferApplyOptions = {}): Promise<LayerDescriptor> {
    if (!desc.digest) throw new InvalidArgumentError('apply: layer descriptor has no digest');
    let res: ApplyResult;
    const growing = options.source;
    if (growing) {
      // A blob still being written: read as it grows (the writer verifies it).
      try {
        if (desc.mediaType) compressionOfMediaType(desc.mediaType);
        res = await this.applyTo(ctx, desc, mounts, options, growing, () => followBlob(growing, options.signal ?? ctx.signal));
      } catch (err) {
        throw wrap(err, `failed to apply layer ${desc.digest}`);
      }
      return { mediaType: MEDIA_TYPE_LAYER, digest: res.digest, size: res.size, annotations: {} };
    }
    const store = this.content(ctx);
    const ra = await store.readerAt({ digest: desc.digest, size: desc.size });
    try {
      if (desc.size > 0 && ra.size !== desc.size) {
        throw new FailedPreconditionError(`layer ${desc.digest}: blob has ${ra.size} bytes, the descriptor declares ${desc.size}`);
      }
      const direct = directApplyTarget(mounts);
      let pre: ApplyResult | undefined;
      if (direct && this.prefetcher) {
        if (desc.mediaType) compressionOfMediaType(desc.mediaType); // a non-layer type fails as the apply would
        pre = await this.prefetcher.take(desc.digest, {
          dir: direct.dir,
          hasParents: direct.parents.length > 0,
          expectedDiffId: options.expectedDiffId,
          signal: options.signal ?? ctx.signal,
        });
      }
      if (pre) {
        res = pre;
        options.onProgress?.(ra.size); // extracted ahead of time: the whole blob was read
      } else {
        const blob = ra.fd === undefined ? undefined : storedBlob(ra.fd, ra.size);
        res = await this.applyTo(ctx, desc, mounts, options, blob, () => ra.createReadStream());
      }
    } catch (err) {
      throw wrap(err, `failed to apply layer ${desc.digest}`);
    } finally {
      await ra.close();
    }
    return { mediaType: MEDIA_TYPE_LAYER, digest: res.digest, size: res.size, annotations: {} };
  }

  /**
   * Applies a blob onto `mounts`: on the prefetcher's worker thread when the target is a
   * directory and the blob has a descriptor to read from (this thread may be serving its
   * download meanwhile), else here from `stream()`, through a temporary mount when needed.
   */
  private applyTo(
    ctx: Context,
    desc: LayerDescriptor,
    mounts: readonly Mount[],
    options: DifferApplyOptions,
    blob: GrowingBlob | undefined,
    stream: () => AsyncIterable<Uint8Array>,
  ): Promise<ApplyResult> {
    const signal = options.signal ?? ctx.signal;
    const { onProgress, expectedDiffId } = options;
    const direct = directApplyTarget(mounts);
    if (direct && this.prefetcher && blob) {
      return this.prefetcher.applyStreamed(blob, { ...direct, mediaType: desc.mediaType, expectedDiffId, signal, onProgress });
    }
    const run = (dir: string, overlay: boolean, parents: string[]) =>
      applyLayer(dir, onProgress ? counted(stream(), onProgress) : stream(), { mediaType: desc.mediaType, overlay, parents, expectedDiffId, signal });
    return direct ? run(direct.dir, direct.overlay, direct.parents) : withTempMount(mounts, (dir) => run(dir, false, []));
  }

  async compare(ctx: Context, lower: readonly Mount[], upper: readonly Mount[], options: CompareOptions = {}): Promise<LayerDescriptor> {
    const mediaType = options.mediaType || MEDIA_TYPE_LAYER_GZIP;
    if (mediaType !== MEDIA_TYPE_LAYER && mediaType !== MEDIA_TYPE_LAYER_GZIP) {
      throw new NotImplementedError(`unsupported diff media type: ${mediaType}`);
    }
    const store = this.content(ctx);
    const ref = options.ref || uniqueRef();
    const w = await store.writer({ ref });
    let committed = false;
    try {
      await w.truncate(0);
      const produce = (sink: DiffSink) => this.produce(lower, upper, sink);
      let diffId: DiffResult;
      if (mediaType === MEDIA_TYPE_LAYER) {
        diffId = await produce(async (b: Buffer) => void (await w.write(b)));
      } else {
        const gz = createGzip({ level: 6 });
        const consume = (async () => {
          for await (const c of gz) await w.write(c as Buffer);
        })();
        consume.catch(() => gz.destroy());
        try {
          diffId = await produce(gz);
          gz.end();
        } catch (err) {
          gz.destroy();
          await consume.catch(() => undefined);
          throw err;
        }
        await consume;
      }
      const digest = await w.digest();
      const size = (await w.status()).offset;
      const labels = { ...(options.labels ?? {}), [UNCOMPRESSED_LABEL]: diffId.digest };
      try {
        await w.commit(size, digest, labels);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        const info = await store.info(digest);
        if (info.labels[UNCOMPRESSED_LABEL] !== diffId.digest) {
          await store.update({ digest, labels: { [UNCOMPRESSED_LABEL]: diffId.digest } }, [`labels.${UNCOMPRESSED_LABEL}`]).catch(() => undefined);
        }
      }
      committed = true;
      return { mediaType, digest, size, annotations: {} };
    } catch (err) {
      throw wrap(err, 'failed to create diff');
    } finally {
      await w.close().catch(() => undefined);
      if (!committed) await store.abort(ref).catch(() => undefined);
    }
  }

  /** Writes the diff tar: from the upper directory alone when it is the upper of `lower`'s chain. */
  private async produce(lower: readonly Mount[], upper: readonly Mount[], sink: DiffSink): Promise<DiffResult> {
    const upperDir = overlayUpperOver(lower, upper);
    if (upperDir) return writeOverlayDiff(upperDir, sink);
    return withTempMount(readOnly(lower), (l) => withTempMount(readOnly(upper), (u) => writeDiff(l, u, sink)));
  }
}

/**
 * The upper directory of `upper` when `upper` is one overlay mount whose lower layers are
 * exactly what `lower` mounts: then the upper directory holds the whole diff.
 */
function overlayUpperOver(lower: readonly Mount[], upper: readonly Mount[]): string | undefined {
  if (upper.length !== 1 || upper[0].type !== 'overlay') return undefined;
  const up = option(upper[0], 'upperdir');
  const lowers = option(upper[0], 'lowerdir')?.split(':') ?? [];
  if (!up || lowers.length === 0 || lower.length !== 1) return undefined;
  if (upper[0].options.some((o) => o.startsWith('redirect_dir') || o.startsWith('metacopy=on'))) return undefined;
  const l = lower[0];
  if (l.type === 'bind') return lowers.length === 1 && lowers[0] === l.source ? up : undefined;
  if (l.type === 'overlay' && !option(l, 'upperdir')) return option(l, 'lowerdir') === lowers.join(':') ? up : undefined;
  return undefined;
}
