import { Readable } from 'node:stream';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isCanceled,
  isDeadlineExceeded,
  isUnavailable,
} from '@berth/errdefs';
import { sleep } from './abort';
import { repositoryScope } from './auth';
import { isManifestMediaType, type Descriptor } from './descriptor';
import { checkDigest, digestOf } from './digest';
import type { RegistryHost, RegistryHosts } from './hosts';
import { ImageReference } from './reference';
import { MAX_MANIFEST_SIZE } from './resolver';
import { errorForResponse } from './response-error';
import type { RegistryHttp, RegistryResponse } from './registry-http';

/**
 * The bytes to push: a buffer, or a function that opens a stream of the blob from a byte offset
 * (called again when an upload has to start over).
 */
export type BlobSource = Uint8Array | ((offset: number) => Readable | Promise<Readable>);

/** Options of one {@link Pusher.push}. */
export interface PushOptions {
  /**
   * A repository of the same registry that holds the blob (`library/busybox`): the pusher asks
   * the registry to mount it from there first, and uploads only if the registry declines.
   */
  mountFrom?: string;
  /** Upload in chunks (PATCH) whatever the size. */
  chunked?: boolean;
  signal?: AbortSignal;
}

/** Settings of a {@link Pusher}. */
export interface PusherOptions {
  /** Attempts after a failed upload (each starts a new upload session). */
  retries: number;
  /** First delay between attempts in milliseconds, doubled each time, at most 5 s. Default 200. */
  retryDelayMs?: number;
  /** Blobs larger than this many bytes are uploaded in chunks. Default 128 MiB. */
  chunkedThreshold?: number;
  /** Bytes per PATCH in a chunked upload. Default 16 MiB (registries on S3 refuse chunks under 5 MiB). */
  chunkSize?: number;
  /**
   * How long the request that completes an upload may wait for its answer, in milliseconds:
   * registries hash the whole blob before they answer. Default 10 minutes.
   */
  commitTimeoutMs?: number;
}

/** What a push did: nothing (the registry had it), a cross-repository mount, or an upload. */
export type PushOutcome = 'exists' | 'mounted' | 'uploaded';

const DEFAULT_CHUNKED_THRESHOLD = 128 << 20;
const DEFAULT_CHUNK_SIZE = 16 << 20;
const DEFAULT_COMMIT_TIMEOUT_MS = 10 * 60_000;

/**
 * Pushes blobs and manifests to the first push-capable host of a registry (only that one, as
 * containerd does). A blob is checked with HEAD first and skipped when present; otherwise it is
 * mounted from `mountFrom` when given, or uploaded: POST then PUT `?digest=` with the whole body,
 * or POST, PATCH per chunk (following each `Location`) and a closing PUT. Manifests are PUT under
 * the tag or digest with their media type.
 */
export class Pusher {
  constructor(
    private readonly http: RegistryHttp,
    private readonly hosts: RegistryHosts,
    private readonly options: PusherOptions,
  ) {}

