import { type ChildProcess, spawn } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { content } from '@berth/api';
import { type BuiltImage, buildImage, dir, file, pseudoRandom } from '@berth/fixtures';
import { CTR2_PATH, type CtrResult, ReferenceContainerd2, TestDaemon, TestRegistry, runCtr2 } from '@berth/testing';
import { NO_GC, ok, seed } from './test-support';

/*
 * Pull faults through berthd with ctr 2.4.2 (the Transfer API: berthd fetches). A small HTTP
 * proxy on 127.0.0.1 sits between berthd and Debian's docker-registry: it records every request
 * (with its Range header) and can stall a blob's response halfway, holding the connection open.
 */

const MiB = 1 << 20;
const BIG = 20 * MiB;
const HALF = 10 * MiB;

/** One request the proxy forwarded. */
interface ProxiedRequest {
  method: string;
  path: string;
  range?: string;
}

/** A response the proxy cut short: `sent` bytes of the body went out, then nothing. */
interface Stall {
  digest: string;
  sent: number;
  /** Resolves when the client closed the connection (at that time, in ms since the epoch). */
  closed: Promise<number>;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of a registry. Every request is recorded; a GET of a blob
 * named in {@link stallBlob} gets the status, the headers and the first N bytes of the body,
 * then nothing more, on a connection kept open until the client closes it.
 */
class FaultProxy {
  readonly requests: ProxiedRequest[] = [];
  readonly stalls: Stall[] = [];
  private readonly rules = new Map<string, number>();
  private readonly stallWaiters: Array<(s: Stall) => void> = [];

  private constructor(
    private readonly server: Server,
    private readonly upstream: { host: string; port: number },
  ) {}

