import { Socket, connect } from 'node:net';
import { ttrpc } from '@berth/api';
import { NAMESPACE_HEADER_TTRPC } from '@berth/context';
import { BerthError, CanceledError, DeadlineExceededError, GrpcCode, ResourceExhaustedError, UnavailableError, fromGrpcStatus } from '@berth/errdefs';
import { FrameDecoder, FrameType, MAX_MESSAGE_LENGTH, encodeFrame, oversizedMessage } from './frame';
import { TtrpcMethodDescriptor, splitPath } from './service';

/** Per-call options. */
export interface TtrpcCallOptions {
  /** Sent as `containerd-namespace-ttrpc`; overrides the service client's namespace. */
  namespace?: string;
  /** More metadata to send. */
  metadata?: ReadonlyArray<{ key: string; value: string }>;
  /** Sent as the request's `timeout_nano`; the call also fails locally once it passes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Pending {
  resolve(payload: Buffer): void;
  reject(err: unknown): void;
}

/**
 * A ttrpc client on one connection. Calls are multiplexed by stream id (1, 3, 5...) and may run
 * concurrently; each resolves with its response payload or rejects with the errdefs error of the
 * status the server sent. When the connection ends, pending calls fail with UNAVAILABLE.
 */
export class TtrpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly decoder: FrameDecoder;
  private failure?: BerthError;

  constructor(
    private readonly socket: Socket,
    private readonly maxLength = MAX_MESSAGE_LENGTH,
  ) {
    this.decoder = new FrameDecoder(FrameType.Response, maxLength);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.fail(new UnavailableError(`ttrpc: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new UnavailableError('ttrpc: closed')));
  }

  /** Connects to a unix socket. */
  static connect(path: string, options: { maxMessageLength?: number } = {}): Promise<TtrpcClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new TtrpcClient(socket, options.maxMessageLength));
      });
      socket.once('error', reject);
    });
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.failure !== undefined;
  }

  /** Calls `service`/`method` with an encoded request; resolves with the encoded response. */
  call(service: string, method: string, payload: Uint8Array, options: TtrpcCallOptions = {}): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    if (options.signal?.aborted) return Promise.reject(new CanceledError('ttrpc call cancelled'));
    const metadata = [...(options.metadata ?? [])];
    if (options.namespace) metadata.push({ key: NAMESPACE_HEADER_TTRPC, value: options.namespace });
    const req = ttrpc.Request.encode({
      service,
      method,
      payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      timeoutNano: options.timeoutMs ? Math.round(options.timeoutMs * 1e6) : 0,
      metadata,
    }).finish();
    if (req.length > this.maxLength) return Promise.reject(new ResourceExhaustedError(oversizedMessage(req.length, this.maxLength)));
    const id = this.nextId;
    this.nextId += 2;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return new Promise<Buffer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => settle.reject(new CanceledError('ttrpc call cancelled'));
      const cleanup = () => {
        this.pending.delete(id);
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      const settle: Pending = {
        resolve: (p) => (cleanup(), resolve(p)),
        reject: (e) => (cleanup(), reject(e)),
      };
      this.pending.set(id, settle);
      if (options.timeoutMs) timer = setTimeout(() => settle.reject(new DeadlineExceededError('ttrpc call deadline exceeded')), options.timeoutMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.write(encodeFrame(id, FrameType.Request, req));
    });
  }

  /** Closes the connection; pending calls fail. */
  close(): void {
    this.fail(new UnavailableError('ttrpc: closed'));
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(new UnavailableError((err as Error).message, { cause: err }));
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      const call = this.pending.get(f.header.streamId);
      if (!call) continue;
      if (f.kind === 'oversized') {
        call.reject(new ResourceExhaustedError(oversizedMessage(f.header.length, this.maxLength)));
        continue;
      }
      let res: ttrpc.Response;
      try {
        res = ttrpc.Response.decode(f.payload);
      } catch (err) {
        call.reject(new UnavailableError(`ttrpc: failed to unmarshal response: ${(err as Error).message}`));
        continue;
      }
      if (res.status && res.status.code !== GrpcCode.OK) call.reject(fromGrpcStatus({ code: res.status.code, details: res.status.message }));
      else call.resolve(res.payload);
    }
  }

  private fail(err: BerthError): void {
    this.failure ??= err;
    for (const call of [...this.pending.values()]) call.reject(this.failure);
  }
}

type Req<M> = M extends TtrpcMethodDescriptor<infer R, any> ? R : never;
type Res<M> = M extends TtrpcMethodDescriptor<any, infer R> ? R : never;

/** A promise client for a ts-proto service definition over ttrpc (unary methods). */
export type TtrpcServiceClient<D> = {
  [K in keyof D]: D[K] extends { requestStream: false; responseStream: false } ? (req: Req<D[K]>, options?: TtrpcCallOptions) => Promise<Res<D[K]>> : never;
};

/** Creates a typed client for `definition` on a ttrpc connection, sending `namespace` on every call. */
export function createTtrpcClient<D extends Record<string, TtrpcMethodDescriptor<any, any>>>(definition: D, client: TtrpcClient, options: { namespace?: string } = {}): TtrpcServiceClient<D> {
  const out: Record<string, unknown> = {};
  for (const [key, desc] of Object.entries(definition)) {
    if (desc.requestStream || desc.responseStream) continue;
    const { service, method } = splitPath(desc.path);
    out[key] = async (req: unknown, o: TtrpcCallOptions = {}) => {
      const payload = await client.call(service, method, desc.requestSerialize(req), { ...o, namespace: o.namespace ?? options.namespace });
      return desc.responseDeserialize(payload);
    };
  }
  return out as TtrpcServiceClient<D>;
}
