import * as grpc from '@grpc/grpc-js';
import { Context, LEASE_HEADER, NAMESPACE_HEADER } from '@berth/context';
import { CanceledError, DeadlineExceededError, NotImplementedError, isDeliberate, toGrpcStatus } from '@berth/errdefs';
import { Logger, withLogFields } from '@berth/log';
import { token } from '@berth/plugin';

/** The plugin type of every gRPC API plugin. */
export const GRPC_PLUGIN_TYPE = 'io.containerd.grpc.v1';

/** A method descriptor as ts-proto's grpc-js output declares it. */
export interface MethodDescriptor<Req, Res> {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(value: Req): Buffer;
  requestDeserialize(value: Buffer): Req;
  responseSerialize(value: Res): Buffer;
  responseDeserialize(value: Buffer): Res;
}

type Req<M> = M extends MethodDescriptor<infer R, any> ? R : never;
type Res<M> = M extends MethodDescriptor<any, infer R> ? R : never;

/**
 * A method handler in Berth's style: unary methods return a promise, server streams are async
 * iterables (generators), client and bidi streams receive the requests as an async iterable.
 * Errors are thrown, and mapped to a status in one place.
 */
export type Handler<M> = M extends { requestStream: false; responseStream: false }
  ? (req: Req<M>, ctx: CallContext) => Promise<Res<M>>
  : M extends { requestStream: false; responseStream: true }
    ? (req: Req<M>, ctx: CallContext) => AsyncIterable<Res<M>>
    : M extends { requestStream: true; responseStream: false }
      ? (reqs: AsyncIterable<Req<M>>, ctx: CallContext) => Promise<Res<M>>
      : (reqs: AsyncIterable<Req<M>>, ctx: CallContext) => AsyncIterable<Res<M>>;

/** Handlers for (some of) a service's methods; a missing one answers UNIMPLEMENTED. */
export type Handlers<D> = { [K in keyof D]?: Handler<D[K]> };

/** The call context: Berth's operation context plus the raw metadata. */
export interface CallContext extends Context {
  readonly metadata: grpc.Metadata;
}

/** A service ready to be added to the daemon's gRPC server. */
export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

/**
 * Holds every reply of a unary or client-streaming method until `barrier` resolves: berthd
 * awaits the metadata database's group sync there, so that no write is acknowledged before it is
 * on disk. A barrier that returns nothing (nothing is waiting to be synced) lets the reply go at
 * once, without a promise per call. Server and bidirectional streams are left as they are (their
 * handlers await what they acknowledge). A barrier that fails turns the reply into its error.
 */
export function withReplyBarrier(svc: GrpcService, barrier: () => Promise<void> | void, logger: Logger): GrpcService {
  const implementation: grpc.UntypedServiceImplementation = { ...svc.implementation };
  for (const [name, method] of Object.entries(svc.definition)) {
    if (method.responseStream) continue;
    const inner = svc.implementation[name] as (c: AnyServerCall, cb: grpc.sendUnaryData<unknown>) => void;
    implementation[name] = (c: AnyServerCall, cb: grpc.sendUnaryData<unknown>) =>
      inner(c, (err, value, trailer, flags) => {
        const held = barrier();
        if (!held) return cb(err, value, trailer, flags);
        held.then(
          () => cb(err, value, trailer, flags),
          (e: unknown) => cb(toServiceError(e, method.path, first(c.metadata, NAMESPACE_HEADER) || undefined, logger)),
        );
      });
  }
  return { definition: svc.definition, implementation };
}

/** What every `io.containerd.grpc.v1` plugin instance provides. */
export interface GrpcServicePlugin {
  readonly services: readonly GrpcService[];
}

export const GrpcServiceToken = token<GrpcServicePlugin>(`${GRPC_PLUGIN_TYPE}/service`);

type AnyServerCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;

function first(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return v === undefined ? undefined : String(v);
}

/**
 * Builds the operation context of a call: namespace and lease headers, and a signal that aborts
 * when the client cancels or the deadline passes. `done` detaches it once the call has answered,
 * so a finished call never pays for an abort. The AbortController, and the listener for the
 * client's cancel, are made only when a handler asks for the signal: most calls never do (the
 * controller was 4% of a Get's cost, the listener's add and remove 1% of a small Read's).
 * `aborted` answers the same question without making them; a cancel or deadline that came
 * before the signal was asked for shows on it at once.
 */
export function callContext(call: AnyServerCall): { ctx: CallContext; aborted(): boolean; done(): void } {
  let ac: AbortController | undefined;
  let reason: Error | undefined;
  let onCancel: (() => void) | undefined;
  let finished = false;
  const emitter = call as NodeJS.EventEmitter;
  let timer: NodeJS.Timeout | undefined;
  const deadline = call.getDeadline?.();
  if (deadline instanceof Date || (typeof deadline === 'number' && Number.isFinite(deadline))) {
    const ms = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now();
    if (ms < 2 ** 31) {
      timer = setTimeout(() => {
        const err = new DeadlineExceededError('call deadline exceeded');
        if (ac) ac.abort(err);
        else reason ??= err;
      }, Math.max(0, ms));
      timer.unref();
    }
  }
  const md = call.metadata;
  const ctx: CallContext = {
    namespace: first(md, NAMESPACE_HEADER) || undefined,
    lease: first(md, LEASE_HEADER) || undefined,
    metadata: md,
    get signal() {
      if (!ac) {
        const controller = (ac = new AbortController());
        if (reason) controller.abort(reason);
        else if (call.cancelled && !finished) controller.abort(cancelledByClient());
        else {
          onCancel = () => controller.abort(cancelledByClient());
          emitter.once('cancelled', onCancel);
        }
      }
      return ac.signal;
    },
  };
  return {
    ctx,
    aborted: () => (ac ? ac.signal.aborted : reason !== undefined || (call.cancelled && !finished)),
    done: () => {
      finished = true;
      if (onCancel) emitter.off('cancelled', onCancel);
      if (timer) clearTimeout(timer);
    },
  };
}

