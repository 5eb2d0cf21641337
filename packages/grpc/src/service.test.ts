import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DataLossError } from '@berth/errdefs';
import { nullLogger } from '@berth/log';
import { callContext, withReplyBarrier, type GrpcService } from './service';
import { EventEmitter } from 'node:events';
import { CanceledError, isCanceled } from '@berth/errdefs';

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

describe('callContext', () => {
  /** A stand-in for a grpc-js server call: metadata, no deadline, and the 'cancelled' event. */
  const fakeCall = () => Object.assign(new EventEmitter(), { metadata: new grpc.Metadata(), getDeadline: () => Infinity, cancelled: false }) as unknown as Parameters<typeof callContext>[0];
  /** What grpc-js does when the client cancels: the flag, then the event. */
  const cancel = (c: Parameters<typeof callContext>[0]) => {
    (c as { cancelled: boolean }).cancelled = true;
    (c as unknown as EventEmitter).emit('cancelled');
  };

  it('gives the same signal every time, aborted when the client cancels', () => {
    const c = fakeCall();
    const { ctx } = callContext(c);
    const signal = ctx.signal;
    expect(ctx.signal).toBe(signal);
    expect(signal.aborted).toBe(false);
    cancel(c);
    expect(signal.aborted).toBe(true);
    expect(isCanceled(signal.reason)).toBe(true);
  });

  it('shows a cancellation that came before anyone asked for the signal', () => {
    const c = fakeCall();
    const { ctx } = callContext(c);
    cancel(c);
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBeInstanceOf(CanceledError);
  });

  it('stops listening once the call is done', () => {
    const c = fakeCall();
    const { ctx, done } = callContext(c);
    done();
    cancel(c);
    expect(ctx.signal.aborted).toBe(false);
  });

  it('answers aborted without making the signal, and agrees with it', () => {
    const c = fakeCall();
    const { ctx, aborted } = callContext(c);
    expect(aborted()).toBe(false);
    expect((c as unknown as EventEmitter).listenerCount('cancelled')).toBe(0);
    cancel(c);
    expect(aborted()).toBe(true);
    expect(ctx.signal.aborted).toBe(true);
  });

  it('listens for the cancel only once the signal is asked for', () => {
    const c = fakeCall();
    const { ctx, done } = callContext(c);
    void ctx.signal;
    expect((c as unknown as EventEmitter).listenerCount('cancelled')).toBe(1);
    done();
    expect((c as unknown as EventEmitter).listenerCount('cancelled')).toBe(0);
  });

  it('reads the namespace and lease headers', () => {
    const c = fakeCall();
    c.metadata.set('containerd-namespace', 'ns1');
    c.metadata.set('containerd-lease', 'l1');
    const { ctx } = callContext(c);
    expect({ namespace: ctx.namespace, lease: ctx.lease }).toEqual({ namespace: 'ns1', lease: 'l1' });
  });
});
