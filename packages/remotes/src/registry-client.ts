import type { Readable } from 'node:stream';
import { InvalidArgumentError } from '@berth/errdefs';
import type { CredentialsProvider } from './auth';
import { ConcurrencyLimit } from './concurrency-limit';
import type { Descriptor } from './descriptor';
import { Fetcher, type FetchOptions, type FetchSink } from './fetcher';
import type { RegistryHosts } from './hosts';
import { Pusher, type BlobSource, type PushOptions, type PushOutcome } from './pusher';
import type { ImageReference } from './reference';
import { RegistryHttp } from './registry-http';
import { Resolver, type ResolvedReference } from './resolver';

/** Settings of a {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** The endpoints to use per registry, in order (hosts.toml, or {@link staticHosts}). */
  hosts: RegistryHosts;
  /** Credentials per endpoint host, asked only when a host wants them. Default: anonymous. */
  credentials?: CredentialsProvider;
  /** User-Agent header. Default `berth/<version>`. */
  userAgent?: string;
  /** TCP connect plus TLS handshake limit in milliseconds, unless a host sets `dialTimeoutMs`. Default 30 000 (containerd's dial timeout). */
  connectTimeoutMs?: number;
  /**
   * Longest wait for the next bytes from a registry, in milliseconds: for response headers and
   * between body chunks (time a slow consumer holds the stream does not count). Default 30 000:
   * a fetch resumes with Range after it, so a stall costs a reconnect, not a restart.
   */
  idleTimeoutMs?: number;
  /**
   * Attempts after a failure of a fetch (another round over the hosts, a Range resume) or a blob
   * upload (a new upload session). Default 3. A resolve tries each host once, as containerd does.
   */
  retries?: number;
  /** First delay between attempts in milliseconds, doubled each time, at most 5 s. Default 200. */
  retryDelayMs?: number;
  /** Fetch streams open at once; more wait for a slot. Default 3 (containerd's max_concurrent_downloads). */
  maxConcurrentDownloads?: number;
  /** Blobs larger than this many bytes are pushed in chunks. Default 128 MiB. */
  chunkedUploadThreshold?: number;
  /** Bytes per chunk of a chunked upload. Default 16 MiB. */
  uploadChunkSize?: number;
}

/**
 * A registry client for Node programs: resolve references, fetch and push content over the OCI
 * distribution API, with authentication, the configured hosts (mirrors, capabilities, TLS),
 * retries and resume. It keeps one connection pool per distinct TLS setting until {@link close}.
 *
 * @example
 * const client = new RegistryClient({ hosts: staticHosts() });
 * const { ref, descriptor } = await client.resolve('busybox');
 * const stream = await client.fetch(ref, descriptor);
 */
export class RegistryClient {
  private readonly http: RegistryHttp;
  private readonly resolver: Resolver;
  private readonly fetcher: Fetcher;
  private readonly pusher: Pusher;
  private readonly downloads: ConcurrencyLimit;

  constructor(options: RegistryClientOptions) {
    const retries = options.retries ?? 3;
    const maxDownloads = options.maxConcurrentDownloads ?? 3;
    if (!Number.isInteger(retries) || retries < 0) throw new InvalidArgumentError(`retries must be a non-negative integer, got ${retries}`);
    if (!Number.isInteger(maxDownloads) || maxDownloads < 1) {
      throw new InvalidArgumentError(`maxConcurrentDownloads must be a positive integer, got ${maxDownloads}`);
    }
    this.http = new RegistryHttp({
      credentials: options.credentials,
      userAgent: options.userAgent ?? 'berth/0.1',
      connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
    });
    this.resolver = new Resolver(this.http, options.hosts);
    this.fetcher = new Fetcher(this.http, options.hosts, { retries, retryDelayMs: options.retryDelayMs });
    this.pusher = new Pusher(this.http, options.hosts, {
      retries,
      retryDelayMs: options.retryDelayMs,
      chunkedThreshold: options.chunkedUploadThreshold,
      chunkSize: options.uploadChunkSize,
    });
    this.downloads = new ConcurrencyLimit(maxDownloads);
  }

  /**
   * Resolves a reference to its root descriptor (see {@link Resolver}). NotFound `<ref>: not
   * found` when no host has the tag; InvalidArgument for schema 1 manifests.
   */
  resolve(ref: string | ImageReference, options: { signal?: AbortSignal } = {}): Promise<ResolvedReference> {
    return this.resolver.resolve(ref, options);
  }

  /**
   * Opens a stream of a descriptor's bytes from `options.offset` on, verified as it goes (see
   * {@link Fetcher.fetch}). Counts against `maxConcurrentDownloads` until the stream closes:
   * read it to the end or destroy it.
   */
  async fetch(ref: string | ImageReference, desc: Descriptor, options: FetchOptions = {}): Promise<Readable> {
    const release = await this.downloads.acquire(options.signal);
    try {
      const stream = await this.fetcher.fetch(ref, desc, options);
      stream.once('close', release);
      return stream;
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Fetches a descriptor's bytes from `options.offset` on into `sink`, verified as they arrive
   * (see {@link Fetcher.fetchTo}); resolves when the last byte was delivered and checked. Counts
   * against `maxConcurrentDownloads` meanwhile.
   */
  async fetchTo(ref: string | ImageReference, desc: Descriptor, sink: FetchSink, options: FetchOptions = {}): Promise<void> {
    const release = await this.downloads.acquire(options.signal);
    try {
      await this.fetcher.fetchTo(ref, desc, sink, options);
    } finally {
      release();
    }
  }

  /**
   * Pushes a descriptor's content (see {@link Pusher.push}) to the first push-capable host:
   * 'exists' when the registry had it, 'mounted' or 'uploaded' otherwise.
   */
  push(ref: string | ImageReference, desc: Descriptor, source: BlobSource, options: PushOptions = {}): Promise<PushOutcome> {
    return this.pusher.push(ref, desc, source, options);
  }

  /** Aborts requests still in flight and closes every connection. */
  close(): Promise<void> {
    return this.http.close();
  }
}
