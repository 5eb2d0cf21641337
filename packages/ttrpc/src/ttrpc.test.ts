import { Socket, connect } from 'node:net';
import { join } from 'node:path';
import { shim, ttrpc } from '@berth/api';
import { GrpcCode, NotFoundError, isCanceled, isDeadlineExceeded, isNotFound, isNotImplemented, isResourceExhausted, isUnavailable, kindOf } from '@berth/errdefs';
import { tempDir } from '@berth/testing';
import { FRAME_HEADER_LENGTH, FrameDecoder, FrameType, MAX_MESSAGE_LENGTH, TtrpcCallContext, TtrpcClient, TtrpcServer, createTtrpcClient, createTtrpcService, encodeFrame } from './index';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw connection for sending hand-made frames and reading the replies. */
class RawPeer {
  private readonly decoder = new FrameDecoder(FrameType.Response, Number.MAX_SAFE_INTEGER);
  private readonly frames: Array<{ streamId: number; res: ttrpc.Response }> = [];
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (b: Buffer) => {
      for (const f of this.decoder.push(b)) if (f.kind === 'frame') this.frames.push({ streamId: f.header.streamId, res: ttrpc.Response.decode(f.payload) });
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => undefined);
  }

  static open(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = connect(path, () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  request(streamId: number, service: string, method: string, payload: Uint8Array = new Uint8Array(0)): void {
    const body = ttrpc.Request.encode({ service, method, payload: Buffer.from(payload), timeoutNano: 0, metadata: [] }).finish();
    this.socket.write(encodeFrame(streamId, FrameType.Request, body));
  }

  async next(): Promise<{ streamId: number; res: ttrpc.Response }> {
    while (this.frames.length === 0) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.frames.shift()!;
  }

  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }
}

