import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { protobuf } from '@berth/api';
import { Data, WindowUpdate, streaming } from '@berth/api/transfer';
import { context } from '@berth/context';
import { isAlreadyExists, isCanceled, isInvalidArgument, isNotFound } from '@berth/errdefs';
import { type Client, type DuplexCall, createClient } from '@berth/grpc';
import { nullLogger } from '@berth/log';
import { metadataPlugin } from '@berth/metadata';
import { type LoadedPlugins, loadPlugins } from '@berth/plugin/loader';
import { tempDir } from '@berth/testing';
import { MAX_DATA_FRAME, WINDOW_SIZE, receiveBytes, sendBytes } from './byte-stream';
import type { StreamManager } from './manager';
import { streamingGrpcPlugin, streamingManagerPlugin } from './plugins';
import { EndOfStreamError, type Stream } from './stream';

type Any = protobuf.Any;
const ns = context({ namespace: 'default' });
const init = (id: string): Any => ({ typeUrl: 'containerd.services.streaming.v1.StreamInit', value: Buffer.from(streaming.StreamInit.encode({ id }).finish()) });
const data = (b: Uint8Array): Any => ({ typeUrl: 'containerd.types.transfer.Data', value: Buffer.from(Data.encode({ data: Buffer.from(b) }).finish()) });
const windowUpdate = (n: number): Any => ({ typeUrl: 'containerd.types.transfer.WindowUpdate', value: Buffer.from(WindowUpdate.encode({ update: n }).finish()) });

