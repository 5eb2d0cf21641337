import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { eventsService, ttrpcEvents } from '@berth/api';
import { ContainerCreate, Envelope, GO_ZERO_TIME, NamespaceCreate, TaskExit, packAny } from '@berth/api/events';
import { context } from '@berth/context';
import { GrpcCode, isFailedPrecondition, isInvalidArgument, isResourceExhausted, kindOf } from '@berth/errdefs';
import { Client, createClient } from '@berth/grpc';
import { nullLogger } from '@berth/log';
import { LoadedPlugins, loadPlugins } from '@berth/plugin/loader';
import { tempDir } from '@berth/testing';
import { TtrpcClient, TtrpcServer, createTtrpcClient } from '@berth/ttrpc';
import { Exchange } from './exchange';
import { exchangePlugin } from './plugin';
import { EventsApiPlugin, eventsGrpcPlugin } from './plugins';

const packagesDir = join(__dirname, '..', '..');

/** Loads `entry` in a fresh Node process (sources via esbuild-register) and lists the grpc-js files it loaded. */
function grpcFilesLoadedBy(entry: string): string[] {
  const script = `
    const Module = require('node:module');
    const path = require('node:path');
    require('esbuild-register/dist/node').register({ target: 'node20' });
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      const m = /^@berth\\/([a-z0-9-]+)$/.exec(request);
      if (m) request = path.join(${JSON.stringify(packagesDir)}, m[1], 'src', 'index.ts');
      return resolve.call(this, request, ...rest);
    };
    require(${JSON.stringify(entry)});
    process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((f) => f.includes('/@grpc/grpc-js/'))));
  `;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: join(packagesDir, '..'), encoding: 'utf8' })) as string[];
}

describe('@berth/events entry points', () => {
  it('the main entry loads no @grpc/grpc-js module', () => {
    expect(grpcFilesLoadedBy(join(__dirname, 'index.ts'))).toEqual([]);
  });

  it('the plugins entry does (so the check above can fail)', () => {
    expect(grpcFilesLoadedBy(join(__dirname, 'plugins.ts')).length).toBeGreaterThan(0);
  });
});

async function first<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

