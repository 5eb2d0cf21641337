import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  BerthError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isCanceled,
  isDeadlineExceeded,
  isNotFound,
  isUnavailable,
} from '@berth/errdefs';
import { abortError, sleep } from './abort';
import { repositoryScope } from './auth';
import { MANIFEST_ACCEPT, isManifestMediaType, type Descriptor } from './descriptor';
import { checkDigest, hashFor } from './digest';
import type { RegistryHost, RegistryHosts } from './hosts';
import { ImageReference } from './reference';
import { RegistryResponseError, errorForResponse } from './response-error';
import { transportError, type RegistryHttp, type RegistryResponse } from './registry-http';

/** Options of one {@link Fetcher.fetch}. */
export interface FetchOptions {
  /**
   * The first byte wanted (default 0): the stream yields exactly bytes [offset, size). A caller
   * that already holds the first `offset` bytes (an interrupted content-store write) resumes
   * here.
   */
  offset?: number;
  /**
   * A hash of the blob's algorithm already fed with bytes [0, offset), e.g. `hash.copy()` of a
   * writer's running hash. With it, a resumed fetch verifies the whole digest; without it (and
   * offset > 0) the fetcher checks the size only and the digest is the caller's to check, as a
   * content store does when it commits. The fetcher updates and finalizes it; ignored when
   * offset is 0.
   */
  hash?: Hash;
  /**
   * The caller checks the digest itself (a content-store writer opened with the expected digest
   * does, at commit): the fetcher then checks only the size and hashes nothing, so a blob is
   * hashed once. Default false.
   */
  sizeOnly?: boolean;
  /** Cancels the fetch, including retries and a stream already returned. */
  signal?: AbortSignal;
  /**
   * Told when a registry answered a ranged request with the whole blob (200 instead of 206).
   * The fetcher then reads from byte 0 again, hashing but not repeating the bytes the stream
   * already gave, so the stream stays continuous and the digest is checked in full; this is for
   * progress reporting (`position` bytes are downloaded again).
   */
  onRestart?: (event: { position: number; host: string }) => void;
}

/** Settings of a {@link Fetcher}. */
export interface FetcherOptions {
  /** Attempts after a failure: a whole round over the hosts, or a resume after a dropped body. */
  retries: number;
  /** First delay between attempts in milliseconds, doubled each time, at most 5 s. Default 200. */
  retryDelayMs?: number;
}

/**
 * Where {@link Fetcher.fetchTo} delivers a blob's bytes, in order. Each chunk is handed over as
 * the connection read it (no copy; it is the sink's to keep). While a returned promise is pending
 * the connection is paused (backpressure); a throw or a rejection ends the fetch with that error,
 * with no retry.
 */
export type FetchSink = (chunk: Buffer) => void | Promise<void>;

interface Opened {
  host: RegistryHost;
  res: RegistryResponse;
}

/** Where a fetch stands. `wire` <= `position` only while re-reading after a restart. */
interface FetchState {
  /** Next byte the stream gives the caller. */
  position: number;
  /** Next byte expected from the network. */
  wire: number;
  /** Hash of bytes [0, wire), when the whole digest can be checked. */
  hash?: Hash;
}

/**
 * Fetches blobs and manifests as streams (manifest media types from `manifests/<digest>`,
 * everything else from `blobs/<digest>`) over the pull hosts in order. While streaming it
 * verifies the size, and the digest when it sees (or is given the hash of) every byte; a
 * mismatch fails the stream with FailedPrecondition naming the digest, so a stream that ends
 * without error is verified. A dropped connection resumes with `Range: bytes=<n>-`.
 */
export class Fetcher {
  constructor(
    private readonly http: RegistryHttp,
    private readonly hosts: RegistryHosts,
    private readonly options: FetcherOptions,
  ) {}

  /**
   * Opens a stream of the descriptor's bytes from `offset` on. Rejects when no host serves it
   * (NotFound when every host answered 404); errors after that arrive on the stream.
   */
  async fetch(input: string | ImageReference, desc: Descriptor, options: FetchOptions = {}): Promise<Readable> {
    let wake: (() => void) | undefined;
    const stream = new Readable({
      read: () => {
        const w = wake;
        wake = undefined;
        w?.();
      },
    });
    const run = await this.start(input, desc, options, (chunk) => {
      if (!stream.push(chunk)) return new Promise<void>((resolve) => (wake = resolve));
    });
    // A caller that destroys the stream stops any retry or request still running.
    stream.once('close', run.abort);
    run.done.then(
      () => stream.push(null),
      (err: Error) => stream.destroy(err),
    );
    return stream;
  }

