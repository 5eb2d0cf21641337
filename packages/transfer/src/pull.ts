import { setMaxListeners } from 'node:events';
import type { Context } from '@berth/context';
import type { ContentStore } from '@berth/content';
import { InvalidArgumentError, NotFoundError, wrap } from '@berth/errdefs';
import {
  distributionSourceKey,
  allPlatforms,
  childGcLabels,
  children,
  childrenOf,
  parseJsonBlob,
  readJson,
  isIndexType,
  isManifestType,
  setLabels,
  strictPlatformMatcher,
  type OciDescriptor,
  type PlatformMatcher,
} from '@berth/images';
import { nullLogger, type Logger } from '@berth/log';
import { RegistryClient, abortError, isSchema1MediaType, raceAbort, type ImageReference } from '@berth/remotes';
import { BlobFetcher, SMALL_BLOB_SIZE } from './pull-fetch';
import { BlobProgress, blobName } from './pull-progress';
import { planUnpacks, unpackWhileFetching, type PulledManifest, type UnpackPlan } from './pull-unpack';
import { storeImage } from './store';
import type { ImageStoreTarget, ProgressSink, RegistryAccess, RegistrySource, TransferServices } from './types';

/**
 * Pulls an image from a registry into the image store (containerd 2.x's local transfer pull):
 * resolves the reference, fetches the blobs from the root down into the content store
 * (`maxConcurrentDownloads` at a time; blobs the namespace has are not fetched, ingests an
 * interrupted pull left are resumed), keeps the manifests of `dst.platforms` (others' configs too
 * with `allMetadata`; the `manifestLimit` best), labels the content for the garbage collector
 * and with its distribution source, unpacks layers into the requested snapshotters as soon as
 * each one and the layers below it are there, and only then stores `dst.name` -> root. Progress
 * as containerd-transfer.md §4 describes.
 *
 * A pull that fails or is cancelled stores no image; the blobs it fetched stay under the
 * context's lease, and partial blobs as ingests that a pull of the same image resumes. Errors
 * are @berth/errdefs kinds: NotFound `failed to resolve image: <ref>: not found` for a missing
 * tag, FailedPrecondition naming the digest for bytes that do not verify, Canceled (or
 * DeadlineExceeded) when `ctx.signal` fires.
 */
export async function pull(
  ctx: Context,
  src: RegistrySource,
  dst: ImageStoreTarget,
  services: TransferServices,
  access: RegistryAccess,
  progress: ProgressSink,
): Promise<void> {
  const reference = src.reference;
  if (dst.name === '') throw new NotFoundError('no image name found', { bare: true });
  const logger = (services.logger ?? nullLogger).with({ ref: reference });
  const plans = planUnpacks(dst.unpacks, services.settings, (name) => services.snapshotter(name), logger);
  // Layers will be applied: let the differ get ready while the image is resolved.
  if (plans.length > 0) services.differ.warm?.();
  const client = new RegistryClient({
    hosts: access.hosts,
    credentials: access.credentials,
    maxConcurrentDownloads: services.settings.maxConcurrentDownloads,
  });
  try {
    progress({ event: `Resolving from OCI Registry (${reference})` });
    let resolved;
    try {
      resolved = await client.resolve(reference, { signal: ctx.signal });
    } catch (err) {
      throw wrap(err, 'failed to resolve image');
    }
    const root = resolved.descriptor as OciDescriptor;
    if (isSchema1MediaType(root.mediaType)) throw new InvalidArgumentError('schema 1 image manifests are no longer supported');

    progress({ event: `Pulling from OCI Registry (${reference})` });
    progress({ event: 'fetching image content', name: reference, desc: root });
    const run = new PullRun(ctx, { reference, ref: resolved.ref, dst, services, client, progress, plans, logger });
    await run.run(root);

    if (ctx.signal.aborted) throw abortError(ctx.signal, `pull ${reference}`);
    const target = { mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: root.annotations ?? {} };
    await storeImage(ctx, services.images, { name: dst.name, labels: dst.labels, target });
    progress({ event: 'saved', name: dst.name, desc: root });
    progress({ event: `Completed pull from OCI Registry (${reference})` });
  } catch (err) {
    if (ctx.signal.aborted) throw abortError(ctx.signal, `pull ${reference}`);
    throw err;
  } finally {
    // The connections close behind the reply: nothing of the pull waits on them any more.
    void client.close().catch(() => undefined);
  }
}

interface PullRunOptions {
  /** The reference as the client gave it: the root's parent in progress events. */
  reference: string;
  /** The resolved reference: registry and repository the blobs come from. */
  ref: ImageReference;
  dst: ImageStoreTarget;
  services: TransferServices;
  client: RegistryClient;
  progress: ProgressSink;
  plans: UnpackPlan[];
  logger: Logger;
}