describe('io.containerd.grpc.v1 streaming over a real gRPC server', () => {
  let dir: ReturnType<typeof tempDir>;
  let plugins: LoadedPlugins;
  let server: grpc.Server;
  let manager: StreamManager;
  let client: Client<typeof streaming.StreamingService>;

  beforeEach(async () => {
    dir = tempDir('streaming-grpc-');
    const address = join(dir.path, 'grpc.sock');
    plugins = await loadPlugins([metadataPlugin, streamingManagerPlugin, streamingGrpcPlugin], {
      root: join(dir.path, 'root'),
      state: join(dir.path, 'state'),
      address,
      sections: {},
      logger: nullLogger,
    });
    manager = plugins.ofType<StreamManager>('io.containerd.streaming.v1').get('manager')!;
    server = new grpc.Server();
    for (const s of plugins.ofType<{ services: Array<{ definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }> }>('io.containerd.grpc.v1').get('streaming')!.services) {
      server.addService(s.definition, s.implementation);
    }
    await new Promise<void>((res, rej) => server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    client = createClient(streaming.StreamingService, address, { namespace: 'default' });
  });

  afterEach(async () => {
    client.close();
    server.forceShutdown();
    await plugins.close();
    dir.remove();
  });

  /** Opens a stream as ctr 2.x does and waits for the server's ack. */
  async function open(id: string): Promise<DuplexCall<Any, Any>> {
    const call = client.stream();
    call.write(init(id));
    const ack = await call.read();
    expect(ack).toEqual({ typeUrl: 'google.protobuf.Empty', value: Buffer.alloc(0) });
    return call;
  }

  it('registers the stream before the ack; frames flow both ways; closing ends the call with OK', async () => {
    const call = await open('progress-1');
    const s: Stream = manager.get(ns, 'progress-1');
    await s.send({ typeUrl: 'x.One', value: Buffer.from([1]) });
    expect(await call.read()).toEqual({ typeUrl: 'x.One', value: Buffer.from([1]) });
    call.write({ typeUrl: 'x.Two', value: Buffer.from([2]) });
    expect(await s.recv()).toEqual({ typeUrl: 'x.Two', value: Buffer.from([2]) });
    await s.send({ typeUrl: 'x.Last', value: Buffer.alloc(0) });
    s.close();
    expect(await call.read()).toEqual({ typeUrl: 'x.Last', value: Buffer.alloc(0) });
    expect(await call.read()).toBeUndefined(); // OK status: the client reads EOF
    await s.done;
    expect(manager.size).toBe(0);
    expect(isNotFound(catchSync(() => manager.get(ns, 'progress-1')))).toBe(true);
  });

  it('a client half-close is the end of its data; the server may still send', async () => {
    const call = await open('import-1');
    const s = manager.get(ns, 'import-1');
    call.end();
    await expect(s.recv()).rejects.toBeInstanceOf(EndOfStreamError);
    await s.send({ typeUrl: 'x.After', value: Buffer.alloc(0) });
    s.close();
    expect(await call.read()).toEqual({ typeUrl: 'x.After', value: Buffer.alloc(0) });
    expect(await call.read()).toBeUndefined();
  });

  it('refuses a second stream of the same id in a namespace, and a first frame that is not a StreamInit', async () => {
    const first = await open('dup');
    const second = client.stream();
    second.write(init('dup'));
    expect(isAlreadyExists(await second.read().catch((e) => e))).toBe(true);
    const other = client.stream({ namespace: 'other' });
    other.write(init('dup'));
    expect(await other.read()).toEqual({ typeUrl: 'google.protobuf.Empty', value: Buffer.alloc(0) });
    const bad = client.stream();
    bad.write(windowUpdate(1));
    const err = await bad.read().catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('first message must be a StreamInit');
    first.cancel();
    other.cancel();
  });

  it('answers InvalidArgument to a StreamInit whose bytes do not decode', async () => {
    const call = client.stream();
    call.write({ typeUrl: 'containerd.services.streaming.v1.StreamInit', value: Buffer.from([0x0a, 0xff]) });
    const err = await call.read().catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toContain('decode Any of type "containerd.services.streaming.v1.StreamInit"');
  });

  it('a client that goes away closes the stream: reads fail Canceled and the id is free again', async () => {
    const call = await open('gone');
    const s = manager.get(ns, 'gone');
    const reading = s.recv();
    call.cancel();
    expect(isCanceled(await reading.catch((e) => e))).toBe(true);
    await s.done;
    expect(manager.size).toBe(0);
    const again = await open('gone');
    again.cancel();
  });

  it('receiveBytes grants 64 KiB windows and returns the bytes in order until the client half-closes', async () => {
    const payload = randomBytes(300 * 1024);
    const call = await open('import-2');
    const received = (async () => {
      const parts: Buffer[] = [];
      for await (const b of receiveBytes(manager.get(ns, 'import-2'))) parts.push(b);
      return Buffer.concat(parts);
    })();
    // A client that sends only within the credit it was given, as containerd's sender does.
    let credit = 0;
    let off = 0;
    while (off < payload.length) {
      while (credit === 0) {
        const f = (await call.read())!;
        expect(f.typeUrl).toBe('containerd.types.transfer.WindowUpdate');
        credit += WindowUpdate.decode(f.value).update;
      }
      const n = Math.min(MAX_DATA_FRAME, credit, payload.length - off);
      call.write(data(payload.subarray(off, off + n)));
      credit -= n;
      off += n;
    }
    call.end();
    expect((await received).equals(payload)).toBe(true);
    manager.get(ns, 'import-2').close();
  });

  it('sendBytes never exceeds the credit granted and sends frames of at most 32 KiB', async () => {
    const payload = randomBytes(200 * 1024 + 123);
    const call = await open('export-1');
    call.write(windowUpdate(WINDOW_SIZE)); // ctr's receiver grants its first window at once
    const s = manager.get(ns, 'export-1');
    const sending = sendBytes(s, (async function* () {
      yield payload.subarray(0, 100_000);
      yield payload.subarray(100_000);
    })()).then((n) => (s.close(), n));
    const parts: Buffer[] = [];
    let granted = WINDOW_SIZE;
    let received = 0;
    for (;;) {
      const f = await call.read();
      if (!f) break;
      const chunk = Data.decode(f.value).data;
      expect(chunk.length).toBeLessThanOrEqual(MAX_DATA_FRAME);
      received += chunk.length;
      expect(received).toBeLessThanOrEqual(granted);
      parts.push(Buffer.from(chunk));
      if (granted - received < WINDOW_SIZE) {
        call.write(windowUpdate(WINDOW_SIZE));
        granted += WINDOW_SIZE;
      }
    }
    expect(await sending).toBe(payload.length);
    expect(Buffer.concat(parts).equals(payload)).toBe(true);
  });
});

function catchSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}