  /**
   * Fetches the descriptor's bytes from `offset` on into `sink`, with the checks, retries and
   * resumes of {@link fetch}, and resolves once every byte was delivered and verified. Cheaper
   * than reading {@link fetch}'s stream: no stream stands between the connection and the sink.
   */
  async fetchTo(input: string | ImageReference, desc: Descriptor, sink: FetchSink, options: FetchOptions = {}): Promise<void> {
    const run = await this.start(input, desc, options, sink);
    try {
      await run.done;
    } finally {
      run.abort();
    }
  }

  /**
   * Checks the request, opens the first response (rejecting when no host serves the blob) and
   * starts the transfer into `sink`; `done` settles with the transfer, `abort` stops it.
   */
  private async start(
    input: string | ImageReference,
    desc: Descriptor,
    options: FetchOptions,
    sink: FetchSink,
  ): Promise<{ done: Promise<void>; abort: () => void }> {
    const ref = typeof input === 'string' ? ImageReference.parse(input) : input;
    checkDigest(desc.digest);
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) throw new InvalidArgumentError(`fetch ${desc.digest}: invalid size ${desc.size}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
      throw new InvalidArgumentError(`fetch ${desc.digest}: offset ${offset} outside the blob's ${desc.size} bytes`);
    }
    const hosts = (await this.hosts(ref.registry)).filter((h) => h.capabilities.has('pull'));
    if (hosts.length === 0) throw new NotFoundError(`no pull hosts for ${ref.registry}`);

