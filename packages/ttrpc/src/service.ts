import type { Context } from '@berth/context';
import { InvalidArgumentError, NotImplementedError } from '@berth/errdefs';

/**
 * A method descriptor as ts-proto's generated service definitions declare it (the same objects
 * the gRPC side uses). ttrpc addresses a method by service and method name, both taken from
 * `path` (`/containerd.services.events.ttrpc.v1.Events/Forward`).
 */
export interface TtrpcMethodDescriptor<Req, Res> {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(value: Req): Buffer;
  requestDeserialize(value: Buffer): Req;
  responseSerialize(value: Res): Buffer;
  responseDeserialize(value: Buffer): Res;
}

type Req<M> = M extends TtrpcMethodDescriptor<infer R, any> ? R : never;
type Res<M> = M extends TtrpcMethodDescriptor<any, infer R> ? R : never;

/** The context of a ttrpc call: namespace from `containerd-namespace-ttrpc`, and its metadata. */
export interface TtrpcCallContext extends Context {
  /** Request metadata; a key may carry several values. */
  readonly metadata: ReadonlyMap<string, readonly string[]>;
}

/** A unary handler; errors are thrown (errdefs kinds) and become a google.rpc.Status. */
export type TtrpcHandler<M> = (req: Req<M>, ctx: TtrpcCallContext) => Promise<Res<M>>;

/** Handlers for (some of) a service's unary methods; a missing one answers UNIMPLEMENTED. */
export type TtrpcHandlers<D> = { [K in keyof D]?: TtrpcHandler<D[K]> };

/** One method as the server dispatches it: bytes in, bytes out. */
export interface TtrpcMethod {
  readonly name: string;
  call(payload: Buffer, ctx: TtrpcCallContext): Promise<Buffer>;
}

/** A service ready to register with a TtrpcServer. */
export interface TtrpcService {
  /** The full service name, e.g. `containerd.services.events.ttrpc.v1.Events`. */
  readonly name: string;
  readonly methods: ReadonlyMap<string, TtrpcMethod>;
}

/** What a plugin that serves on the daemon's ttrpc socket provides (besides its gRPC services). */
export interface TtrpcServicePlugin {
  readonly ttrpcServices: readonly TtrpcService[];
}

/** Splits a descriptor path into ttrpc's service and method names. */
export function splitPath(path: string): { service: string; method: string } {
  const slash = path.lastIndexOf('/');
  if (!path.startsWith('/') || slash <= 0) throw new Error(`not a method path: ${path}`);
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

/**
 * Turns Berth handlers for a ts-proto service definition into a ttrpc service. Streaming methods
 * are not part of ttrpc as containerd 1.6 speaks it and are left out.
 */
export function createTtrpcService<D extends Record<string, TtrpcMethodDescriptor<any, any>>>(definition: D, handlers: TtrpcHandlers<D>): TtrpcService {
  let name: string | undefined;
  const methods = new Map<string, TtrpcMethod>();
  for (const [key, desc] of Object.entries(definition)) {
    const { service, method } = splitPath(desc.path);
    name ??= service;
    if (desc.requestStream || desc.responseStream) continue;
    const handler = (handlers as Record<string, TtrpcHandler<any> | undefined>)[key];
    methods.set(method, {
      name: method,
      call: async (payload, ctx) => {
        if (!handler) throw new NotImplementedError(`${method} is not implemented by berthd`);
        let req: unknown;
        try {
          req = desc.requestDeserialize(payload);
        } catch (cause) {
          throw new InvalidArgumentError(`failed to unmarshal ${method} request: ${(cause as Error)?.message ?? cause}`, { cause });
        }
        return desc.responseSerialize(await handler(req, ctx));
      },
    });
  }
  if (name === undefined) throw new Error('empty service definition');
  return { name, methods };
}
