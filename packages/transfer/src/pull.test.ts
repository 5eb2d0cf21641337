import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { context, type Context } from '@berth/context';
import { LocalContentStore, MetadataContentStore, parseDigest } from '@berth/content';
import { LayerPrefetcher, WalkingDiffer } from '@berth/diff';
import { CanceledError, GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { MT, buildImage, busyboxSpec, dir, file, generatedSpec, multiLayerSpec, pseudoRandom, type BuiltImage } from '@berth/fixtures';
import { ImagesService, chainIds, snapshotExists, type OciDescriptor } from '@berth/images';
import { createLogger, nullLogger } from '@berth/log';
import { LmdbImageStore, LmdbLeaseManager, MetadataDb } from '@berth/metadata';
import { withTempMount } from '@berth/mount';
import { RegistryClient, staticHosts, type RegistryHost, type RegistryHosts } from '@berth/remotes';
import { MetadataSnapshotter, OverlaySnapshotter } from '@berth/snapshots';
import { TestRegistry, tempDir } from '@berth/testing';
import { pull } from './pull';
import type { ImageStoreTarget, ProgressEvent, RegistryAccess, TransferServices, TransferSettings } from './types';

const NS = 'pulltest';
const LINUX_AMD64 = { os: 'linux', architecture: 'amd64' };
const LINUX_ARM64 = { os: 'linux', architecture: 'arm64' };
const SETTINGS: TransferSettings = {
  maxConcurrentDownloads: 3,
  maxConcurrentUploadedLayers: 3,
  unpackPlatforms: [{ platform: LINUX_AMD64, snapshotter: 'overlayfs' }],
  checkPlatformSupported: false,
};

/**
 * The daemon's stores in a temp dir: metadata db, namespaced content, overlayfs, the walking
 * differ with its extraction worker (as berthd configures it), images.
 */
class World {
  readonly content: MetadataContentStore;
  readonly snapshotter: MetadataSnapshotter;
  readonly images: ImagesService;
  readonly leases: LmdbLeaseManager;
  readonly differ: WalkingDiffer;
  readonly warnings: string[] = [];
  /** The prefetcher's debug lines (a tree taken, a blob not prefetched). */
  readonly prefetchLog: Array<{ msg: string; digest: string }> = [];

  private constructor(
    private readonly dir: { path: string; remove(): void },
    private readonly db: MetadataDb,
    private readonly overlay: OverlaySnapshotter,
    backend: LocalContentStore,
    private readonly prefetcher: LayerPrefetcher,
  ) {
    this.content = new MetadataContentStore(db, backend);
    this.snapshotter = new MetadataSnapshotter(db, 'overlayfs', overlay);
    this.images = new ImagesService(new LmdbImageStore(db), { publish: async () => undefined }, nullLogger);
    this.leases = new LmdbLeaseManager(db);
    this.differ = new WalkingDiffer((c) => this.content.bind(c), prefetcher);
  }

  static async open(): Promise<World> {
    const d = tempDir('berth-pull-');
    const db = MetadataDb.open(join(d.path, 'meta'));
    const backend = await LocalContentStore.open(join(d.path, 'content'));
    const sink: { log?: World['prefetchLog'] } = {};
    const prefetcher = await LayerPrefetcher.open(join(d.path, 'prefetch'), (digest) => backend.blobPath(parseDigest(digest)), {
      log: (msg, fields) => void sink.log?.push({ msg, digest: fields.digest }),
    });
    const world = new World(d, db, OverlaySnapshotter.open(join(d.path, 'overlayfs')), backend, prefetcher);
    sink.log = world.prefetchLog;
    return world;
  }

  /** A context in the test namespace under a fresh lease (the caller's lease, as the transferrer makes it). */
  async ctx(signal?: AbortSignal): Promise<Context> {
    const lease = await this.leases.create(context({ namespace: NS }), '');
    return context({ namespace: NS, lease: lease.id, signal });
  }

  services(settings: Partial<TransferSettings> = {}): TransferServices {
    return {
      content: this.content,
      images: this.images,
      snapshotter: (name) => {
        if (name !== 'overlayfs') throw new Error(`snapshotter not loaded: ${name}`);
        return this.snapshotter;
      },
      differ: this.differ,
      settings: { ...SETTINGS, ...settings },
      logger: createLogger({ level: 'warn', write: (line) => void this.warnings.push(line) }),
    };
  }

  async snapshots(): Promise<Array<{ name: string; kind: string; parent: string }>> {
    const out: Array<{ name: string; kind: string; parent: string }> = [];
    await this.snapshotter.walk(context({ namespace: NS }), (i) => void out.push({ name: i.name, kind: i.kind, parent: i.parent }));
    return out;
  }

  async labels(digest: string): Promise<Record<string, string>> {
    return (await this.content.info(context({ namespace: NS }), digest)).labels;
  }

  has(digest: string): boolean {
    return this.content.has(context({ namespace: NS }), digest);
  }

  /** Whether the differ's extraction worker thread is up. */
  get workerRunning(): boolean {
    return this.prefetcher.workerRunning;
  }

  /** The prefetcher's extractions and their states. */
  get prefetching(): Array<{ digest: string; state: string }> {
    return this.prefetcher.pending;
  }

  async close(): Promise<void> {
    await this.prefetcher.close();
    await this.snapshotter.close();
    await this.overlay.close();
    await this.db.close();
    this.dir.remove();
  }
}

/** A request the proxy saw. */
interface Seen {
  method: string;
  url: string;
  range?: string;
}

/** How the proxy answers one request: pass it on (optionally changing the body), or hold it first. */
interface Forwarding {
  /** Sends only the first n bytes of the body, then drops the connection. */
  dropAfter?: number;
  /** Sends the first n bytes of the body, then stops sending (until the client goes away, or `resume`). */
  stallAfter?: number;
  /** With `stallAfter`: sends the rest of the body once this resolves. */
  resume?: () => Promise<void>;
  /** Flips the body byte at this offset (a registry serving wrong data). */
  corruptAt?: number;
  /** Waits for this before answering. */
  before?: () => Promise<void>;
}

/** A node:http reverse proxy in front of the test registry that can misbehave per request. */
class FaultProxy {
  readonly seen: Seen[] = [];
  /** Decides how to answer a request; default: pass it on untouched. */
  rule: (req: IncomingMessage) => Forwarding | undefined = () => undefined;

  private constructor(private readonly server: Server) {}

  static async start(target: string): Promise<FaultProxy> {
    let self!: FaultProxy;
    const server = createServer((req, res) => {
      self.seen.push({ method: req.method ?? '', url: req.url ?? '', range: req.headers.range });
      void self.answer(target, req, res);
    });
    self = new FaultProxy(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The registry hosts that send every request through this proxy. */
  hosts(): RegistryHosts {
    return async (registry): Promise<RegistryHost[]> => [
      { registry, scheme: 'http', host: this.host, path: '/v2', capabilities: new Set(['pull', 'resolve']), headers: {} },
    ];
  }

  /** GETs of a blob, with their Range headers. */
  gets(digest: string): Seen[] {
    return this.seen.filter((s) => s.method === 'GET' && isBlob(s.url, digest));
  }

  private async answer(target: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const how = this.rule(req) ?? {};
    await how.before?.();
    const [hostname, port] = target.split(':');
    const upstream = httpRequest({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      res.once('close', () => up.destroy());
      let sent = 0;
      const onData = (chunk: Buffer) => {
        let out = chunk;
        if (how.corruptAt !== undefined && how.corruptAt >= sent && how.corruptAt < sent + chunk.length) {
          out = Buffer.from(chunk);
          out[how.corruptAt - sent] ^= 0xff;
        }
        const limit = how.dropAfter ?? how.stallAfter;
        if (limit !== undefined && sent + out.length >= limit) {
          const head = out.subarray(0, limit - sent);
          sent = limit;
          up.pause();
          up.removeAllListeners('data');
          res.write(head, () => {
            if (how.dropAfter !== undefined) res.socket?.destroy();
          });
          if (how.dropAfter === undefined && how.resume) {
            const rest = out.subarray(head.length);
            void how.resume().then(() => {
              sent += rest.length;
              res.write(rest);
              up.on('data', (c: Buffer) => void res.write(c));
              up.resume();
            });
          }
          return;
        }
        sent += out.length;
        res.write(out);
      };
      up.on('data', onData);
      up.on('end', () => res.end());
      up.on('error', () => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Reports whether a request path (query aside: the client sends `?ns=`) fetches the blob. */
function isBlob(url: string | undefined, digest: string): boolean {
  return new URL(url ?? '/', 'http://proxy').pathname.endsWith(`/blobs/${digest}`);
}

/** Pushes an image's blobs, then its manifest under the reference's tag. */
async function pushImage(client: RegistryClient, ref: string, img: BuiltImage): Promise<void> {
  for (const d of [...img.layers, img.config]) await client.push(ref, d, img.blobs.get(d.digest)!);
  await client.push(ref, img.manifest, img.blobs.get(img.manifest.digest)!);
}

const name = (kind: string, d: { digest: string }) => `${kind}-${d.digest}`;
const GC = 'containerd.io/gc.ref.content';

function target(overrides: Partial<ImageStoreTarget> = {}): ImageStoreTarget {
  return {
    kind: 'image-store',
    name: 'pulled:1',
    labels: {},
    platforms: [],
    allMetadata: false,
    manifestLimit: 0,
    extraReferences: [],
    unpacks: [],
    ...overrides,
  };
}

describe('pull from a registry into the image store, unpacking while fetching', () => {
  let registry: TestRegistry;
  let busybox: BuiltImage;
  let multi: BuiltImage;
  let big: BuiltImage;
  let amd: BuiltImage;
  let arm: BuiltImage;
  let index: { desc: OciDescriptor; bytes: Buffer };
  let world: World;
  const proxies: FaultProxy[] = [];
  const refs = {} as Record<'busybox' | 'multi' | 'big' | 'index', string>;
  const direct: RegistryAccess = { hosts: staticHosts({ scheme: 'http' }) };
  const source = (reference: string) => ({ kind: 'registry' as const, reference, headers: {} });
  const proxy = async () => {
    const p = await FaultProxy.start(registry.host);
    proxies.push(p);
    return p;
  };
  /** Runs a pull, collecting its progress. */
  const run = async (ctx: Context, reference: string, dst: ImageStoreTarget, access: RegistryAccess = direct, onEvent?: (e: ProgressEvent) => void) => {
    const events: ProgressEvent[] = [];
    const error = await pull(ctx, source(reference), dst, world.services(), access, (e) => {
      events.push(e);
      onEvent?.(e);
    }).then(
      () => undefined,
      (err: Error) => err,
    );
    return { events, error };
  };

  beforeAll(async () => {
    registry = await TestRegistry.start();
    [busybox, multi, big, amd, arm] = await Promise.all([
      buildImage(busyboxSpec()),
      buildImage(multiLayerSpec()),
      buildImage({
        name: 'big',
        layers: [
          { entries: [dir('etc'), file('etc/hostname', 'big\n')] },
          { entries: [dir('data'), file('data/blob', pseudoRandom('berth-pull-big', 4 << 20))] },
        ],
      }),
      buildImage({ name: 'amd', architecture: 'amd64', layers: [{ entries: [dir('etc'), file('etc/arch', 'amd64\n')] }] }),
      buildImage({ name: 'arm', architecture: 'arm64', layers: [{ entries: [dir('etc'), file('etc/arch', 'arm64\n')] }] }),
    ]);
    const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
    try {
      refs.busybox = `${registry.host}/library/busybox:berth`;
      refs.multi = `${registry.host}/berth/multilayer:1`;
      refs.big = `${registry.host}/berth/big:1`;
      await pushImage(client, refs.busybox, busybox);
      await pushImage(client, refs.multi, multi);
      await pushImage(client, refs.big, big);
      const bytes = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.ociIndex,
          manifests: [
            { ...amd.manifest, platform: LINUX_AMD64 },
            { ...arm.manifest, platform: LINUX_ARM64 },
          ],
        }),
      );
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      index = { desc: { mediaType: MT.ociIndex, digest, size: bytes.length }, bytes };
      refs.index = `${registry.host}/berth/multiarch:1`;
      const pinned = `${refs.index}@${digest}`;
      await pushImage(client, pinned, amd);
      await pushImage(client, pinned, arm);
      await client.push(pinned, index.desc, bytes);
    } finally {
      await client.close();
    }
  });
  beforeEach(async () => {
    world = await World.open();
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.stop()));
    await world?.close();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  /** Checks an unpacked image: committed chains, labels, image record. */
  const expectUnpacked = async (img: BuiltImage, imageName: string) => {
    const chains = chainIds(img.diffIds);
    const snaps = await world.snapshots();
    expect(snaps.filter((s) => s.kind !== 'committed')).toEqual([]);
    expect(snaps.map((s) => s.name).sort()).toEqual([...chains].sort());
    chains.forEach((c, i) => expect(snaps.find((s) => s.name === c)?.parent).toBe(i === 0 ? '' : chains[i - 1]));
    expect((await world.labels(img.config.digest))['containerd.io/gc.ref.snapshot.overlayfs']).toBe(chains[chains.length - 1]);
    for (const [i, l] of img.layers.entries()) expect((await world.labels(l.digest))['containerd.io/uncompressed']).toBe(img.diffIds[i]);
    const record = await world.images.get(context({ namespace: NS }), imageName);
    expect(record.target).toEqual({ ...img.manifest, annotations: {} });
  };

  it('pulls busybox and unpacks it into overlayfs: chains, labels, image record, a runnable tree', async () => {
    const ctx = await world.ctx();
    const { error } = await run(ctx, refs.busybox, target({ name: 'busybox:berth', labels: { team: 'berth' }, unpacks: [{ platform: LINUX_AMD64, snapshotter: '' }] }));
    expect(error).toBeUndefined();
    await expectUnpacked(busybox, 'busybox:berth');
    expect((await world.images.get(ctx, 'busybox:berth')).labels).toEqual({ team: 'berth' });
    // GC and distribution labels, as containerd's pull writes them.
    const source = { [`containerd.io/distribution.source.${registry.host.replace(/:\d+$/, '')}`]: 'library/busybox' };
    expect(await world.labels(busybox.manifest.digest)).toEqual({ ...source, [`${GC}.config`]: busybox.config.digest, [`${GC}.l.0`]: busybox.layers[0].digest });
    expect(await world.labels(busybox.layers[0].digest)).toMatchObject(source);
    // The single layer's snapshot is a bind mount of its directory: read it without mounting.
    const view = await world.snapshotter.view(ctx, 'check', chainIds(busybox.diffIds)[0]);
    try {
      expect(readFileSync(join(view[0].source, 'bin/busybox')).equals(readFileSync('/bin/busybox'))).toBe(true);
      expect(readlinkSync(join(view[0].source, 'bin/sh'))).toBe('busybox');
    } finally {
      await world.snapshotter.remove(ctx, 'check');
    }
  });

  it('pulls the multi-layer image: every chain, and the merged tree has the whiteouts and overrides applied', async () => {
    const ctx = await world.ctx();
    const started = performance.now();
    const { error, events } = await run(ctx, refs.multi, target({ name: 'multi:1', unpacks: [{ platform: LINUX_AMD64, snapshotter: 'overlayfs' }] }));
    const elapsed = performance.now() - started;
    expect(error).toBeUndefined();
    expect(elapsed).toBeLessThan(10_000);
    // Queued in the order an unpack needs them: config, then the layers bottom up.
    expect(events.filter((e) => e.event === 'waiting').map((e) => e.name)).toEqual([
      name('manifest', multi.manifest),
      name('config', multi.config),
      ...multi.layers.map((l) => name('layer', l)),
    ]);
    await expectUnpacked(multi, 'multi:1');
    const top = chainIds(multi.diffIds)[2];
    const mounts = await world.snapshotter.view(ctx, 'check', top);
    try {
      await withTempMount(mounts, (root) => {
        expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toBe('restored\n');
        expect(existsSync(join(root, 'var/lib/old'))).toBe(false);
        expect(existsSync(join(root, 'var/cache/a'))).toBe(false);
        expect(readFileSync(join(root, 'var/cache/new'), 'utf8')).toBe('new');
        expect(readFileSync(join(root, 'replace-me/inner'), 'utf8')).toBe('now a dir');
        expect(existsSync(join(root, 'fifo'))).toBe(false);
      });
    } finally {
      await world.snapshotter.remove(ctx, 'check');
    }
  });

  it('reports progress as containerd does: resolve, per blob waiting..complete with parents, extract, saved, completed', async () => {
    const ctx = await world.ctx();
    const { events, error } = await run(ctx, refs.busybox, target({ name: 'busybox:berth', unpacks: [{ snapshotter: 'overlayfs' }] }));
    expect(error).toBeUndefined();
    const [m, c, l] = [name('manifest', busybox.manifest), name('config', busybox.config), name('layer', busybox.layers[0])];
    const root = { ...busybox.manifest };
    expect(events.slice(0, 3)).toEqual([
      { event: `Resolving from OCI Registry (${refs.busybox})` },
      { event: `Pulling from OCI Registry (${refs.busybox})` },
      { event: 'fetching image content', name: refs.busybox, desc: root },
    ]);
    expect(events.slice(-2)).toEqual([
      { event: 'saved', name: 'busybox:berth', desc: root },
      { event: `Completed pull from OCI Registry (${refs.busybox})` },
    ]);
    const of = (n: string) => events.filter((e) => e.name === n).map((e) => e.event);
    expect(of(m)).toEqual(['waiting', ...of(m).slice(1, -1).map(() => 'downloading'), 'complete']);
    expect(of(c)[0]).toBe('waiting');
    expect(of(c)[of(c).length - 1]).toBe('complete');
    // The layer is extracted as it downloads: `extracting` may come before its `complete`.
    expect(of(l).filter((e) => e !== 'downloading' && e !== 'extracting')).toEqual(['waiting', 'complete', 'extracted']);
    expect(of(l).filter((e) => e === 'extracting').length).toBeGreaterThan(0);
    const first = (n: string, ev: string) => events.find((e) => e.name === n && e.event === ev)!;
    expect(first(m, 'waiting')).toEqual({ event: 'waiting', name: m, parents: [refs.busybox], progress: 0, total: busybox.manifest.size, desc: expect.objectContaining({ digest: busybox.manifest.digest }) });
    expect(first(c, 'waiting').parents).toEqual([m]);
    expect(first(l, 'waiting')).toMatchObject({ parents: [m], progress: 0, total: busybox.layers[0].size });
    expect(first(l, 'complete')).toMatchObject({ parents: [m], progress: busybox.layers[0].size, total: busybox.layers[0].size });
    expect(first(l, 'extracted')).toMatchObject({ progress: busybox.layers[0].size, total: busybox.layers[0].size });
    // The manifest is downloaded before its children are queued (its store runs beside them); the
    // config is queued before the layer; the layer is extracted only once it is complete.
    const at = (n: string, ev: string) => events.indexOf(first(n, ev));
    expect(at(m, 'waiting')).toBeLessThan(at(c, 'waiting'));
    expect(at(c, 'waiting')).toBeLessThan(at(l, 'waiting'));
    expect(at(l, 'complete')).toBeLessThan(at(l, 'extracted'));
    expect(at(l, 'extracted')).toBeLessThan(events.length - 2);
  });

  it('pulls again: every blob "already exists", no layer is applied again, the image record is replaced', async () => {
    const ctx = await world.ctx();
    expect((await run(ctx, refs.multi, target({ name: 'multi:1', unpacks: [{ snapshotter: '' }] }))).error).toBeUndefined();
    const before = await world.snapshots();
    const again = await run(await world.ctx(), refs.multi, target({ name: 'multi:1', labels: { second: 'yes' }, unpacks: [{ snapshotter: '' }] }));
    expect(again.error).toBeUndefined();
    const blobs = again.events.filter((e) => e.name?.includes('sha256:'));
    const names = [name('manifest', multi.manifest), name('config', multi.config), ...multi.layers.map((l) => name('layer', l))];
    expect(blobs.map((e) => e.event)).toEqual(names.map(() => 'already exists'));
    expect(blobs.map((e) => e.name).sort()).toEqual([...names].sort());
    for (const e of blobs) expect(e.parents).toBeUndefined();
    expect(await world.snapshots()).toEqual(before);
    expect((await world.images.get(ctx, 'multi:1')).labels).toEqual({ second: 'yes' });
  });

  it('filters an index by platform; allMetadata keeps the other platform config; manifestLimit keeps the best', async () => {
    const ctx = await world.ctx();
    const arm64 = await run(ctx, refs.index, target({ name: 'arm:1', platforms: [LINUX_ARM64] }));
    expect(arm64.error).toBeUndefined();
    expect([index.desc.digest, arm.manifest.digest, arm.config.digest, ...arm.layers.map((l) => l.digest)].every((d) => world.has(d))).toBe(true);
    expect([amd.manifest.digest, amd.config.digest, ...amd.layers.map((l) => l.digest)].some((d) => world.has(d))).toBe(false);
    // The index references every child for the collector (as containerd labels it), whatever was fetched.
    expect(await world.labels(index.desc.digest)).toMatchObject({ [`${GC}.m.0`]: amd.manifest.digest, [`${GC}.m.1`]: arm.manifest.digest });
    expect((await world.images.get(ctx, 'arm:1')).target.digest).toBe(index.desc.digest);
    expect(arm64.events.find((e) => e.name === name('manifest', arm.manifest))?.parents).toEqual([name('index', index.desc)]);

    const meta = await run(ctx, refs.index, target({ name: 'arm:1', platforms: [LINUX_ARM64], allMetadata: true }));
    expect(meta.error).toBeUndefined();
    expect(world.has(amd.manifest.digest) && world.has(amd.config.digest)).toBe(true);
    expect(world.has(amd.layers[0].digest)).toBe(false);

    const fresh = await World.open();
    const old = world;
    world = fresh;
    try {
      const limited = await run(await world.ctx(), refs.index, target({ name: 'best:1', platforms: [LINUX_ARM64, LINUX_AMD64], manifestLimit: 1 }));
      expect(limited.error).toBeUndefined();
      expect(world.has(arm.layers[0].digest)).toBe(true);
      expect(world.has(amd.manifest.digest)).toBe(false);
    } finally {
      world = old;
      await fresh.close();
    }
  });

  it('unpacks the index manifest that best fits the requested platform (OS-only match) and skips unsupported ones with a warning', async () => {
    const ctx = await world.ctx();
    const { error } = await run(
      ctx,
      refs.index,
      target({ name: 'multiarch:1', unpacks: [{ platform: LINUX_ARM64, snapshotter: '' }, { platform: { os: 'windows', architecture: 'amd64' }, snapshotter: '' }] }),
    );
    expect(error).toBeUndefined();
    // Both platforms were fetched (no platform filter); only arm64 is unpacked, on this amd64-configured host.
    expect(world.has(amd.layers[0].digest) && world.has(arm.layers[0].digest)).toBe(true);
    expect((await world.snapshots()).map((s) => s.name)).toEqual(chainIds(arm.diffIds));
    expect(world.warnings.join('')).toMatch(/level=warn msg="no unpack platform configured for the requested unpack, skipping it".*platform=windows\/amd64/);
  });

  it('answers NotFound "failed to resolve image: <ref>: not found" for a missing tag, storing nothing', async () => {
    const ctx = await world.ctx();
    const missing = `${registry.host}/berth/multilayer:missing`;
    const { error, events } = await run(ctx, missing, target());
    expect(toGrpcStatus(error)).toEqual({ code: GrpcCode.NOT_FOUND, details: `failed to resolve image: ${missing}: not found` });
    expect(events).toEqual([{ event: `Resolving from OCI Registry (${missing})` }]);
    expect(await world.images.list(ctx)).toEqual([]);
  });

  it('completes when the registry drops the connection in the middle of a layer (resumed with Range)', async () => {
    const p = await proxy();
    const layer = big.layers[1];
    let dropped = false;
    p.rule = (req) => {
      if (dropped || !isBlob(req.url, layer.digest)) return undefined;
      dropped = true;
      return { dropAfter: 1 << 20 };
    };
    const { error } = await run(await world.ctx(), refs.big, target({ name: 'big:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() });
    expect(error).toBeUndefined();
    const gets = p.gets(layer.digest);
    expect(gets).toHaveLength(2);
    expect(gets[0].range).toBeUndefined();
    expect(Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1])).toBeGreaterThan(0);
    await expectUnpacked(big, 'big:1');
  });

  it('a cancelled pull stores no image and keeps the partial layer; the next pull resumes it with Range', async () => {
    const p = await proxy();
    const layer = big.layers[1];
    const layerName = name('layer', layer);
    let stalled = false;
    p.rule = (req) => {
      if (stalled || !isBlob(req.url, layer.digest)) return undefined;
      stalled = true;
      return { stallAfter: 1 << 20 };
    };
    const abort = new AbortController();
    const ctx = await world.ctx(abort.signal);
    const dst = target({ name: 'big:1', unpacks: [{ snapshotter: '' }] });
    const first = await run(ctx, refs.big, dst, { hosts: p.hosts() }, (e) => {
      if (e.name === layerName && e.event === 'downloading') abort.abort();
    });
    expect(toGrpcStatus(first.error).code).toBe(GrpcCode.CANCELLED);
    expect(first.error).toBeInstanceOf(CanceledError);
    const downloading = first.events.filter((e) => e.name === layerName && e.event === 'downloading');
    expect(downloading[0]).toMatchObject({ parents: [name('manifest', big.manifest)], total: layer.size });
    expect(await world.images.list(ctx)).toEqual([]);
    expect(world.has(layer.digest)).toBe(false);
    const partial = await world.content.status(ctx, layerName);
    expect(partial.offset).toBeGreaterThan(0);
    expect(partial.offset).toBeLessThan(layer.size);

    const second = await run(await world.ctx(), refs.big, dst, { hosts: p.hosts() });
    expect(second.error).toBeUndefined();
    expect(p.gets(layer.digest).map((g) => g.range)).toEqual([undefined, `bytes=${partial.offset}-`]);
    expect(second.events.find((e) => e.name === layerName && e.event === 'waiting')).toMatchObject({ progress: 0, total: layer.size });
    await expectUnpacked(big, 'big:1');
    await expect(world.content.status(ctx, layerName)).rejects.toThrow(/not found/);
  });

  it('fetches a blob again from byte 0 when the bytes an earlier pull left do not verify at commit', async () => {
    const p = await proxy();
    const layer = big.layers[1];
    const ctx = await world.ctx();
    const stale = await world.content.writer(ctx, { ref: name('layer', layer), total: layer.size, expected: layer.digest });
    await stale.write(Buffer.alloc(1 << 20));
    await stale.close();
    const { error } = await run(ctx, refs.big, target({ name: 'big:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() });
    expect(error).toBeUndefined();
    expect(p.gets(layer.digest).map((g) => g.range)).toEqual([`bytes=${1 << 20}-`, undefined]);
    await expectUnpacked(big, 'big:1');
  });

  it('refuses a layer whose bytes do not match its digest: the error names it, nothing is committed, no image', async () => {
    const p = await proxy();
    const layer = big.layers[1];
    p.rule = (req) => (isBlob(req.url, layer.digest) ? { corruptAt: 100_000 } : undefined);
    const ctx = await world.ctx();
    const { error } = await run(ctx, refs.big, target({ name: 'big:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() });
    expect(toGrpcStatus(error).code).toBe(GrpcCode.FAILED_PRECONDITION);
    expect(error?.message).toContain(layer.digest);
    expect(error?.message).toMatch(/unexpected commit digest sha256:[0-9a-f]{64}, expected sha256:/);
    expect(world.has(layer.digest)).toBe(false);
    // The wrong bytes are not kept for a resume either.
    await expect(world.content.status(ctx, name('layer', layer))).rejects.toThrow(/not found/);
    expect(await world.images.list(ctx)).toEqual([]);
  });

  it('applies a layer as it downloads: the extraction reads the first bytes before the rest arrive', async () => {
    const p = await proxy();
    const layer = big.layers[1];
    const half = Math.floor(layer.size / 2);
    let readWhileHeld = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const timeout = setTimeout(release, 10_000);
    p.rule = (req) => (isBlob(req.url, layer.digest) && req.method === 'GET' ? { stallAfter: half, resume: () => released } : undefined);
    const onEvent = (e: ProgressEvent) => {
      // The held half is all the extraction can have read: report it and let the rest through.
      if (e.event === 'extracting' && e.name === name('layer', layer) && (e.progress ?? 0) > 0) {
        readWhileHeld = e.progress ?? 0;
        release();
      }
    };
    const { error, events } = await run(await world.ctx(), refs.big, target({ name: 'big:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() }, onEvent);
    clearTimeout(timeout);
    expect(error).toBeUndefined();
    expect(readWhileHeld).toBeGreaterThan(0);
    expect(readWhileHeld).toBeLessThanOrEqual(half);
    // The snapshot is committed only after the download verified the blob.
    const complete = events.findIndex((e) => e.name === name('layer', layer) && e.event === 'complete');
    const extracted = events.findIndex((e) => e.name === name('layer', layer) && e.event === 'extracted');
    expect(complete).toBeGreaterThanOrEqual(0);
    expect(extracted).toBeGreaterThan(complete);
    await expectUnpacked(big, 'big:1');
  });

  it('a layer applied as it downloads, with wrong bytes: no snapshot, no blob, the digest error', async () => {
    const p = await proxy();
    const layer = big.layers[1];
    // Late in the blob, so that the extraction has gone through the bytes before the commit refuses them.
    p.rule = (req) => (isBlob(req.url, layer.digest) ? { corruptAt: layer.size - 10 } : undefined);
    const ctx = await world.ctx();
    const { error } = await run(ctx, refs.big, target({ name: 'big:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() });
    expect(toGrpcStatus(error).code).toBe(GrpcCode.FAILED_PRECONDITION);
    expect(error?.message).toContain(layer.digest);
    expect(world.has(layer.digest)).toBe(false);
    const chains = chainIds(big.diffIds);
    // The layer below may be committed; nothing of the refused layer, and no extraction left behind.
    expect((await world.snapshots()).filter((s) => s.name !== chains[0])).toEqual([]);
    expect(await world.images.list(ctx)).toEqual([]);
  });

  it('a pull cancelled while blobs wait for a transfer slot ends Canceled and stores nothing', async () => {
    const stray: unknown[] = [];
    const onStray = (reason: unknown) => void stray.push(reason);
    process.on('unhandledRejection', onStray);
    try {
      const abort = new AbortController();
      const ctx = await world.ctx(abort.signal);
      const events: ProgressEvent[] = [];
      // One slot: the layers queue behind the config, and the pull is cancelled as the first one queues.
      const error = await pull(ctx, source(refs.multi), target({ name: 'multi:1', unpacks: [{ snapshotter: '' }] }), world.services({ maxConcurrentDownloads: 1 }), direct, (e) => {
        events.push(e);
        if (e.event === 'waiting' && e.name?.startsWith('layer-')) abort.abort(new CanceledError('cancelled by the test'));
      }).then(
        () => undefined,
        (err: Error) => err,
      );
      await new Promise((r) => setTimeout(r, 100));
      expect(toGrpcStatus(error).code).toBe(GrpcCode.CANCELLED);
      expect(stray).toEqual([]);
      expect(await world.images.list(ctx)).toEqual([]);
    } finally {
      process.off('unhandledRejection', onStray);
    }
  });

  it('applies the first layers while the last one is still downloading', async () => {
    const p = await proxy();
    const chains = chainIds(multi.diffIds);
    const last = multi.layers[2];
    const seenBeforeRelease: boolean[] = [];
    const probe = context({ namespace: NS });
    p.rule = (req) => {
      if (!isBlob(req.url, last.digest)) return undefined;
      return {
        before: async () => {
          // Hold the last layer until the two below it are committed snapshots (or 10 s).
          const deadline = Date.now() + 10_000;
          while (Date.now() < deadline && !(await snapshotExists(probe, world.snapshotter, chains[1]))) await new Promise((r) => setTimeout(r, 20));
          seenBeforeRelease.push(await snapshotExists(probe, world.snapshotter, chains[0]), await snapshotExists(probe, world.snapshotter, chains[1]));
          seenBeforeRelease.push(world.has(last.digest));
        },
      };
    };
    const { error, events } = await run(await world.ctx(), refs.multi, target({ name: 'multi:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() });
    expect(error).toBeUndefined();
    expect(seenBeforeRelease).toEqual([true, true, false]);
    const lastDone = events.findIndex((e) => e.name === name('layer', last) && e.event === 'complete');
    const secondApplied = events.findIndex((e) => e.name === name('layer', multi.layers[1]) && e.event === 'extracted');
    expect(secondApplied).toBeLessThan(lastDone);
    await expectUnpacked(multi, 'multi:1');
  });

  it('starts the extraction worker while the image is still being resolved', async () => {
    const fresh = await World.open();
    const p = await proxy();
    const seen: boolean[] = [];
    p.rule = (req) => (new URL(req.url ?? '/', 'http://proxy').pathname.includes('/manifests/') ? { before: async () => void seen.push(fresh.workerRunning) } : undefined);
    try {
      expect(fresh.workerRunning).toBe(false);
      const error = await pull(await fresh.ctx(), source(refs.busybox), target({ name: 'busybox:warm', unpacks: [{ snapshotter: '' }] }), fresh.services(), { hosts: p.hosts() }, () => undefined).then(
        () => undefined,
        (err: Error) => err,
      );
      expect(error).toBeUndefined();
      expect(seen.length).toBeGreaterThan(0);
      expect(seen[0]).toBe(true);
    } finally {
      await fresh.close();
    }
  });

  it('extracts layers stored before their turn beside the apply below them, and takes their trees', async () => {
    const img = await buildImage(generatedSpec({ name: 'ahead', layers: 3, totalMiB: 3 }));
    const ref = `${registry.host}/berth/ahead:1`;
    const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
    try {
      await pushImage(client, ref, img);
    } finally {
      await client.close();
    }
    const p = await proxy();
    const upper = img.layers.slice(1).map((l) => l.digest);
    const seenBeforeRelease: string[] = [];
    p.rule = (req) => {
      if (!isBlob(req.url, img.layers[0].digest)) return undefined;
      return {
        before: async () => {
          // The bottom layer waits until the two above it are extracted (or 10 s).
          const deadline = Date.now() + 10_000;
          const ready = () => upper.every((d) => world.prefetching.some((e) => e.digest === d && e.state === 'ready'));
          while (Date.now() < deadline && !ready()) await new Promise((r) => setTimeout(r, 20));
          seenBeforeRelease.push(...world.prefetching.filter((e) => upper.includes(e.digest)).map((e) => e.state));
        },
      };
    };
    const { error } = await run(await world.ctx(), ref, target({ name: 'ahead:1', unpacks: [{ snapshotter: '' }] }), { hosts: p.hosts() });
    expect(error).toBeUndefined();
    expect(seenBeforeRelease).toEqual(['ready', 'ready']);
    await expectUnpacked(img, 'ahead:1');
    const taken = world.prefetchLog.filter((l) => l.msg === 'layer applied from its prefetched tree').map((l) => l.digest);
    expect(taken.sort()).toEqual([...upper].sort());
    // The trees moved into place are the layers' files.
    const chains = chainIds(img.diffIds);
    const view = await world.snapshotter.view(context({ namespace: NS }), 'check', chains[2]);
    try {
      const lower = view[0].options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':');
      expect(readFileSync(join(lower[0], 'layer2/f0')).equals(pseudoRandom('l2f0', 1 << 20))).toBe(true);
      expect(readFileSync(join(lower[1], 'layer1/f0')).equals(pseudoRandom('l1f0', 1 << 20))).toBe(true);
    } finally {
      await world.snapshotter.remove(context({ namespace: NS }), 'check');
    }
  });
});