  /**
   * Pushes one descriptor's content into the reference's repository. Manifest media types are
   * pushed as manifests: under the reference's tag when it has one and either pins no digest or
   * pins this one (`name:tag@<root digest>` tags only the root), by digest otherwise.
   */
  async push(input: string | ImageReference, desc: Descriptor, source: BlobSource, options: PushOptions = {}): Promise<PushOutcome> {
    const ref = typeof input === 'string' ? ImageReference.parse(input) : input;
    checkDigest(desc.digest);
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) throw new InvalidArgumentError(`push ${desc.digest}: invalid size ${desc.size}`);
    const host = (await this.hosts(ref.registry)).find((h) => h.capabilities.has('push'));
    if (!host) throw new NotFoundError(`no push hosts for ${ref.registry}`);
    return isManifestMediaType(desc.mediaType)
      ? this.pushManifest(ref, host, desc, source, options.signal)
      : this.pushBlob(ref, host, desc, source, options);
  }

  private async pushManifest(ref: ImageReference, host: RegistryHost, desc: Descriptor, source: BlobSource, signal?: AbortSignal): Promise<PushOutcome> {
    const context = `push ${ref.name}@${desc.digest}`;
    if (desc.size > MAX_MANIFEST_SIZE) throw new InvalidArgumentError(`${context}: manifest larger than ${MAX_MANIFEST_SIZE} bytes`);
    const body = source instanceof Uint8Array ? source : await readAll(await source(0), desc.size + 1);
    const digest = digestOf(body, desc.digest);
    if (body.length !== desc.size || digest !== desc.digest) {
      throw new InvalidArgumentError(`${context}: content is ${body.length} bytes with digest ${digest}, the descriptor says ${desc.size} bytes`);
    }
    const tag = ref.tag !== undefined && (ref.digest === undefined || ref.digest === desc.digest) ? ref.tag : undefined;
    const scopes = [repositoryScope(ref.repository, true)];
    const path = `/${ref.repository}/manifests/${tag ?? desc.digest}`;
    if (tag === undefined) {
      const head = await this.http.request({ host, method: 'HEAD', path, headers: { Accept: desc.mediaType }, scopes, signal });
      await head.body.dump();
      if (head.status >= 200 && head.status <= 299) return 'exists';
    }
    const res = await this.http.request({
      host,
      method: 'PUT',
      path,
      headers: { 'Content-Type': desc.mediaType, 'Content-Length': String(body.length) },
      body,
      scopes,
      signal,
    });
    await this.expect(res, [201, 200, 202, 204], host, context);
    await res.body.dump();
    this.checkDigestHeader(res, desc, context);
    return 'uploaded';
  }

  private async pushBlob(ref: ImageReference, host: RegistryHost, desc: Descriptor, source: BlobSource, options: PushOptions): Promise<PushOutcome> {
    const { signal } = options;
    const context = `push ${ref.name}@${desc.digest}`;
    const mountFrom = options.mountFrom && options.mountFrom !== ref.repository ? options.mountFrom : undefined;
    const scopes = [repositoryScope(ref.repository, true), ...(mountFrom ? [repositoryScope(mountFrom)] : [])];

    const head = await this.http.request({ host, method: 'HEAD', path: `/${ref.repository}/blobs/${desc.digest}`, scopes, signal });
    if (head.status >= 200 && head.status <= 299) {
      await head.body.dump();
      return 'exists';
    }
    if (head.status !== 404) throw errorForResponse(host.host, context, await head.error());
    await head.body.dump();

    const chunked = options.chunked || desc.size > (this.options.chunkedThreshold ?? DEFAULT_CHUNKED_THRESHOLD);
    for (let attempt = 0; ; attempt++) {
      try {
        // Mount only on the first attempt: a declined mount will not be granted on a retry.
        const start = await this.startUpload(ref, host, desc, attempt === 0 ? mountFrom : undefined, scopes, context, signal);
        if (start === 'mounted') return 'mounted';
        const location = chunked
          ? await this.uploadChunks(host, start, desc, source, scopes, context, signal)
          : start;
        await this.commit(host, location, desc, chunked ? undefined : source, scopes, context, signal);
        return 'uploaded';
      } catch (err) {
        if (isCanceled(err) || isDeadlineExceeded(err) || !isUnavailable(err) || attempt >= this.options.retries) throw err;
      }
      await sleep(Math.min((this.options.retryDelayMs ?? 200) * 2 ** attempt, 5_000), signal);
    }
  }

  /** Opens an upload session (or mounts): returns 'mounted' or the session's URL. */
  private async startUpload(
    ref: ImageReference,
    host: RegistryHost,
    desc: Descriptor,
    mountFrom: string | undefined,
    scopes: string[],
    context: string,
    signal?: AbortSignal,
  ): Promise<URL | 'mounted'> {
    const query: Array<[string, string]> = mountFrom ? [['mount', desc.digest], ['from', mountFrom]] : [];
    const res = await this.http.request({
      host,
      method: 'POST',
      path: `/${ref.repository}/blobs/uploads/`,
      query,
      headers: { 'Content-Length': '0' },
      scopes,
      signal,
    });
    await this.expect(res, mountFrom ? [201, 202] : [202], host, context);
    await res.body.dump();
    if (res.status === 201) {
      this.checkDigestHeader(res, desc, context);
      return 'mounted';
    }
    return this.location(res, host, context);
  }

  /** Sends the blob in PATCH requests of `chunkSize` bytes; returns the URL to close the upload at. */
  private async uploadChunks(
    host: RegistryHost,
    start: URL,
    desc: Descriptor,
    source: BlobSource,
    scopes: string[],
    context: string,
    signal?: AbortSignal,
  ): Promise<URL> {
    const chunkSize = this.options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    let url = start;
    for (let offset = 0; offset < desc.size; ) {
      const end = Math.min(offset + chunkSize, desc.size);
      const res = await this.http.request({
        host,
        method: 'PATCH',
        url,
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Range': `${offset}-${end - 1}`,
          'Content-Length': String(end - offset),
        },
        body: slice(source, offset, end),
        scopes,
        signal,
      });
      await this.expect(res, [202], host, context);
      await res.body.dump();
      const range = /^(?:bytes=)?0-(\d+)$/.exec(res.header('range') ?? '');
      if (range && Number(range[1]) !== end - 1) {
        throw new FailedPreconditionError(`${context}: registry holds bytes 0-${range[1]} after a chunk ending at ${end - 1}`);
      }
      url = this.location(res, host, context);
      offset = end;
    }
    return url;
  }

  /** Closes an upload with PUT `?digest=`, carrying the whole body for a monolithic upload. */
  private async commit(
    host: RegistryHost,
    location: URL,
    desc: Descriptor,
    source: BlobSource | undefined,
    scopes: string[],
    context: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const url = new URL(location.href);
    url.searchParams.set('digest', desc.digest);
    const headers: Record<string, string> = { 'Content-Length': String(source ? desc.size : 0) };
    if (source) headers['Content-Type'] = 'application/octet-stream';
    const res = await this.http.request({
      host,
      method: 'PUT',
      url,
      headers,
      body: source ? slice(source, 0, desc.size) : undefined,
      scopes,
      signal,
      headersTimeoutMs: this.options.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS,
    });
    await this.expect(res, [201, 204], host, context);
    await res.body.dump();
    this.checkDigestHeader(res, desc, context);
  }

  private async expect(res: RegistryResponse, statuses: number[], host: RegistryHost, context: string): Promise<void> {
    if (!statuses.includes(res.status)) throw errorForResponse(host.host, context, await res.error());
  }

  private location(res: RegistryResponse, host: RegistryHost, context: string): URL {
    const location = res.header('location');
    if (!location) throw new FailedPreconditionError(`${context}: ${host.host} answered ${res.method} ${res.status} without a Location`);
    return new URL(location, res.url);
  }

  private checkDigestHeader(res: RegistryResponse, desc: Descriptor, context: string): void {
    const got = res.header('docker-content-digest');
    if (got !== undefined && got !== desc.digest) {
      throw new FailedPreconditionError(`${context}: registry stored digest ${got}, expected ${desc.digest}`);
    }
  }
}

/** Returns a request body of bytes [start, end) of the source, re-openable for a re-send. */
function slice(source: BlobSource, start: number, end: number): Uint8Array | (() => Promise<Readable>) {
  if (source instanceof Uint8Array) {
    if (source.length < end) throw new InvalidArgumentError(`push: source has ${source.length} bytes, expected ${end}`);
    return source.subarray(start, end);
  }
  return async () => Readable.from(take(await source(start), end - start), { objectMode: false });
}

/** Yields exactly `n` bytes of a stream, then closes it; fails if it ends early. */
async function* take(stream: Readable, n: number): AsyncGenerator<Buffer> {
  let left = n;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (left <= 0) break;
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      left -= part.length;
      yield part;
      if (left <= 0) break;
    }
  } finally {
    stream.destroy();
  }
  if (left > 0) throw new InvalidArgumentError(`push: source ended ${left} bytes short of ${n}`);
}

/** Reads a stream into memory, failing past `limit` bytes. */
async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      stream.destroy();
      break;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
