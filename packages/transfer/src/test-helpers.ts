/*
 * Test support for the import, export and push tests (not exported from the package): the
 * daemon's stores in a temp dir, and the client's side of a stream as ctr plays it.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { protobuf } from '@berth/api';
import { Data, WindowUpdate } from '@berth/api/transfer';
import { type Context, context } from '@berth/context';
import { LocalContentStore, MetadataContentStore } from '@berth/content';
import { WalkingDiffer } from '@berth/diff';
import { CanceledError, FailedPreconditionError } from '@berth/errdefs';
import { ImagesService, type OciDescriptor, hostPlatform } from '@berth/images';
import { nullLogger } from '@berth/log';
import { LmdbImageStore, LmdbLeaseManager, MetadataDb } from '@berth/metadata';
import { MetadataSnapshotter, NativeSnapshotter } from '@berth/snapshots';
import { EndOfStreamError, MAX_DATA_FRAME, type Stream, WINDOW_SIZE } from '@berth/streaming';
import type { ImageStoreTarget, ProgressEvent, TransferServices, TransferSettings } from './types';

type Any = protobuf.Any;

const DATA_URL = 'containerd.types.transfer.Data';
const WINDOW_URL = 'containerd.types.transfer.WindowUpdate';

/** The transferrer's settings in tests: the host platform unpacks into `native`. */
export const TEST_SETTINGS: TransferSettings = {
  maxConcurrentDownloads: 3,
  maxConcurrentUploadedLayers: 3,
  unpackPlatforms: [{ platform: hostPlatform(), snapshotter: 'native' }],
  checkPlatformSupported: false,
};

/** An ImageStore destination or source with nothing set but what is given. */
export function imageStore(over: Partial<ImageStoreTarget> = {}): ImageStoreTarget {
  return { kind: 'image-store', name: '', labels: {}, platforms: [], allMetadata: false, manifestLimit: 0, extraReferences: [], unpacks: [], ...over };
}

/** Collects progress events in `events`. */
export function progressLog(): { sink: (e: ProgressEvent) => void; events: ProgressEvent[] } {
  const events: ProgressEvent[] = [];
  return { sink: (e) => void events.push(e), events };
}

/**
 * The daemon's stores over a temp dir: a metadata database, the namespaced content store over a
 * local one, the native snapshotter under the metadata snapshotter, the walking differ and the
 * images service (events go nowhere). {@link close} closes them and removes the dir.
 */
export class World {
  readonly content: MetadataContentStore;
  readonly snapshotter: MetadataSnapshotter;
  readonly images: ImagesService;
  readonly leases: LmdbLeaseManager;
  readonly differ: WalkingDiffer;

  private constructor(
    readonly dir: string,
    private readonly db: MetadataDb,
    private readonly native: NativeSnapshotter,
    backend: LocalContentStore,
  ) {
    this.content = new MetadataContentStore(db, backend);
    this.snapshotter = new MetadataSnapshotter(db, 'native', native);
    this.images = new ImagesService(new LmdbImageStore(db), { publish: async () => undefined }, nullLogger);
    this.leases = new LmdbLeaseManager(db);
    this.differ = new WalkingDiffer((c) => this.content.bind(c));
  }

  static async open(prefix: string): Promise<World> {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    const db = MetadataDb.open(join(dir, 'meta'));
    const backend = await LocalContentStore.open(join(dir, 'content'));
    return new World(dir, db, NativeSnapshotter.open(join(dir, 'native')), backend);
  }

  /** A context in `namespace` under a fresh lease, as the transferrer runs an operation. */
  async ctx(namespace: string): Promise<Context> {
    const lease = await this.leases.create(context({ namespace }), '');
    return context({ namespace, lease: lease.id });
  }

  services(settings: Partial<TransferSettings> = {}): TransferServices {
    return {
      content: this.content,
      images: this.images,
      snapshotter: (name) => {
        if (name !== 'native') throw new FailedPreconditionError(`snapshotter not loaded: ${name}`);
        return this.snapshotter;
      },
      differ: this.differ,
      settings: { ...TEST_SETTINGS, ...settings },
    };
  }

  /** Writes a blob into the namespace (under `ctx`'s lease); returns its descriptor. */
  async blob(ctx: Context, mediaType: string, data: Buffer, labels: Record<string, string> = {}): Promise<OciDescriptor> {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const w = await this.content.writer(ctx, { ref: `test-${digest}`, total: data.length });
    try {
      await w.write(data);
      await w.commit(data.length, digest, labels);
    } catch (err) {
      if (!(err as Error).message.includes('already exists')) throw err;
    } finally {
      await w.close();
    }
    return { mediaType, digest, size: data.length };
  }

