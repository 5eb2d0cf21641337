/*
 * Pull and push through containerd 2.x's Transfer API: the client opens a progress stream (and
 * an auth stream when it can answer credential requests) on the Streaming service, names them in
 * the Transfer request, and reads Progress frames until the server closes the stream.
 */
import { randomBytes } from 'node:crypto';
import { packAny, unpackAny } from '@berth/api';
import { AuthRequest, AuthResponse, AuthType, ImageStore, OCIRegistry, Progress, transfer, streaming } from '@berth/api/transfer';
import { CanceledError, UnavailableError } from '@berth/errdefs';
import type { DuplexCall } from '@berth/grpc';
import type { protobuf } from '@berth/api';
import { type Connection, type RequestOptions, type Scope, callOptions } from './connection';
import { type Platform, hostPlatform, withTemporaryLease } from './image-content';

type Any = protobuf.Any;

/** What a blob's progress says it is doing. */
export type BlobState = 'waiting' | 'resolving' | 'downloading' | 'uploading' | 'complete' | 'already exists' | 'extracting' | 'extracted';

const BLOB_STATES: ReadonlySet<string> = new Set<BlobState>(['waiting', 'resolving', 'downloading', 'uploading', 'complete', 'already exists', 'extracting', 'extracted']);

/** Running totals over the blobs of one transfer. */
export interface TransferTotals {
  /** Blobs seen so far. */
  blobs: number;
  /** Blobs complete (stored, pushed, or already there). */
  done: number;
  /** Layers extracted into a snapshot. */
  extracted: number;
  /** Bytes moved so far, over every blob. */
  bytes: number;
  /** Bytes to move, over every blob seen so far. */
  total: number;
}

/** One typed progress event of a pull or push. */
export type TransferEvent =
  | {
      type: 'blob';
      /** The server's name of the node: `layer-sha256:...`, `manifest-sha256:...`. */
      name: string;
      kind: string;
      digest: string;
      state: BlobState;
      /** Bytes of this blob done (for `extracting`, compressed bytes read). */
      bytes: number;
      total: number;
      parents: string[];
      totals: TransferTotals;
    }
  | { type: 'saved'; image: string; digest?: string }
  /** Lines with no blob: `Resolving from OCI Registry (...)`, `Completed pull ...`, `pushed content`. */
  | { type: 'status'; message: string; name?: string; digest?: string };

/** Credentials for a registry host; undefined for anonymous access. */
export type Credentials = { username: string; secret: string } | { refreshToken: string };

/** Answers a registry's request for credentials (called only on a 401). */
export type CredentialsCallback = (host: string, reference: string) => Promise<Credentials | undefined> | Credentials | undefined;

/** Options shared by pull and push. */
export interface RegistryOptions extends RequestOptions {
  /** Speak plain HTTP to the registry (ctr's `--plain-http`). */
  plainHttp?: boolean;
  /** A certs.d directory with `hosts.toml` files (ctr's `--hosts-dir`). */
  hostsDir?: string;
  /** Extra headers sent to the registry. */
  headers?: Record<string, string>;
  credentials?: CredentialsCallback;
}

/** Options of a pull. */
export interface PullOptions extends RegistryOptions {
  /** Platforms to fetch; the host's by default. */
  platforms?: Platform[];
  /** Fetch every platform (and unpack none). */
  allPlatforms?: boolean;
  /** Unpack into the snapshotter once fetched (true by default). */
  unpack?: boolean;
  /** The snapshotter to unpack into; the daemon's default when empty. */
  snapshotter?: string;
  /** Labels of the image record. */
  labels?: Record<string, string>;
  /** The local image name; the reference by default. */
  name?: string;
}

/** Options of a push. */
export interface PushOptions extends RegistryOptions {
  /** The local image to push; the reference by default. */
  source?: string;
  /** Platforms to push; all by default. */
  platforms?: Platform[];
}