/** A promise with its settle functions exposed. */
class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (err: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.promise.catch(() => undefined);
  }
}

/**
 * One pull's walk: every blob is a task; the first task to fail aborts the others (through the
 * run's own signal) and the run waits for all of them to settle before it reports that error, so
 * nothing writes after the pull returned.
 */
class PullRun {
  private readonly abort = new AbortController();
  private readonly ctx: Context;
  private readonly content: ContentStore;
  private readonly fetcher: BlobFetcher;
  private readonly blobProgress: BlobProgress;
  private readonly matcher: PlatformMatcher;
  private readonly sourceLabel: string;
  private readonly tasks = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  private readonly visited = new Set<string>();
  private readonly stored = new Map<string, Deferred>();
  /** Per blob: its bytes once downloaded into memory (small blobs), or undefined once stored. */
  private readonly loaded = new Map<string, Deferred<Buffer | undefined>>();
  private readonly manifests: PulledManifest[] = [];
  /** Indexes and manifests whose children are not listed yet; at 0 every manifest is known. */
  private pendingStructure = 0;
  private readonly manifestsKnown = new Deferred<PulledManifest[]>();

  constructor(
    outer: Context,
    private readonly o: PullRunOptions,
  ) {
    this.ctx = { ...outer, signal: AbortSignal.any([outer.signal, this.abort.signal]) };
    // Every blob waiting for a transfer slot listens to it: as many listeners as the image has blobs.
    setMaxListeners(0, this.ctx.signal);
    this.content = o.services.content.bind(this.ctx);
    this.blobProgress = new BlobProgress(o.progress);
    this.fetcher = new BlobFetcher({
      client: o.client,
      ref: o.ref,
      content: o.services.content,
      progress: this.blobProgress,
      concurrency: o.services.settings.maxConcurrentDownloads,
    });
    // containerd's transfer image store filters with platforms.Ordered: each platform exactly, in order.
    this.matcher = o.dst.platforms.length > 0 ? strictPlatformMatcher(o.dst.platforms) : allPlatforms;
    this.sourceLabel = distributionSourceKey(o.ref.registry);
  }

  async run(root: OciDescriptor): Promise<void> {
    this.blobProgress.start();
    try {
      this.spawn(() =>
        unpackWhileFetching(
          {
            ctx: this.ctx,
            content: this.content,
            differ: this.o.services.differ,
            progress: this.o.progress,
            stored: (digest) => this.waitStored(digest),
            readJson: (desc) => this.readJson(desc),
            follow: (digest) => this.fetcher.follow(digest),
            manifests: () => this.until(this.manifestsKnown.promise),
          },
          this.o.plans,
          this.o.logger,
        ),
      );
      void this.visit(root, [this.o.reference], false);
      // A root that is neither an index nor a manifest has no manifests to wait for.
      if (this.pendingStructure === 0) this.manifestsKnown.resolve(this.manifests);
      while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
    } finally {
      this.blobProgress.stop();
    }
    if (this.failure) throw this.failure.error;
  }