const cancelledByClient = () => new CanceledError('call cancelled by the client');

function toServiceError(err: unknown, path: string, namespace: string | undefined, logger: Logger): Partial<grpc.StatusObject> {
  const status = toGrpcStatus(err);
  if (!isDeliberate(err)) {
    logger.error('unexpected error in gRPC handler', { method: path, namespace, error: status.details, stack: (err as Error)?.stack });
  } else if (logger.enabled('debug')) {
    logger.debug('gRPC call failed', { method: path, namespace, code: status.code, error: status.details });
  }
  return { code: status.code, details: status.details, metadata: new grpc.Metadata() };
}

/** Adapts a readable server stream to an async iterable of requests. */
function requestsOf<T>(call: grpc.ServerReadableStream<T, unknown> | grpc.ServerDuplexStream<T, unknown>): AsyncIterable<T> {
  // The default async iterator destroys the stream when iteration ends, which would drop the
  // reply and status of a call whose client half-closed first (ctr does); keep it open.
  return (call as unknown as { iterator(o: { destroyOnReturn: boolean }): AsyncIterableIterator<T> }).iterator({ destroyOnReturn: false });
}

/**
 * Writes responses with backpressure; stops when the client goes away. `aborted` is checked per
 * message (cheap); the signal is only asked for while waiting for a drain.
 */
async function writeAll<T>(call: grpc.ServerWritableStream<unknown, T> | grpc.ServerDuplexStream<unknown, T>, source: AsyncIterable<T>, aborted: () => boolean, ctx: CallContext): Promise<void> {
  for await (const msg of source) {
    if (aborted()) return;
    if (!call.write(msg)) {
      const signal = ctx.signal;
      if (signal.aborted) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          call.off('drain', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        call.on('drain', done);
        signal.addEventListener('abort', done);
      });
    }
  }
}

/**
 * Turns Berth handlers into a grpc-js service implementation: every method gets the call
 * context, every error becomes a status through the errdefs mapping (unexpected errors are logged
 * with their stack), and methods without a handler answer UNIMPLEMENTED.
 */
export function createService<D extends Record<string, MethodDescriptor<any, any>>>(definition: D, handlers: Handlers<D>, logger: Logger): GrpcService {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = (handlers as Record<string, ((...args: any[]) => any) | undefined>)[name];
    const path = method.path;
    const fail = (err: unknown, c: AnyServerCall) => toServiceError(err, path, first(c.metadata, NAMESPACE_HEADER) || undefined, logger);
    // At trace level, every call is logged with its duration when it answers.
    const begin = (c: AnyServerCall) => {
      const cc = callContext(c);
      if (!logger.enabled('trace')) return cc;
      const t0 = performance.now();
      return { ctx: cc.ctx, aborted: cc.aborted, done: () => (cc.done(), logger.trace('gRPC call', { method: path, namespace: cc.ctx.namespace, ms: Number((performance.now() - t0).toFixed(3)) })) };
    };
    const missing = () => new NotImplementedError(`${path.slice(path.lastIndexOf('/') + 1)} is not implemented by berthd`);
    if (!method.requestStream && !method.responseStream) {
      implementation[name] = (c: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (!handler) return cb(fail(missing(), c));
        const { ctx, done } = begin(c);
        let result: Promise<unknown>;
        try {
          result = handler(c.request, ctx);
        } catch (err) {
          done();
          return cb(fail(err, c));
        }
        result.then(
          (res) => (done(), cb(null, res)),
          (err) => (done(), cb(fail(err, c))),
        );
      };
    } else if (method.requestStream && !method.responseStream) {
      implementation[name] = (c: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (!handler) return cb(fail(missing(), c));
        const { ctx, done } = begin(c);
        Promise.resolve()
          .then(() => handler(requestsOf(c), ctx))
          .then(
            (res) => (done(), cb(null, res)),
            (err) => (done(), cb(fail(err, c))),
          );
      };
    } else {
      // Server and bidirectional streams: the handler yields the replies.
      implementation[name] = (c: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
        if (!handler) return void c.emit('error', fail(missing(), c));
        const { ctx, aborted, done } = begin(c);
        Promise.resolve()
          .then(() => writeAll(c, handler(method.requestStream ? requestsOf(c as grpc.ServerDuplexStream<unknown, unknown>) : (c as grpc.ServerWritableStream<unknown, unknown>).request, ctx), aborted, ctx))
          .then(
            () => (done(), c.end()),
            (err) => (done(), c.emit('error', fail(err, c))),
          );
      };
    }
  }
  // A contextual logger gets the call's method and namespace on every line written while the
  // call is handled, by the handler and by whatever it calls.
  if (logger.contextual) {
    for (const [name, method] of Object.entries(definition)) {
      const inner = implementation[name] as (c: AnyServerCall, cb?: grpc.sendUnaryData<unknown>) => void;
      implementation[name] = (c: AnyServerCall, cb?: grpc.sendUnaryData<unknown>) =>
        withLogFields({ method: method.path, namespace: first(c.metadata, NAMESPACE_HEADER) || undefined }, () => inner(c, cb));
    }
  }
  return { definition: definition as unknown as grpc.ServiceDefinition, implementation };
}