/**
 * A running transfer: iterate it for its progress events (each event once; they are buffered
 * until read), and await `done` for its outcome. Iteration ends after the last event; it
 * throws the transfer's error when it failed.
 */
export interface TransferOperation extends AsyncIterable<TransferEvent> {
  readonly done: Promise<void>;
}

/** Stream ids as containerd's client makes them: `<prefix>-<nanos of the second>-<3 random bytes>`. */
function streamId(prefix: string): string {
  return `${prefix}-${process.hrtime.bigint() % 1_000_000_000n}-${randomBytes(3).toString('base64url')}`;
}

/** Opens a stream and waits for the server's acknowledgement. */
async function openStream(conn: Connection, scope: Scope, id: string, signal?: AbortSignal): Promise<DuplexCall<Any, Any>> {
  const call = conn.service(streaming.StreamingService).stream(callOptions(scope, { signal }));
  call.write(packAny(streaming.StreamInit, { id }));
  const ack = await call.read();
  if (ack === undefined) throw new UnavailableError(`stream ${id} ended before the server acknowledged it`);
  return call;
}

function resolver(o: RegistryOptions, authStream: string) {
  return { authStream, headers: o.headers ?? {}, hostDir: o.hostsDir ?? '', defaultScheme: o.plainHttp ? 'http' : '', httpDebug: 0, logsStream: '' };
}

/** Turns Progress frames into typed events, keeping per-blob state for the totals. */
class ProgressTracker {
  private readonly blobs = new Map<string, { bytes: number; total: number; done: boolean; extracted: boolean }>();

  event(p: Progress): TransferEvent {
    const m = /^(index|manifest|layer|config|attestation|unknown)-(.+)$/.exec(p.name);
    if (m && BLOB_STATES.has(p.event)) {
      const at = m[2].lastIndexOf('@');
      const digest = p.desc?.digest || (at >= 0 ? m[2].slice(at + 1) : m[2]);
      const b = this.blobs.get(p.name) ?? { bytes: 0, total: 0, done: false, extracted: false };
      const state = p.event as BlobState;
      b.total = Math.max(b.total, Number(p.total));
      // A daemon reports a state only when it sees it on a tick (containerd ticks every 300 ms),
      // so a small layer may go from waiting to extracted: any state past moving is done.
      const moving = state === 'waiting' || state === 'resolving' || state === 'downloading' || state === 'uploading';
      b.bytes = moving ? Number(p.progress) : b.total;
      b.done = !moving;
      if (state === 'extracted') b.extracted = true;
      this.blobs.set(p.name, b);
      return { type: 'blob', name: p.name, kind: m[1], digest, state, bytes: Number(p.progress), total: Number(p.total), parents: p.parents, totals: this.totals() };
    }
    if (p.event === 'saved') return { type: 'saved', image: p.name, ...(p.desc?.digest ? { digest: p.desc.digest } : {}) };
    return { type: 'status', message: p.event, ...(p.name ? { name: p.name } : {}), ...(p.desc?.digest ? { digest: p.desc.digest } : {}) };
  }

  totals(): TransferTotals {
    const t: TransferTotals = { blobs: 0, done: 0, extracted: 0, bytes: 0, total: 0 };
    for (const b of this.blobs.values()) {
      t.blobs++;
      if (b.done) t.done++;
      if (b.extracted) t.extracted++;
      t.bytes += b.bytes;
      t.total += b.total;
    }
    return t;
  }
}

/** An unbounded queue of events, read once as an async iterator. */
class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private ended = false;
  private failure: unknown;
  private wake?: () => void;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }
  end(err?: unknown): void {
    this.ended = true;
    this.failure = err;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length > 0) yield this.items.shift()!;
      else if (this.ended) {
        if (this.failure) throw this.failure;
        return;
      } else await new Promise<void>((r) => (this.wake = r));
    }
  }
}