  async close(): Promise<void> {
    await this.snapshotter.close();
    await this.native.close();
    await this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An unbounded queue of frames with an end. */
class FrameQueue {
  private readonly frames: Any[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(f: Any): void {
    this.frames.push(f);
    this.signal();
  }

  end(): void {
    this.ended = true;
    this.signal();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** The next frame, or undefined once ended and empty. */
  async next(signal?: AbortSignal): Promise<Any | undefined> {
    for (;;) {
      if (this.frames.length > 0) return this.frames.shift();
      if (this.ended) return undefined;
      if (signal?.aborted) throw new CanceledError('stream read cancelled');
      let onAbort: (() => void) | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        onAbort = () => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** The client's end of an in-memory stream. */
export interface ClientEnd {
  send(frame: Any): void;
  /** Half-closes: the daemon's `recv` then ends with EndOfStreamError. */
  closeSend(): void;
  /** The next frame from the daemon; undefined once the daemon closed the stream. */
  recv(): Promise<Any | undefined>;
}

/**
 * A stream as a client opened it: `server` is what a transfer gets, `client` what the test plays
 * ctr with. Closing the server side ends the client's reads; frames sent by the client after
 * that are dropped.
 */
export function streamPair(): { server: Stream & { readonly closed: boolean }; client: ClientEnd } {
  const toServer = new FrameQueue();
  const toClient = new FrameQueue();
  let closed = false;
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const server = {
    get closed() {
      return closed;
    },
    async send(frame: Any): Promise<void> {
      if (closed) throw new FailedPreconditionError('stream closed');
      toClient.push(frame);
    },
    async recv(signal?: AbortSignal): Promise<Any> {
      const f = await toServer.next(signal);
      if (f === undefined) throw new EndOfStreamError();
      return f;
    },
    close(): void {
      if (closed) return;
      closed = true;
      toClient.end();
      ended();
    },
    done,
  };
  const client: ClientEnd = {
    send: (frame) => {
      if (!closed) toServer.push(frame);
    },
    closeSend: () => toServer.end(),
    recv: () => toClient.next(),
  };
  return { server, client };
}

/**
 * Sends bytes as ctr's import does: waits for the daemon's window credit, sends Data frames of at
 * most 32 KiB within it, and half-closes at the end. Resolves with the bytes sent; stops early,
 * without error, if the daemon closes the stream.
 */
export async function clientSend(client: ClientEnd, data: Buffer): Promise<number> {
  let credit = 0;
  let off = 0;
  while (off < data.length) {
    while (credit <= 0) {
      const f = await client.recv();
      if (f === undefined) return off;
      if (f.typeUrl === WINDOW_URL) credit += WindowUpdate.decode(f.value).update;
    }
    const n = Math.min(MAX_DATA_FRAME, credit, data.length - off);
    client.send({ typeUrl: DATA_URL, value: Buffer.from(Data.encode({ data: data.subarray(off, off + n) }).finish()) });
    credit -= n;
    off += n;
  }
  client.closeSend();
  return off;
}

/**
 * Receives bytes as ctr's export does: grants 64 KiB windows whenever less than one is
 * outstanding (the first before anything arrives) and collects Data frames until the daemon
 * closes the stream. Fails if the daemon ever sends more than was granted; reports the largest frame.
 */
export async function clientReceive(client: ClientEnd): Promise<{ data: Buffer; largestFrame: number }> {
  const chunks: Buffer[] = [];
  let window = 0;
  let largestFrame = 0;
  let granted = 0;
  let received = 0;
  for (;;) {
    if (window < WINDOW_SIZE) {
      client.send({ typeUrl: WINDOW_URL, value: Buffer.from(WindowUpdate.encode({ update: WINDOW_SIZE }).finish()) });
      window += WINDOW_SIZE;
      granted += WINDOW_SIZE;
    }
    const f = await client.recv();
    if (f === undefined) break;
    if (f.typeUrl !== DATA_URL) continue;
    const { data } = Data.decode(f.value);
    received += data.length;
    if (received > granted) throw new Error(`daemon sent ${received} bytes with ${granted} granted`);
    largestFrame = Math.max(largestFrame, data.length);
    window -= data.length;
    chunks.push(Buffer.from(data));
  }
  return { data: Buffer.concat(chunks), largestFrame };
}