    const inner = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, inner.signal]) : inner.signal;
    const state: FetchState = {
      position: offset,
      wire: offset,
      hash: options.sizeOnly ? undefined : offset === 0 ? hashFor(desc.digest) : options.hash,
    };
    const opened = offset < desc.size ? await this.open(ref, hosts, desc, state, options, signal) : undefined;
    const done = this.transfer(ref, desc, state, opened, options, signal, sink);
    // The caller may abort before it awaits `done`: the rejection is still its to see.
    done.catch(() => undefined);
    return { done, abort: () => inner.abort() };
  }

  private get delay(): number {
    return this.options.retryDelayMs ?? 200;
  }

  /** Finds a host that answers with the bytes from `state.wire`, retrying rounds over the hosts. */
  private async open(
    ref: ImageReference,
    hosts: RegistryHost[],
    desc: Descriptor,
    state: FetchState,
    options: FetchOptions,
    signal: AbortSignal,
    rounds = this.options.retries + 1,
  ): Promise<Opened> {
    let best: { error: Error; rank: number } | undefined;
    for (let attempt = 0; ; attempt++) {
      best = undefined;
      for (const host of hosts) {
        try {
          return await this.request(ref, host, desc, state, options, signal);
        } catch (err) {
          if (signal.aborted) throw abortError(signal, `fetch ${desc.digest}`);
          if (isCanceled(err) || isDeadlineExceeded(err)) throw err;
          // As the resolver ranks them: a status other than 404, then 404, then transport errors.
          const answered = (err as { cause?: unknown }).cause instanceof RegistryResponseError;
          const rank = isNotFound(err) ? 2 : answered || !isUnavailable(err) ? 3 : 1;
          if (!best || rank > best.rank) best = { error: err as Error, rank };
        }
      }
      if (!best || !isUnavailable(best.error) || attempt + 1 >= rounds) break;
      await sleep(backoff(this.delay, attempt), signal);
    }
    if (best?.rank === 2) throw new NotFoundError(`fetch ${ref.name}@${desc.digest}`, { cause: best.error });
    throw best!.error;
  }

  /** Sends one GET for the bytes from `state.wire` to one host; adjusts `state` when the host ignored Range. */
  private async request(
    ref: ImageReference,
    host: RegistryHost,
    desc: Descriptor,
    state: FetchState,
    options: FetchOptions,
    signal: AbortSignal,
  ): Promise<Opened> {
    const manifest = isManifestMediaType(desc.mediaType);
    const headers: Record<string, string> = {};
    if (manifest) headers.Accept = `${desc.mediaType}, ${MANIFEST_ACCEPT}`;
    if (state.wire > 0) headers.Range = `bytes=${state.wire}-`;
    const res = await this.http.request({
      host,
      method: 'GET',
      path: `/${ref.repository}/${manifest ? 'manifests' : 'blobs'}/${desc.digest}`,
      headers,
      scopes: [repositoryScope(ref.repository)],
      signal,
    });
    const context = `fetch ${desc.digest}`;
    if (res.status === 206 && state.wire > 0) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.header('content-range') ?? '');
      if (!range || Number(range[1]) !== state.wire || (range[3] !== '*' && Number(range[3]) !== desc.size)) {
        await res.body.dump();
        throw new FailedPreconditionError(`${context}: ${host.host} answered Range bytes=${state.wire}- with "${res.header('content-range')}" (size ${desc.size})`);
      }
      return { host, res };
    }
    if (res.status === 200 || res.status === 206) {
      const length = res.header('content-length');
      if (res.status === 200 && length !== undefined && Number(length) !== desc.size) {
        await res.body.dump();
        throw new FailedPreconditionError(`${context}: size mismatch: ${host.host} announced ${length} bytes, expected ${desc.size}`);
      }
      if (state.wire > 0) {
        // The whole blob again: hash it from the start, skip what the caller already has.
        state.wire = 0;
        state.hash = options.sizeOnly ? undefined : hashFor(desc.digest);
        options.onRestart?.({ position: state.position, host: host.host });
      }
      return { host, res };
    }
    throw errorForResponse(host.host, `${context} from ${ref.name}`, await res.error());
  }

  /** Delivers the bytes into `sink`, resuming after dropped connections; verifies size and digest. */
  private async transfer(
    ref: ImageReference,
    desc: Descriptor,
    state: FetchState,
    opened: Opened | undefined,
    options: FetchOptions,
    signal: AbortSignal,
    sink: FetchSink,
  ): Promise<void> {
    const context = `fetch ${desc.digest}`;
    let failures = 0;
    while (opened) {
      const { host, res } = opened;
      opened = undefined;
      try {
        await consume(res.body, (chunk) => {
          state.hash?.update(chunk);
          state.wire += chunk.length;
          if (state.wire > desc.size) {
            throw new FailedPreconditionError(`${context}: size mismatch: ${host.host} sent more than ${desc.size} bytes`);
          }
          if (state.wire <= state.position) return; // re-read after a restart
          const fresh = state.wire - state.position === chunk.length ? chunk : chunk.subarray(chunk.length - (state.wire - state.position));
          state.position = state.wire;
          failures = 0;
          return sink(fresh);
        });
      } catch (err) {
        if (signal.aborted) throw abortError(signal, context);
        if (err instanceof SinkError) throw err.cause;
        if (err instanceof BerthError) throw err;
        // The connection dropped: resume from the next byte on the same host.
        let error: Error = transportError(err, 'GET', res.url.href, this.http.limitsFor(host));
        while (!opened) {
          if (++failures > this.options.retries) throw error;
          await sleep(backoff(this.delay, failures - 1), signal);
          try {
            opened = await this.open(ref, [host], desc, state, options, signal, 1);
          } catch (e) {
            if (signal.aborted || !isUnavailable(e)) throw e;
            error = e as Error;
          }
        }
        continue;
      }
      if (state.wire !== desc.size) {
        throw new FailedPreconditionError(`${context}: size mismatch: ${host.host} sent ${state.wire} bytes, expected ${desc.size}`);
      }
    }
    if (state.hash) {
      const got = `${desc.digest.slice(0, desc.digest.indexOf(':'))}:${state.hash.digest('hex')}`;
      if (got !== desc.digest) throw new FailedPreconditionError(`${context}: digest mismatch: got ${got}, expected ${desc.digest}`);
    }
  }
}

/** What the sink threw or rejected with, kept apart from the connection's own failures. */
class SinkError extends Error {
  constructor(cause: unknown) {
    super('fetch sink failed', { cause });
  }
}

/**
 * Reads a response body to its end, handing each chunk to `onChunk`; the body is paused while a
 * promise `onChunk` returned is pending. A chunk the check in `onChunk` refuses (it throws a
 * BerthError) ends the read with that error; a sink failure arrives as a {@link SinkError}; the
 * body's own errors (a dropped connection) as they are.
 */
function consume(body: Readable, onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let pending: Promise<void> | undefined;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', settle);
      if (err === undefined) return resolve();
      body.on('error', () => undefined);
      body.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      let r: void | Promise<void>;
      try {
        r = onChunk(chunk);
      } catch (err) {
        return settle(err instanceof BerthError ? err : new SinkError(err));
      }
      if (!r) return;
      body.pause();
      pending = r.then(
        () => {
          pending = undefined;
          if (!settled) body.resume();
        },
        (err: unknown) => settle(new SinkError(err)),
      );
    };
    const onEnd = () => {
      if (pending) pending.then(() => settle(), settle);
      else settle();
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', settle);
  });
}

function backoff(base: number, attempt: number): number {
  return Math.min(base * 2 ** attempt, 5_000);
}