/** Runs one Transfer with a progress stream and, when credentials are given, an auth stream. */
function run(conn: Connection, scope: Scope, o: RegistryOptions, request: (authStream: string) => { source: Any; destination: Any }): TransferOperation {
  const queue = new EventQueue<TransferEvent>();
  const tracker = new ProgressTracker();
  const cancel = new AbortController();
  const onAbort = () => cancel.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  // Under a lease, as ctr does: containerd collects streams no lease holds, so a collection
  // between opening a stream and the Transfer call would lose it ("not found").
  const done = withTemporaryLease(conn, scope, async (scope) => {
    // A signal that aborted before a call starts is not seen by the call: check it here.
    if (cancel.signal.aborted) throw new CanceledError('transfer cancelled before it started');
    const progressId = streamId('progress');
    const progress = await openStream(conn, scope, progressId, cancel.signal);
    let auth: DuplexCall<Any, Any> | undefined;
    let authId = '';
    if (o.credentials) {
      authId = streamId('creds');
      auth = await openStream(conn, scope, authId, cancel.signal);
      void answerAuth(auth, o.credentials).catch(() => undefined);
    }
    const reading = (async () => {
      for await (const frame of progress) {
        const p = unpackAny(frame);
        if (p && typeof p === 'object' && 'event' in p) queue.push(tracker.event(p as Progress));
      }
    })().catch(() => undefined);
    try {
      const { source, destination } = request(authId);
      await conn.service(transfer.TransferService).transfer({ source, destination, options: { progressStream: progressId } }, callOptions(scope, { signal: cancel.signal, timeout: o.timeout }));
      // The server closes the progress stream just before it replies; the trailing events follow.
      await Promise.race([reading, new Promise((r) => setTimeout(r, 5_000).unref())]);
    } finally {
      progress.cancel();
      auth?.cancel();
      o.signal?.removeEventListener('abort', onAbort);
    }
  }, 24 * 3600_000);
  done.then(
    () => queue.end(),
    (err) => queue.end(err),
  );
  // `done` is awaited by the caller or through the iterator; neither must leave it unhandled.
  done.catch(() => undefined);
  return { done, [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator]() };
}

async function answerAuth(call: DuplexCall<Any, Any>, credentials: CredentialsCallback): Promise<void> {
  for await (const frame of call) {
    const req = unpackAny(frame) as AuthRequest;
    const c = await credentials(req.host, req.reference);
    const res: Partial<AuthResponse> = !c
      ? { authType: AuthType.REFRESH, secret: '' }
      : 'refreshToken' in c
        ? { authType: AuthType.REFRESH, secret: c.refreshToken }
        : { authType: AuthType.CREDENTIALS, username: c.username, secret: c.secret };
    call.write(packAny(AuthResponse, res));
  }
}

/** Starts a pull of `reference` into the image store (unpacked for the host platform by default). */
export function pull(conn: Connection, scope: Scope, reference: string, o: PullOptions = {}): TransferOperation {
  const platforms = o.allPlatforms ? [] : (o.platforms ?? [hostPlatform()]);
  const unpack = o.unpack ?? true;
  return run(conn, scope, o, (authStream) => ({
    source: packAny(OCIRegistry, { reference, resolver: resolver(o, authStream) }),
    destination: packAny(ImageStore, {
      name: o.name ?? reference,
      labels: o.labels ?? {},
      platforms,
      allMetadata: false,
      unpacks: unpack ? platforms.map((platform) => ({ platform, snapshotter: o.snapshotter ?? '' })) : [],
    }),
  }));
}

/** Starts a push of a local image (`source`, or `reference` itself) to `reference`. */
export function push(conn: Connection, scope: Scope, reference: string, o: PushOptions = {}): TransferOperation {
  return run(conn, scope, o, (authStream) => ({
    source: packAny(ImageStore, { name: o.source ?? reference, platforms: o.platforms ?? [] }),
    destination: packAny(OCIRegistry, { reference, resolver: resolver(o, authStream) }),
  }));
}