describe('io.containerd.grpc.v1 events over a real gRPC server and ttrpc server', () => {
  let dir: ReturnType<typeof tempDir>;
  let plugins: LoadedPlugins;
  let server: grpc.Server;
  let ttrpcServer: TtrpcServer;
  let exchange: Exchange;
  let api: EventsApiPlugin;
  let client: Client<typeof eventsService.EventsService>;
  let address: string;

  beforeEach(async () => {
    dir = tempDir('events-grpc-');
    address = join(dir.path, 'grpc.sock');
    plugins = await loadPlugins([exchangePlugin, eventsGrpcPlugin], {
      root: join(dir.path, 'root'),
      state: join(dir.path, 'state'),
      address,
      sections: { 'io.containerd.event.v1.exchange': { queue_limit: 8 } },
      logger: nullLogger,
    });
    exchange = plugins.ofType<Exchange>('io.containerd.event.v1').get('exchange')!;
    api = plugins.ofType<EventsApiPlugin>('io.containerd.grpc.v1').get('events')!;
    server = new grpc.Server();
    for (const s of api.services) server.addService(s.definition, s.implementation);
    await new Promise<void>((res, rej) => server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    ttrpcServer = new TtrpcServer();
    for (const s of api.ttrpcServices) ttrpcServer.register(s);
    await ttrpcServer.listen(`${address}.ttrpc`);
    client = createClient(eventsService.EventsService, address, { namespace: 'default' });
  });

  afterEach(async () => {
    client.close();
    await ttrpcServer.close(100);
    server.forceShutdown();
    await plugins.close();
    dir.remove();
  });

  /** Subscribes and waits until the exchange has registered the subscription. */
  async function subscribe(filters: string[], options: { signal?: AbortSignal } = {}): Promise<AsyncIterator<Envelope>> {
    const before = exchange.subscribers;
    const it = client.subscribe({ filters }, options)[Symbol.asyncIterator]();
    const firstRead = it.next();
    while (exchange.subscribers === before) await new Promise((r) => setTimeout(r, 2));
    let used = false;
    return {
      next: () => (used ? it.next() : ((used = true), firstRead)),
      return: (v) => it.return!(v),
    };
  }

  it('Publish: namespace from the header, Any kept verbatim, events of all namespaces delivered', async () => {
    const sub = await subscribe([]);
    const raw = { typeUrl: 'foo.Unknown', value: Buffer.from([1, 2, 3]) };
    await client.publish({ topic: '/x/raw', event: raw });
    await client.publish({ topic: '/namespaces/create', event: packAny(NamespaceCreate, { name: 'b' }) }, { namespace: 'other' });
    const a = (await sub.next()).value as Envelope;
    const b = (await sub.next()).value as Envelope;
    expect(a).toMatchObject({ namespace: 'default', topic: '/x/raw', event: raw });
    expect(b).toMatchObject({ namespace: 'other', topic: '/namespaces/create', event: { typeUrl: 'containerd.events.NamespaceCreate' } });
    await sub.return!();
  });

  it.each([
    ['/a', undefined, 'failed publishing event: namespace is required: failed precondition', isFailedPrecondition],
    ['bad', 'default', `envelope topic "bad": must start with '/': invalid argument`, isInvalidArgument],
    ['/a', 'Bad!', 'failed publishing event: namespace validation: identifier "Bad!" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument', isInvalidArgument],
  ])('Publish %p in %p fails as containerd', async (topic, namespace, message, is) => {
    const c = createClient(eventsService.EventsService, address, { namespace });
    const err = await c.publish({ topic, event: packAny(ContainerCreate, { id: 'x' }) }).catch((e) => e);
    c.close();
    expect(is(err)).toBe(true);
    expect(err.message).toBe(message);
  });

  it('Forward keeps the envelope namespace and timestamp, with no namespace header needed', async () => {
    const sub = await subscribe(['namespace==shimns']);
    const c = createClient(eventsService.EventsService, address);
    const when = new Date('2024-05-06T07:08:09.123Z');
    await c.forward({ envelope: { timestamp: when, namespace: 'shimns', topic: '/tasks/exit', event: packAny(TaskExit, { id: 't' }) } });
    c.close();
    expect((await sub.next()).value).toMatchObject({ timestamp: when, namespace: 'shimns', topic: '/tasks/exit' });
    await sub.return!();
  });

  it.each([
    [{ timestamp: GO_ZERO_TIME, namespace: 'x', topic: '/a', event: packAny(TaskExit, {}) }, 'timestamp must be set on forwarded event: invalid argument'],
    [{ timestamp: new Date(), namespace: '', topic: '/a', event: packAny(TaskExit, {}) }, 'event envelope has invalid namespace: identifier must not be empty: invalid argument'],
    [undefined, 'envelope must be set on forwarded event: invalid argument'],
  ])('Forward of %p fails with INVALID_ARGUMENT', async (envelope, message) => {
    const err = await client.forward({ envelope }).catch((e) => e);
    expect([isInvalidArgument(err), err.message]).toEqual([true, message]);
  });

  it('Subscribe filters on topic, namespace and event fields', async () => {
    const sub = await subscribe(['topic~="/containers/"', 'namespace==x']);
    await client.publish({ topic: '/namespaces/create', event: packAny(NamespaceCreate, { name: 'n' }) });
    await client.publish({ topic: '/containers/create', event: packAny(ContainerCreate, { id: 'c1' }) });
    await client.publish({ topic: '/namespaces/create', event: packAny(NamespaceCreate, { name: 'x' }) }, { namespace: 'x' });
    await client.publish({ topic: '/done', event: packAny(NamespaceCreate, {}) }, { namespace: 'x' });
    const got = [(await sub.next()).value, (await sub.next()).value, (await sub.next()).value] as Envelope[];
    expect(got.map((e) => `${e.namespace} ${e.topic}`)).toEqual(['default /containers/create', 'x /namespaces/create', 'x /done']);
    await sub.return!();
  });

  it('Subscribe with a bad filter answers UNKNOWN as containerd does', async () => {
    const err = await first(client.subscribe({ filters: ['topic=='] }), 1).catch((e) => e);
    expect(kindOf(err)).toBe('unknown');
    expect(err.cause).toEqual({ code: GrpcCode.UNKNOWN, details: 'subscription error: failed parsing subscription filters: filters: parse error: [topic==]: expected value or quoted: invalid argument' });
  });

  it('disconnects a subscriber that stops reading with RESOURCE_EXHAUSTED, without holding up publishers', async () => {
    const stalled = await subscribe([]);
    const live = await subscribe(['topic=="/tick"']);
    const t0 = Date.now();
    // Enough to fill the HTTP/2 windows, then the 8-event queue (queue_limit in the config).
    for (let i = 0; i < 20_000; i++) await exchange.publish(context({ namespace: 'n' }), '/fill', ContainerCreate, { id: String(i) });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(exchange.subscribers).toBe(1);
    await exchange.publish(context({ namespace: 'n' }), '/tick', ContainerCreate, { id: 'tick' });
    expect(((await live.next()).value as Envelope).topic).toBe('/tick');
    let err: unknown;
    try {
      while (!(await stalled.next()).done);
    } catch (e) {
      err = e;
    }
    expect(isResourceExhausted(err)).toBe(true);
    expect((err as Error).message).toBe('event subscriber fell behind by 8 events and was disconnected');
    await live.return!();
  });

  it('drain() ends open Subscribe streams normally', async () => {
    const sub = await subscribe([]);
    api.drain();
    expect(await sub.next()).toEqual({ done: true, value: undefined });
    expect(exchange.subscribers).toBe(0);
  });

  it('serves ttrpc Forward into the exchange', async () => {
    const sub = await subscribe([]);
    const tc = await TtrpcClient.connect(`${address}.ttrpc`);
    const events = createTtrpcClient(ttrpcEvents.EventsService, tc, { namespace: 'shimns' });
    const when = new Date('2024-01-01T00:00:00.5Z');
    await events.forward({ envelope: { timestamp: when, namespace: 'shimns', topic: '/tasks/start', event: packAny(TaskExit, { id: 'x' }) } });
    const err = await events.forward({ envelope: { timestamp: when, namespace: 'shimns', topic: 'bad', event: undefined } }).catch((e) => e);
    tc.close();
    expect(err.message).toBe(`envelope topic "bad": must start with '/': invalid argument`);
    expect((await sub.next()).value).toMatchObject({ timestamp: when, namespace: 'shimns', topic: '/tasks/start' });
    await sub.return!();
  });
});
