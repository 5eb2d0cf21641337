import { Server as NetServer, Socket, createServer } from 'node:net';
import { ttrpc } from '@berth/api';
import { NAMESPACE_HEADER_TTRPC } from '@berth/context';
import { CanceledError, DeadlineExceededError, GrpcCode, isDeliberate, toGrpcStatus } from '@berth/errdefs';
import { Logger, nullLogger } from '@berth/log';
import { DecodedFrame, FrameDecoder, FrameType, MAX_MESSAGE_LENGTH, encodeFrame, oversizedMessage } from './frame';
import type { TtrpcCallContext, TtrpcMethod, TtrpcService } from './service';

export interface TtrpcServerOptions {
  logger?: Logger;
  /** Largest request and response payload, in bytes. Default 4 MiB (ttrpc's limit). */
  maxMessageLength?: number;
}

interface Status {
  code: number;
  message: string;
}

/** One client connection: its decoder and the calls it has in flight. */
class Connection {
  private readonly decoder: FrameDecoder;
  readonly inflight = new Map<number, AbortController>();
  private closing = false;
  private onIdle?: () => void;

  constructor(
    private readonly socket: Socket,
    private readonly server: TtrpcServer,
    private readonly logger: Logger,
    private readonly maxLength: number,
  ) {
    this.decoder = new FrameDecoder(FrameType.Request, maxLength);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => logger.debug('ttrpc connection error', { error: err.message }));
    socket.on('close', () => {
      for (const ac of this.inflight.values()) ac.abort(new CanceledError('ttrpc connection closed'));
      this.inflight.clear();
      this.server.forget(this);
      this.onIdle?.();
    });
  }

  private receive(chunk: Buffer): void {
    let frames: DecodedFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      // Not ttrpc, or out of sync: nothing further on this connection can be trusted.
      this.logger.warn('closing ttrpc connection after a protocol error', { error: (err as Error).message });
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (f.kind === 'oversized') {
        this.reply(f.header.streamId, { code: GrpcCode.RESOURCE_EXHAUSTED, message: oversizedMessage(f.header.length, this.maxLength) });
      } else {
        this.dispatch(f.header.streamId, f.payload);
      }
    }
  }

  private dispatch(streamId: number, payload: Buffer): void {
    if (streamId % 2 !== 1) {
      this.reply(streamId, { code: GrpcCode.INVALID_ARGUMENT, message: 'StreamID must be odd for client initiated streams' });
      return;
    }
    if (this.inflight.has(streamId)) {
      this.reply(streamId, { code: GrpcCode.INVALID_ARGUMENT, message: `stream ${streamId} is already in use` });
      return;
    }
    let req: ttrpc.Request;
    try {
      req = ttrpc.Request.decode(payload);
    } catch (err) {
      this.reply(streamId, { code: GrpcCode.INVALID_ARGUMENT, message: `failed to unmarshal request: ${(err as Error).message}` });
      return;
    }
    const method = this.server.lookup(req.service, req.method);
    if (typeof method === 'string') {
      this.reply(streamId, { code: GrpcCode.UNIMPLEMENTED, message: method });
      return;
    }
    const ac = new AbortController();
    this.inflight.set(streamId, ac);
    let timer: NodeJS.Timeout | undefined;
    if (req.timeoutNano > 0) {
      timer = setTimeout(() => ac.abort(new DeadlineExceededError('ttrpc call deadline exceeded')), Math.ceil(req.timeoutNano / 1e6));
      timer.unref();
    }
    const metadata = new Map<string, string[]>();
    for (const kv of req.metadata) metadata.set(kv.key, [...(metadata.get(kv.key) ?? []), kv.value]);
    const ctx: TtrpcCallContext = { namespace: metadata.get(NAMESPACE_HEADER_TTRPC)?.[0] || undefined, signal: ac.signal, metadata };
    const path = `/${req.service}/${req.method}`;
    Promise.resolve()
      .then(() => method.call(req.payload, ctx))
      .then(
        (res) => {
          if (res.length > this.maxLength) {
            this.reply(streamId, { code: GrpcCode.RESOURCE_EXHAUSTED, message: oversizedMessage(res.length, this.maxLength) });
          } else {
            this.reply(streamId, { code: GrpcCode.OK, message: '' }, res);
          }
        },
        (err) => {
          const status = toGrpcStatus(err);
          if (!isDeliberate(err)) {
            this.logger.error('unexpected error in ttrpc handler', { method: path, error: status.details, stack: (err as Error)?.stack });
          } else if (this.logger.enabled('debug')) {
            this.logger.debug('ttrpc call failed', { method: path, code: status.code, error: status.details });
          }
          this.reply(streamId, { code: status.code, message: status.details });
        },
      )
      .finally(() => {
        if (timer) clearTimeout(timer);
        this.inflight.delete(streamId);
        if (this.closing && this.inflight.size === 0) this.socket.end();
      });
  }

  private reply(streamId: number, status: Status, payload: Buffer = Buffer.alloc(0)): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const res = ttrpc.Response.encode({
      status: status.code === GrpcCode.OK ? undefined : { code: status.code, message: status.message, details: [] },
      payload,
    }).finish();
    this.socket.write(encodeFrame(streamId, FrameType.Response, res));
  }

  /** Ends the connection once its in-flight calls have answered. */
  drain(): Promise<void> {
    this.closing = true;
    if (this.socket.destroyed) return Promise.resolve();
    const closed = new Promise<void>((resolve) => (this.onIdle = resolve));
    if (this.inflight.size === 0) this.socket.end();
    return closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * A ttrpc server: registered services answer unary calls on any number of connections, each
 * call concurrently and in its own context (cancelled when the connection drops or the request's
 * timeout passes). Errors become google.rpc.Status through errdefs. An oversized request gets a
 * RESOURCE_EXHAUSTED answer; bytes that are not ttrpc close only the connection that sent them.
 */
export class TtrpcServer {
  private readonly services = new Map<string, TtrpcService>();
  private readonly conns = new Set<Connection>();
  private readonly logger: Logger;
  private readonly maxLength: number;
  private listener?: NetServer;

  constructor(options: TtrpcServerOptions = {}) {
    this.logger = options.logger ?? nullLogger;
    this.maxLength = options.maxMessageLength ?? MAX_MESSAGE_LENGTH;
  }

  /** Adds a service; a second service with the same name is refused. */
  register(service: TtrpcService): void {
    if (this.services.has(service.name)) throw new Error(`ttrpc service ${service.name} is already registered`);
    this.services.set(service.name, service);
  }

  /** Names of the registered services. */
  get serviceNames(): string[] {
    return [...this.services.keys()];
  }

  /** Number of open client connections. */
  get connections(): number {
    return this.conns.size;
  }

  /** @internal Finds a method, or returns the UNIMPLEMENTED message. */
  lookup(service: string, method: string): TtrpcMethod | string {
    const svc = this.services.get(service);
    if (!svc) return `service ${service}`;
    return svc.methods.get(method) ?? `method ${method}`;
  }

  /** @internal */
  forget(conn: Connection): void {
    this.conns.delete(conn);
  }

  /** Serves an accepted connection (from `listen`, or any duplex socket in tests). */
  handle(socket: Socket): void {
    this.conns.add(new Connection(socket, this, this.logger, this.maxLength));
  }

  /** Listens on a unix socket path (which must not exist). */
  listen(path: string): Promise<void> {
    if (this.listener) return Promise.reject(new Error('ttrpc server is already listening'));
    const listener = createServer((socket) => this.handle(socket));
    this.listener = listener;
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(path, () => {
        listener.off('error', reject);
        resolve();
      });
    });
  }

  /**
   * Stops accepting connections, lets in-flight calls answer (up to `graceMs`, then drops the
   * connections) and closes every connection.
   */
  async close(graceMs = 10_000): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    const stopped = listener ? new Promise<void>((resolve) => listener.close(() => resolve())) : Promise.resolve();
    const drained = Promise.all([...this.conns].map((c) => c.drain()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn('ttrpc calls did not finish in time; closing their connections', { ms: graceMs });
        for (const c of this.conns) c.destroy();
        resolve();
      }, graceMs);
    });
    await Promise.race([drained, timeout]);
    clearTimeout(timer);
    await stopped;
  }
}