  private spawn(fn: () => Promise<void>): void {
    const task = fn().catch((err: unknown) => {
      if (!this.failure) {
        this.failure = { error: err };
        this.abort.abort(err);
      }
    });
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  /** Resolves when `p` does, or rejects when the run is aborted. */
  private until<T>(p: Promise<T>): Promise<T> {
    return raceAbort(p, this.ctx.signal);
  }

  private storedOf(digest: string): Deferred {
    let d = this.stored.get(digest);
    if (!d) this.stored.set(digest, (d = new Deferred()));
    return d;
  }

  private waitStored(digest: string): Promise<void> {
    return this.until(this.storedOf(digest).promise);
  }

  private loadedOf(digest: string): Deferred<Buffer | undefined> {
    let d = this.loaded.get(digest);
    if (!d) this.loaded.set(digest, (d = new Deferred<Buffer | undefined>()));
    return d;
  }

  /** Parses a JSON blob of the pull: from memory once downloaded, else from the store once stored. */
  private async readJson<T>(desc: OciDescriptor): Promise<T> {
    const bytes = await this.until(this.loadedOf(desc.digest).promise);
    return bytes ? parseJsonBlob<T>(desc, bytes) : readJson<T>(this.content, desc);
  }

  /**
   * Schedules a blob and, once it is stored, its children. Returns when the blob waits for a
   * transfer slot (or is done), so that a caller can queue the blobs it wants first.
   */
  private visit(desc: OciDescriptor, parents: string[], metadataOnly: boolean): Promise<void> {
    if (this.visited.has(desc.digest)) return Promise.resolve();
    this.visited.add(desc.digest);
    const structural = isIndexType(desc.mediaType) || isManifestType(desc.mediaType);
    if (structural) this.pendingStructure++;
    const queued = new Deferred();
    this.spawn(async () => {
      try {
        await this.fetchNode(desc, parents, metadataOnly, () => queued.resolve());
      } catch (err) {
        this.storedOf(desc.digest).reject(err);
        this.loadedOf(desc.digest).reject(err);
        throw err;
      } finally {
        queued.resolve();
        if (structural && --this.pendingStructure === 0) this.manifestsKnown.resolve(this.manifests);
      }
    });
    return queued.promise;
  }

  private async fetchNode(desc: OciDescriptor, parents: string[], metadataOnly: boolean, onQueued: () => void): Promise<void> {
    if (isSchema1MediaType(desc.mediaType)) throw new InvalidArgumentError(`${desc.digest}: schema 1 image manifests are no longer supported`);
    const name = blobName(desc);
    const repository = this.o.ref.repository;
    const labels = { [this.sourceLabel]: repository };
    const structural = isIndexType(desc.mediaType) || isManifestType(desc.mediaType);
    let kids: OciDescriptor[] = [];
    if (desc.size <= SMALL_BLOB_SIZE && !this.o.services.content.hold(this.ctx, desc.digest)) {
      // A small blob is read from memory at once (an index's or manifest's children, a config's
      // diff IDs); storing it runs beside the fetches that follow.
      const bytes = await this.fetcher.download(this.ctx, desc, { name, parents, onQueued });
      this.loadedOf(desc.digest).resolve(bytes);
      if (structural) kids = childrenOf(desc, bytes);
      const gcLabels = childGcLabels(kids);
      this.spawn(async () => {
        try {
          const outcome = await this.fetcher.fetch(this.ctx, desc, { name, parents, labels: { ...labels, ...gcLabels }, bytes });
          if (outcome === 'exists') {
            await this.addSource(desc.digest, repository);
            await setLabels(this.content, desc.digest, gcLabels);
          }
          this.storedOf(desc.digest).resolve();
        } catch (err) {
          this.storedOf(desc.digest).reject(err);
          throw err;
        }
      });
    } else {
      const outcome = await this.fetcher.fetch(this.ctx, desc, { name, parents, labels, onQueued });
      if (outcome === 'exists') await this.addSource(desc.digest, repository);
      this.storedOf(desc.digest).resolve();
      this.loadedOf(desc.digest).resolve(undefined);
      if (structural) {
        kids = await children(this.content, desc);
        await setLabels(this.content, desc.digest, childGcLabels(kids));
      }
    }

    if (isIndexType(desc.mediaType)) {
      for (const k of this.selectManifests(kids)) await this.visit(k.desc, [name], k.metadataOnly);
    } else if (isManifestType(desc.mediaType)) {
      const [config, ...layers] = kids;
      if (!config) throw new InvalidArgumentError(`${desc.digest}: manifest has no config`);
      this.manifests.push({ desc, config, layers, withLayers: !metadataOnly });
      // Queued in order: the config first (its diff IDs come before any layer can be applied),
      // then the layers bottom up, so that the ones an unpack needs first arrive first.
      await this.visit(config, [name], false);
      if (!metadataOnly) for (const l of layers) await this.visit(l, [name], false);
    }
  }

  /**
   * Chooses an index's children as containerd does: those of the wanted platforms (descriptors
   * without a platform always pass), or with `allMetadata` all of them, the others' manifests
   * for their config only; with `manifestLimit`, the best ranked N (no platform ranks last).
   */
  private selectManifests(kids: OciDescriptor[]): Array<{ desc: OciDescriptor; metadataOnly: boolean }> {
    const { allMetadata, manifestLimit } = this.o.dst;
    const fits = (d: OciDescriptor) => !d.platform || this.matcher.match(d.platform);
    let out = kids
      .filter((d) => allMetadata || fits(d))
      .map((desc) => ({ desc, metadataOnly: !fits(desc) && isManifestType(desc.mediaType) }));
    if (manifestLimit > 0) {
      const rank = (d: OciDescriptor) => (d.platform ? this.matcher.rank(d.platform) : Number.POSITIVE_INFINITY);
      out = out
        .map((k, i) => ({ k, i, r: rank(k.desc) }))
        .sort((a, b) => a.r - b.r || a.i - b.i)
        .slice(0, manifestLimit)
        .map((x) => x.k);
    }
    return out;
  }

  /** Adds the repository to a present blob's distribution source label (sorted, no repeats). */
  private async addSource(digest: string, repository: string): Promise<void> {
    const info = await this.o.services.content.info(this.ctx, digest);
    const current = info.labels[this.sourceLabel];
    const repos = new Set(current ? current.split(',') : []);
    if (repos.has(repository)) return;
    repos.add(repository);
    await setLabels(this.content, digest, { [this.sourceLabel]: [...repos].sort().join(',') });
  }
}
