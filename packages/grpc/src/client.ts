import * as grpc from '@grpc/grpc-js';
import { LEASE_HEADER, NAMESPACE_HEADER } from '@berth/context';
import { BerthError, fromGrpcStatus } from '@berth/errdefs';
import type { MethodDescriptor } from './service';

type Req<M> = M extends MethodDescriptor<infer R, any> ? R : never;
type Res<M> = M extends MethodDescriptor<any, infer R> ? R : never;

/** Per-call options. */
export interface CallOptions {
  /** Overrides the client's namespace for this call. */
  namespace?: string;
  lease?: string;
  signal?: AbortSignal;
  deadline?: Date;
}

/** A bidirectional call: write requests, read replies one at a time or as an iterable. */
export interface DuplexCall<Q, R> extends AsyncIterable<R> {
  write(req: Q): void;
  /** Half-closes the request side. */
  end(): void;
  /** Reads the next reply; resolves undefined when the server ended the stream. */
  read(): Promise<R | undefined>;
  cancel(): void;
}

/** A promise and async-iterator client for one service definition; errors are Berth errors. */
export type Client<D> = {
  [K in keyof D]: D[K] extends { requestStream: false; responseStream: false }
    ? (req: Req<D[K]>, options?: CallOptions) => Promise<Res<D[K]>>
    : D[K] extends { requestStream: false; responseStream: true }
      ? (req: Req<D[K]>, options?: CallOptions) => AsyncIterable<Res<D[K]>>
      : D[K] extends { requestStream: true; responseStream: false }
        ? (reqs: Iterable<Req<D[K]>> | AsyncIterable<Req<D[K]>>, options?: CallOptions) => Promise<Res<D[K]>>
        : (options?: CallOptions) => DuplexCall<Req<D[K]>, Res<D[K]>>;
} & { close(): void };

export interface ClientOptions {
  /** The namespace header sent on every call (ctr's `-n`); none when absent. */
  namespace?: string;
  /** An existing channel to share (one HTTP/2 connection for several services). */
  channelOverride?: grpc.Channel;
}

/** Maps a grpc-js error to a Berth error (through errdefs' reverse mapping). */
export function clientError(err: unknown): unknown {
  if (err instanceof BerthError) return err;
  const e = err as { code?: number; details?: string };
  return typeof e?.code === 'number' ? fromGrpcStatus({ code: e.code, details: e.details ?? '' }) : err;
}

/** Creates a gRPC channel to a unix socket, with containerd's 16 MiB message limits. */
export function unixChannel(address: string): grpc.Channel {
  return new grpc.Channel(`unix:${address}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
  });
}

/** Creates a client for a service on a unix socket. */
export function createClient<D extends Record<string, MethodDescriptor<any, any>>>(definition: D, address: string, options: ClientOptions = {}): Client<D> {
  const Ctor = grpc.makeGenericClientConstructor(definition as unknown as grpc.ServiceDefinition, 'berth');
  const raw = new Ctor(`unix:${address}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    ...(options.channelOverride ? { channelOverride: options.channelOverride } : {}),
  }) as unknown as Record<string, (...args: any[]) => any> & grpc.Client;

  const metadataFor = (o: CallOptions = {}) => {
    const md = new grpc.Metadata();
    const ns = o.namespace ?? options.namespace;
    if (ns) md.set(NAMESPACE_HEADER, ns);
    if (o.lease) md.set(LEASE_HEADER, o.lease);
    return md;
  };
  const callOpts = (o: CallOptions = {}): grpc.CallOptions => (o.deadline ? { deadline: o.deadline } : {});
  const onAbort = (signal: AbortSignal | undefined, call: { cancel(): void }) => signal?.addEventListener('abort', () => call.cancel(), { once: true });

  const client: Record<string, unknown> = { close: () => raw.close() };
  for (const [name, m] of Object.entries(definition)) {
    const fn = raw[name].bind(raw);
    if (!m.requestStream && !m.responseStream) {
      client[name] = (req: unknown, o?: CallOptions) =>
        new Promise((resolve, reject) => {
          const call = fn(req, metadataFor(o), callOpts(o), (err: unknown, res: unknown) => (err ? reject(clientError(err)) : resolve(res)));
          onAbort(o?.signal, call);
        });
    } else if (!m.requestStream && m.responseStream) {
      client[name] = (req: unknown, o?: CallOptions) => ({
        async *[Symbol.asyncIterator]() {
          const call = fn(req, metadataFor(o), callOpts(o)) as grpc.ClientReadableStream<unknown>;
          onAbort(o?.signal, call);
          try {
            for await (const msg of call) yield msg;
          } catch (err) {
            throw clientError(err);
          }
        },
      });
    } else if (m.requestStream && !m.responseStream) {
      client[name] = (reqs: Iterable<unknown> | AsyncIterable<unknown>, o?: CallOptions) =>
        new Promise((resolve, reject) => {
          const call = fn(metadataFor(o), callOpts(o), (err: unknown, res: unknown) => (err ? reject(clientError(err)) : resolve(res))) as grpc.ClientWritableStream<unknown>;
          onAbort(o?.signal, call);
          (async () => {
            for await (const r of reqs) if (!call.write(r)) await new Promise((d) => call.once('drain', d));
            call.end();
          })().catch((err) => {
            call.cancel();
            reject(err);
          });
        });
    } else {
      client[name] = (o?: CallOptions) => duplex(fn(metadataFor(o), callOpts(o)) as grpc.ClientDuplexStream<unknown, unknown>, o?.signal);
    }
  }
  return client as Client<D>;
}

function duplex<Q, R>(call: grpc.ClientDuplexStream<Q, R>, signal?: AbortSignal): DuplexCall<Q, R> {
  signal?.addEventListener('abort', () => call.cancel(), { once: true });
  const queue: R[] = [];
  const waiters: Array<{ resolve: (r: R | undefined) => void; reject: (e: unknown) => void }> = [];
  let ended = false;
  let failure: unknown;
  call.on('data', (msg: R) => {
    const w = waiters.shift();
    if (w) w.resolve(msg);
    else queue.push(msg);
  });
  call.on('end', () => {
    ended = true;
    for (const w of waiters.splice(0)) w.resolve(undefined);
  });
  call.on('error', (err) => {
    failure = clientError(err);
    for (const w of waiters.splice(0)) w.reject(failure);
  });
  const read = (): Promise<R | undefined> => {
    if (queue.length > 0) return Promise.resolve(queue.shift());
    if (failure) return Promise.reject(failure);
    if (ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  };
  return {
    write: (req) => void call.write(req),
    end: () => call.end(),
    cancel: () => call.cancel(),
    read,
    async *[Symbol.asyncIterator]() {
      for (let msg = await read(); msg !== undefined; msg = await read()) yield msg;
    },
  };
}