  /** host:port the proxy listens on. */
  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  static async start(upstreamHost: string): Promise<FaultProxy> {
    const [host, port] = upstreamHost.split(':');
    const server = createHttpServer();
    const proxy = new FaultProxy(server, { host, port: Number(port) });
    server.on('request', (req, res) => proxy.forward(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** From now on, GETs of `digest` stop after `bytes` bytes of body. */
  stallBlob(digest: string, bytes: number): void {
    this.rules.set(digest, bytes);
  }

  /** Lets every response through again. */
  clearStalls(): void {
    this.rules.clear();
  }

  /** The Range headers of the GETs of one blob, in order (undefined: no Range). */
  rangesOf(digest: string): Array<string | undefined> {
    return this.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).map((r) => r.range);
  }

  /** Resolves with the next stall (or one that already happened and nobody took). */
  nextStall(timeoutMs = 30_000): Promise<Stall> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no stalled response within ${timeoutMs} ms; requests: ${JSON.stringify(this.requests)}`)), timeoutMs);
      this.stallWaiters.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    this.requests.push({ method: req.method ?? '', path, range: req.headers.range });
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
    const limit = req.method === 'GET' && digest ? this.rules.get(digest) : undefined;
    const up = httpRequest({ ...this.upstream, method: req.method, path, headers: req.headers }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      if (limit === undefined) {
        ures.pipe(res);
        return;
      }
      let sent = 0;
      const closed = new Promise<number>((resolve) => res.once('close', () => resolve(Date.now())));
      ures.on('data', (chunk: Buffer) => {
        if (sent >= limit) return;
        const part = chunk.subarray(0, limit - sent);
        res.write(part);
        sent += part.length;
        if (sent >= limit) {
          // The registry's side is done with; the client's stays open, waiting for the rest.
          ures.destroy();
          const stall: Stall = { digest: digest!, sent, closed };
          this.stalls.push(stall);
          this.stallWaiters.splice(0).forEach((w) => w(stall));
        }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  /** Closes every connection (stalled ones too) and the listener. */
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A TCP listener on 127.0.0.1 that accepts connections and never answers: a hung registry. */
class SilentRegistry {
  readonly sockets = new Set<Socket>();
  /** When each connection the client closed went away (ms since the epoch). */
  readonly closedAt: number[] = [];

  private constructor(private readonly server: NetServer) {}

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  static async start(): Promise<SilentRegistry> {
    const server = createNetServer();
    const s = new SilentRegistry(server);
    server.on('connection', (socket) => {
      s.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.resume(); // read and drop whatever the client sends
      socket.once('close', () => {
        s.sockets.delete(socket);
        s.closedAt.push(Date.now());
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A small gzip base layer and a ~20 MiB uncompressed layer holding one file of random bytes.
 * Each case gets its own seed: content is shared across namespaces, so a blob one case fetched
 * would be "already exists" in the next.
 */
function bigImage(name: string, seedText: string): Promise<BuiltImage> {
  return buildImage({
    name,
    layers: [
      { entries: [dir('etc'), file('etc/hostname', `${seedText}\n`)] },
      { entries: [dir('data'), file('data/random.bin', pseudoRandom(seedText, BIG))], compression: 'none' },
    ],
  });
}

/** ctr 2.x running in the background, to be killed mid-transfer. */
function startCtr2(address: string, namespace: string, args: string[]): { child: ChildProcess; done: Promise<CtrResult> } {
  const child = spawn(CTR2_PATH!, ['--address', address, '--namespace', namespace, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<CtrResult>((resolve) =>
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })),
  );
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What `p` resolves with, or undefined if it takes longer than `ms` (the timer is cleared either way). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('pull faults through berthd and ctr 2.4.2', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let berthd: TestDaemon;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    registry = await TestRegistry.start();
    proxy = await FaultProxy.start(registry.host);
    berthd = await TestDaemon.start({ config: NO_GC });
  }, 60_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await berthd?.cleanup();
    await proxy?.stop();
    await registry?.stop();
  });

  /** Content API clients by namespace; a restart closes them (TestDaemon.kill), so they are made again. */
  const contentClients = new Map<string, ReturnType<typeof berthd.client<typeof content.ContentService>>>();
  /** The ingests of a namespace, through the Content API: ref -> bytes held. */
  const ingests = async (namespace: string): Promise<Map<string, number>> => {
    let c = contentClients.get(namespace);
    if (!c) contentClients.set(namespace, (c = berthd.client(content.ContentService, namespace)));
    const { statuses } = await c.listStatuses({ filters: [] });
    return new Map(statuses.map((s) => [s.ref, Number(s.offset)]));
  };

  /** Waits until the ingest `ref` holds bytes and has stopped growing (the proxy stalled). */
  const settledIngest = async (namespace: string, ref: string): Promise<number> => {
    const deadline = Date.now() + 15_000;
    let last = -1;
    for (;;) {
      const offset = (await ingests(namespace)).get(ref) ?? 0;
      if (offset > 0 && offset === last) return offset;
      if (Date.now() > deadline) throw new Error(`ingest ${ref} did not settle (offset ${offset})`);
      last = offset;
      await sleep(300);
    }
  };

  const pullArgs = (ref: string) => ['images', 'pull', '--plain-http', ref];

  it('kill -9 mid-layer, restart on the same root: the next pull resumes with Range and completes, unpacked', async () => {
    const ns = 'crash';
    const img = await bigImage(`${registry.host}/berth/big-crash:1`, 'crash');
    await seed(registry, 'berth/big-crash', '1', img);
    const big = img.layers[1];
    expect(big.size).toBeGreaterThan(BIG);
    const ref = `${proxy.host}/berth/big-crash:1`;
    const ingestRef = `layer-${big.digest}`;

    proxy.stallBlob(big.digest, HALF);
    const stalled = proxy.nextStall();
    const first = startCtr2(berthd.address, ns, pullArgs(ref));
    children.push(first.child);
    const stall = await stalled;
    expect(stall).toMatchObject({ digest: big.digest, sent: HALF });
    const held = await settledIngest(ns, ingestRef);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(HALF);

    await berthd.kill('SIGKILL');
    const r = await first.done;
    expect(r.code).not.toBe(0);
    proxy.clearStalls();
    await stall.closed; // berthd's end of the stalled response went with the process

    await berthd.restart();
    contentClients.clear();
    // The partial layer survived the crash as an ingest.
    const afterRestart = (await ingests(ns)).get(ingestRef);
    expect(afterRestart).toBeGreaterThan(0);
    expect(afterRestart).toBeLessThanOrEqual(held);

    ok(await runCtr2(berthd.address, pullArgs(ref), { namespace: ns, timeoutMs: 60_000 }), 'pull after restart');
    // The second pull asked for the rest only: bytes=<what the ingest held>-.
    const ranges = proxy.rangesOf(big.digest);
    expect(ranges[0]).toBeUndefined();
    expect(ranges).toContain(`bytes=${afterRestart}-`);

    const check = ok(await runCtr2(berthd.address, ['images', 'check'], { namespace: ns }), 'check');
    expect(check).toMatch(new RegExp(`${ref.replace(/[.]/g, '\\.')}\\s.*\\scomplete \\(3/3\\)\\s.*\\strue\\s*\\n`));
    expect((await ingests(ns)).size).toBe(0);
  });

  it('ctr killed mid-layer: berthd ends the transfer, stores no image, keeps the partial ingest; a later pull completes', async () => {
    const ns = 'cancel';
    const img = await bigImage(`${registry.host}/berth/big-cancel:1`, 'cancel');
    await seed(registry, 'berth/big-cancel', '1', img);
    const big = img.layers[1];
    const ref = `${proxy.host}/berth/big-cancel:1`;
    const ingestRef = `layer-${big.digest}`;

    proxy.stallBlob(big.digest, HALF);
    const stalled = proxy.nextStall();
    const pull = startCtr2(berthd.address, ns, pullArgs(ref));
    children.push(pull.child);
    const stall = await stalled;
    const held = await settledIngest(ns, ingestRef);

    const killedAt = Date.now();
    pull.child.kill('SIGINT');
    const r = await pull.done;
    expect(r.code).not.toBe(0);
    // berthd saw the call cancelled and dropped its registry connection: the stalled response
    // is closed from berthd's side within a few seconds.
    const closedAt = await within(stall.closed, 5_000);
    expect(closedAt).toBeDefined();
    expect(closedAt! - killedAt).toBeLessThan(5_000);
    proxy.clearStalls();

    // No image record; the partial layer stays as an ingest (ctr content active shows it too).
    expect(ok(await runCtr2(berthd.address, ['images', 'ls', '-q'], { namespace: ns }), 'ls').trim()).toBe('');
    expect((await ingests(ns)).get(ingestRef)).toBe(held);
    expect(ok(await runCtr2(berthd.address, ['content', 'active'], { namespace: ns }), 'content active')).toContain(ingestRef);

    ok(await runCtr2(berthd.address, pullArgs(ref), { namespace: ns, timeoutMs: 60_000 }), 'pull again');
    expect(proxy.rangesOf(big.digest)).toContain(`bytes=${held}-`);
    expect(ok(await runCtr2(berthd.address, ['images', 'ls', '-q'], { namespace: ns }), 'ls').trim()).toBe(ref);
    const check = ok(await runCtr2(berthd.address, ['images', 'check'], { namespace: ns }), 'check');
    expect(check).toMatch(/complete \(3\/3\).*true/);
    expect((await ingests(ns)).size).toBe(0);
  });

  describe('a registry that accepts connections and never answers', () => {
    let silent: SilentRegistry;

    beforeAll(async () => {
      silent = await SilentRegistry.start();
    });
    afterAll(async () => {
      await silent?.stop();
    });

    it('ctr --timeout 3s: the pull fails with the deadline and berthd drops the registry connection', async () => {
      const ref = `${silent.host}/berth/hung:1`;
      const started = Date.now();
      const r = await runCtr2(berthd.address, ['--timeout', '3s', ...pullArgs(ref)], { namespace: 'hung', timeoutMs: 30_000 });
      const elapsed = Date.now() - started;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/context deadline exceeded|DeadlineExceeded/);
      expect(elapsed).toBeLessThan(8_000);
      // The daemon's side of the transfer ended too: its connection to the silent registry is closed.
      const deadline = Date.now() + 5_000;
      while (silent.sockets.size > 0 && Date.now() < deadline) await sleep(100);
      expect(silent.sockets.size).toBe(0);
      expect(silent.closedAt.length).toBeGreaterThan(0);
      expect(ok(await runCtr2(berthd.address, ['images', 'ls', '-q'], { namespace: 'hung' }), 'ls').trim()).toBe('');
    });

    // Neither berthd nor containerd has a config key for this limit: containerd 2.4.2's HTTP
    // transport waits 30 s for response headers, berthd's RegistryClient 30 s for any bytes.
    it('without a client timeout: berthd gives up after 30 s without data, as containerd 2.4.2 does', async () => {
      const ref = `${silent.host}/berth/hung:1`;
      const containerd = await ReferenceContainerd2.start();
      try {
        const timed = async (address: string) => {
          const started = Date.now();
          const r = await runCtr2(address, pullArgs(ref), { namespace: 'hung', timeoutMs: 60_000 });
          return { r, elapsed: Date.now() - started };
        };
        const [b, c] = await Promise.all([timed(berthd.address), timed(containerd.address)]);
        expect([b.r.code, c.r.code]).toEqual([1, 1]);
        expect(c.r.stderr).toContain(`ctr: failed to resolve image: failed to do request: Head "http://${silent.host}/v2/berth/hung/manifests/1": net/http: timeout awaiting response headers`);
        expect(b.r.stderr).toContain(`ctr: failed to resolve image: `);
        expect(b.r.stderr).toContain(silent.host);
        expect(b.r.stderr).toMatch(/no data from the registry for 30000 ms/);
        for (const { elapsed } of [b, c]) {
          expect(elapsed).toBeGreaterThanOrEqual(29_000);
          expect(elapsed).toBeLessThan(40_000);
        }
      } finally {
        await containerd.cleanup();
      }
    }, 70_000);
  });
});
