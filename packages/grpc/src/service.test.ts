import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DataLossError } from '@berth/errdefs';
import { nullLogger } from '@berth/log';
import { withReplyBarrier, type GrpcService } from './service';

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
  let barrier: () => Promise<void>;

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
});