describe('ttrpc client and server over a unix socket', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: TtrpcServer;
  let path: string;
  const clients: TtrpcClient[] = [];
  const seen: TtrpcCallContext[] = [];
  /** Calls whose id names a gate are held by the server until the test opens it. */
  const gates = new Map<string, { promise: Promise<void>; open: () => void }>();

  const connectClient = async () => {
    const c = await TtrpcClient.connect(path);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    dir = tempDir('ttrpc-');
    path = join(dir.path, 'ttrpc.sock');
    server = new TtrpcServer();
    server.register(
      createTtrpcService(shim.TaskService, {
        connect: async (req, ctx) => {
          seen.push(ctx);
          const gate = gates.get(req.id);
          if (gate) await gate.promise;
          if (req.id === 'missing') throw new NotFoundError(`task ${req.id}`);
          if (req.id === 'bug') throw new TypeError('cannot read properties of undefined');
          return { shimPid: 1, taskPid: 2, version: req.id };
        },
        wait: (_req, ctx) =>
          new Promise((_, reject) => {
            seen.push(ctx);
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
          }),
        // A response over the limit, to check the server refuses to send it.
        state: async () => ({ ...shim.StateResponse.fromPartial({}), bundle: 'x'.repeat(MAX_MESSAGE_LENGTH + 1) }),
      }),
    );
    await server.listen(path);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server.close(100);
    seen.length = 0;
    gates.clear();
    dir.remove();
  });

  it('round-trips a call with the namespace from containerd-namespace-ttrpc', async () => {
    const task = createTtrpcClient(shim.TaskService, await connectClient(), { namespace: 'ns1' });
    await expect(task.connect({ id: 'c1' })).resolves.toEqual({ shimPid: 1, taskPid: 2, version: 'c1' });
    expect(seen[0].namespace).toBe('ns1');
    expect(seen[0].metadata.get('containerd-namespace-ttrpc')).toEqual(['ns1']);
    await task.connect({ id: 'c2' }, { namespace: 'ns2', metadata: [{ key: 'k', value: 'v' }] });
    expect(seen[1].namespace).toBe('ns2');
    expect(seen[1].metadata.get('k')).toEqual(['v']);
  });

  it('multiplexes concurrent calls on one connection, answering each as it finishes', async () => {
    const task = createTtrpcClient(shim.TaskService, await connectClient());
    const ids = Array.from({ length: 40 }, (_, i) => `gate-${i}`);
    for (const id of ids) {
      let open!: () => void;
      const promise = new Promise<void>((r) => (open = r));
      gates.set(id, { promise, open });
    }
    const order: string[] = [];
    const calls = ids.map((id) => task.connect({ id }).then((r) => (order.push(r.version), r.version)));
    // All 40 are in flight on the one connection at the same time...
    while (seen.length < ids.length) await sleep(1);
    // ...and each is answered when its handler finishes, whatever the order they were sent in.
    for (const id of [...ids].reverse()) {
      gates.get(id)!.open();
      await calls[ids.indexOf(id)];
    }
    expect(await Promise.all(calls)).toEqual(ids);
    expect(order).toEqual([...ids].reverse());
  });

  it.each([
    ['missing', (e: unknown) => isNotFound(e), 'task missing: not found'],
    ['bug', (e: unknown) => kindOf(e) === 'unknown', 'cannot read properties of undefined'],
  ])('maps a handler error (%s) to a status and back', async (id, is, message) => {
    const task = createTtrpcClient(shim.TaskService, await connectClient());
    const err = await task.connect({ id }).catch((e) => e);
    expect(is(err)).toBe(true);
    expect(err.message).toBe(message);
  });

  it('answers UNIMPLEMENTED for a missing handler, method or service', async () => {
    const c = await connectClient();
    const task = createTtrpcClient(shim.TaskService, c);
    const missingHandler = await task.pids({ id: 'x' }).catch((e) => e);
    expect(isNotImplemented(missingHandler)).toBe(true);
    const missingMethod = await c.call('containerd.task.v2.Task', 'Nope', new Uint8Array()).catch((e) => e);
    expect([isNotImplemented(missingMethod), missingMethod.message]).toEqual([true, 'method Nope: not implemented']);
    const missingService = await c.call('x.Y', 'Z', new Uint8Array()).catch((e) => e);
    expect([isNotImplemented(missingService), missingService.message]).toEqual([true, 'service x.Y: not implemented']);
  });

  it('sends timeout_nano and cancels the handler when it passes; cancels on disconnect', async () => {
    const c = await connectClient();
    const task = createTtrpcClient(shim.TaskService, c);
    const err = await task.wait({ id: 'x', execId: '' }, { timeoutMs: 50 }).catch((e) => e);
    expect(isDeadlineExceeded(err)).toBe(true);
    for (let i = 0; i < 400 && !seen[0].signal.aborted; i++) await sleep(5);
    expect(isDeadlineExceeded(seen[0].signal.reason)).toBe(true);

    const pending = task.wait({ id: 'y', execId: '' }).catch((e) => e);
    while (seen.length < 2) await sleep(1);
    c.close();
    expect(isUnavailable(await pending)).toBe(true);
    for (let i = 0; i < 400 && !seen[1].signal.aborted; i++) await sleep(5);
    expect(isCanceled(seen[1].signal.reason)).toBe(true);
  });

  it('rejects oversized frames with RESOURCE_EXHAUSTED and keeps the connection', async () => {
    const raw = await RawPeer.open(path);
    const big = MAX_MESSAGE_LENGTH + 10;
    const header = Buffer.alloc(FRAME_HEADER_LENGTH);
    header.writeUInt32BE(big, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(FrameType.Request, 8);
    raw.socket.write(header);
    raw.socket.write(Buffer.alloc(big, 0x41));
    const refused = await raw.next();
    expect(refused.streamId).toBe(1);
    expect(refused.res.status).toEqual({ code: GrpcCode.RESOURCE_EXHAUSTED, message: `message length ${big} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`, details: [] });
    raw.request(3, 'containerd.task.v2.Task', 'Connect', shim.ConnectRequest.encode({ id: 'after' }).finish());
    const ok = await raw.next();
    expect(ok.streamId).toBe(3);
    expect(shim.ConnectResponse.decode(ok.res.payload).version).toBe('after');
    raw.socket.destroy();

    // The client refuses to send one, and a response over the limit is refused by the server.
    const task = createTtrpcClient(shim.TaskService, await connectClient());
    const tooBig = await task.connect({ id: 'x'.repeat(MAX_MESSAGE_LENGTH) }).catch((e) => e);
    expect(isResourceExhausted(tooBig)).toBe(true);
    const bigReply = await task.state({ id: 'x', execId: '' }).catch((e) => e);
    expect(isResourceExhausted(bigReply)).toBe(true);
    await expect(task.connect({ id: 'still' })).resolves.toMatchObject({ version: 'still' });
  });

  it('answers INVALID_ARGUMENT for an even stream id or an undecodable request', async () => {
    const raw = await RawPeer.open(path);
    raw.request(2, 'containerd.task.v2.Task', 'Connect');
    expect(await raw.next()).toMatchObject({ streamId: 2, res: { status: { code: GrpcCode.INVALID_ARGUMENT, message: 'StreamID must be odd for client initiated streams' } } });
    raw.socket.write(encodeFrame(5, FrameType.Request, Buffer.from([0xff, 0xff, 0xff])));
    expect(await raw.next()).toMatchObject({ streamId: 5, res: { status: { code: GrpcCode.INVALID_ARGUMENT } } });
    raw.request(7, 'containerd.task.v2.Task', 'Connect', Buffer.from([0x0a, 0x10]));
    expect(await raw.next()).toMatchObject({ streamId: 7, res: { status: { code: GrpcCode.INVALID_ARGUMENT } } });
    raw.socket.destroy();
  });

  it('closes only the connection that sent garbage', async () => {
    const task = createTtrpcClient(shim.TaskService, await connectClient());
    await task.connect({ id: 'before' });
    const raw = await RawPeer.open(path);
    raw.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await raw.waitClosed();
    const raw2 = await RawPeer.open(path);
    raw2.socket.write(encodeFrame(1, FrameType.Response, Buffer.alloc(0)));
    await raw2.waitClosed();
    await expect(task.connect({ id: 'after' })).resolves.toMatchObject({ version: 'after' });
    expect(server.connections).toBe(1);
  });

  it('closes gracefully: stops accepting, lets in-flight calls answer, then ends connections', async () => {
    const c = await connectClient();
    const task = createTtrpcClient(shim.TaskService, c);
    let open!: () => void;
    gates.set('held', { promise: new Promise<void>((r) => (open = r)), open });
    const inflight = task.connect({ id: 'held' });
    while (seen.length < 1) await sleep(1);
    let closed = false;
    const closing = server.close(5_000).then(() => (closed = true));
    await sleep(20);
    // Closing waits for the call in flight...
    expect(closed).toBe(false);
    open();
    await expect(inflight).resolves.toMatchObject({ version: 'held' });
    await closing;
    await sleep(10);
    expect(c.closed).toBe(true);
    await expect(TtrpcClient.connect(path)).rejects.toThrow();
  });
});
