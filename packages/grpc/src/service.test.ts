import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CanceledError, DataLossError, isCanceled } from '@berth/errdefs';
import { nullLogger } from '@berth/log';
import { callContext, withReplyBarrier, type GrpcService } from './service';

/** A service of raw byte messages: `Echo` (unary) answers its request. */
const passThrough = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const definition: grpc.ServiceDefinition = {
  Echo: {
    path: '/berth.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: passThrough.serialize,
    requestDeserialize: passThrough.deserialize,
    responseSerialize: passThrough.serialize,
    responseDeserialize: passThrough.deserialize,
  },
};
const echo: GrpcService = {
  definition,
  implementation: { Echo: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, c.request) },
};

describe('withReplyBarrier', () => {
  let dir: string;
  let server: grpc.Server;
  let client: grpc.Client & { Echo: (req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void };
  let barrier: () => Promise<void> | void;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-grpc-'));
    server = new grpc.Server();
    const held = withReplyBarrier(echo, () => barrier(), nullLogger);
    server.addService(held.definition, held.implementation);
    const address = `unix://${join(dir, 's.sock')}`;
    await new Promise<void>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const Client = grpc.makeGenericClientConstructor(definition, 'Echo');
    client = new Client(address, grpc.credentials.createInsecure()) as typeof client;
  });

  afterEach(async () => {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (req: string) =>
    new Promise<{ err: grpc.ServiceError | null; res?: string }>((resolve) => client.Echo(Buffer.from(req), (err, res) => resolve({ err, res: res?.toString() })));

  it('holds a unary reply until the barrier resolves', async () => {
    let release!: () => void;
    barrier = () => new Promise((r) => (release = r));
    let answered = false;
    const pending = call('hello').finally(() => (answered = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    release();
    expect(await pending).toEqual({ err: null, res: 'hello' });
  });

  it('answers with the barrier error when the barrier fails', async () => {
    barrier = () => Promise.reject(new DataLossError('metadata database: sync failed'));
    const { err } = await call('hello');
    expect(err?.code).toBe(grpc.status.DATA_LOSS);
    expect(err?.details).toMatch(/sync failed/);
  });

  it('answers at once when the barrier has nothing to wait for', async () => {
    let asked = 0;
    barrier = () => void asked++;
    expect(await call('now')).toEqual({ err: null, res: 'now' });
    expect(asked).toBe(1);
  });
});

describe('callContext, on calls of a real server', () => {
  let dir: string;
  let server: grpc.Server;
  let client: grpc.Client & { Echo: (req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => grpc.ClientUnaryCall };
  /** What the server does with each call; it answers when `handle` resolves. */
  let handle: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => Promise<void>;
  const failures: unknown[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-grpc-ctx-'));
    server = new grpc.Server();
    server.addService(definition, {
      Echo: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        handle(c).then(
          () => cb(null, c.request),
          (err) => (failures.push(err), cb(null, c.request)),
        ),
    });
    const address = `unix://${join(dir, 's.sock')}`;
    await new Promise<void>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const Client = grpc.makeGenericClientConstructor(definition, 'Echo');
    client = new Client(address, grpc.credentials.createInsecure()) as typeof client;
  });

  afterEach(async () => {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
    expect(failures.splice(0)).toEqual([]);
  });

  /** Sends one call with `headers`; `cancelWhen` cancels it from the client once it resolves. */
  const send = (headers: Record<string, string> = {}, cancelWhen?: Promise<unknown>) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      const c = client.Echo(Buffer.from('x'), md, (err) => resolve(err));
      void cancelWhen?.then(() => c.cancel());
    });
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise((r) => setTimeout(r, 2));
  };

  it('reads the namespace and lease headers, and makes no signal nor cancel listener unless asked', async () => {
    let seen: unknown;
    handle = async (c) => {
      const { ctx, aborted, done } = callContext(c);
      seen = { namespace: ctx.namespace, lease: ctx.lease, aborted: aborted(), listeners: c.listenerCount('cancelled') };
      done();
    };
    expect(await send({ 'containerd-namespace': 'ns1', 'containerd-lease': 'l1' })).toBeNull();
    expect(seen).toEqual({ namespace: 'ns1', lease: 'l1', aborted: false, listeners: 0 });
  });

  it('aborts the signal, asked for before the client cancels, with a CanceledError; done() detaches the listener', async () => {
    let asked!: () => void;
    const signalAsked = new Promise<void>((r) => (asked = r));
    let seen: unknown;
    handle = async (c) => {
      const { ctx, aborted, done } = callContext(c);
      const signal = ctx.signal;
      const listening = c.listenerCount('cancelled');
      asked();
      await until(() => signal.aborted);
      seen = { same: ctx.signal === signal, canceled: isCanceled(signal.reason), aborted: aborted(), listening };
      done();
      seen = { ...(seen as object), after: c.listenerCount('cancelled') };
    };
    expect((await send({}, signalAsked))?.code).toBe(grpc.status.CANCELLED);
    await until(() => seen !== undefined && 'after' in (seen as object));
    expect(seen).toEqual({ same: true, canceled: true, aborted: true, listening: 1, after: 0 });
  });

  it('shows a cancel that came before the signal was asked for, on aborted() and then on the signal', async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let seen: unknown;
    handle = async (c) => {
      const { ctx, aborted, done } = callContext(c);
      started();
      await until(aborted);
      seen = { aborted: ctx.signal.aborted, reason: ctx.signal.reason instanceof CanceledError };
      done();
    };
    expect((await send({}, running))?.code).toBe(grpc.status.CANCELLED);
    await until(() => seen !== undefined);
    expect(seen).toEqual({ aborted: true, reason: true });
  });
});
