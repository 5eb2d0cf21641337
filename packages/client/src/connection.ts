import * as grpc from '@grpc/grpc-js';
import { CanceledError, UnavailableError } from '@berth/errdefs';
import { type CallOptions, type Client, type MethodDescriptor, createClient, unixChannel } from '@berth/grpc';

type Definition = Record<string, MethodDescriptor<any, any>>;

/**
 * One HTTP/2 connection to a daemon's socket, shared by every service client made on it (and by
 * every namespace and lease view of a BerthClient). Service clients are made on first use.
 */
export class Connection {
  private readonly clients = new Map<Definition, Client<Definition>>();
  private closed = false;
  private readonly closing = new AbortController();

  private constructor(
    readonly address: string,
    private readonly channel: grpc.Channel,
  ) {}

  /**
   * Connects to a unix socket and waits until the channel is ready, at most `timeoutMs`.
   *
   * @throws UnavailableError when the socket does not answer in time (missing, refused).
   */
  static async open(address: string, timeoutMs: number): Promise<Connection> {
    const channel = unixChannel(address);
    const deadline = Date.now() + timeoutMs;
    let state = channel.getConnectivityState(true);
    while (state !== grpc.connectivityState.READY) {
      if (state === grpc.connectivityState.SHUTDOWN || Date.now() >= deadline) {
        channel.close();
        throw new UnavailableError(`connection to ${address} not ready after ${timeoutMs} ms (${grpc.connectivityState[state]})`);
      }
      const from = state;
      await new Promise<void>((resolve) => channel.watchConnectivityState(from, deadline, () => resolve()));
      state = channel.getConnectivityState(true);
    }
    return new Connection(address, channel);
  }

  /** The client of one service on this connection. */
  service<D extends Definition>(definition: D): Client<D> {
    if (this.closed) throw new UnavailableError(`connection to ${this.address} is closed`);
    let c = this.clients.get(definition);
    if (!c) {
      c = createClient(definition, this.address, { channelOverride: this.channel }) as Client<Definition>;
      this.clients.set(definition, c);
    }
    return c as unknown as Client<D>;
  }

  /** Aborted when the connection closes: long calls (event subscriptions) end with it. */
  get closeSignal(): AbortSignal {
    return this.closing.signal;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    this.channel.close();
  }
}

/** The scope of a call: namespace, lease, cancellation and deadline. */
export interface Scope {
  namespace: string;
  lease?: string;
}

/** Per-call options a caller may add: cancellation and a timeout in milliseconds. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** Milliseconds until the call fails with DeadlineExceeded. */
  timeout?: number;
}

/**
 * The grpc call options of a scope and request options.
 *
 * @throws CanceledError when the signal has already aborted (@berth/grpc's client listens for
 *   the abort event, which a signal fires once).
 */
export function callOptions(scope: Scope, o: RequestOptions = {}): CallOptions {
  if (o.signal?.aborted) throw new CanceledError('call cancelled before it started');
  return {
    namespace: scope.namespace,
    ...(scope.lease ? { lease: scope.lease } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.timeout !== undefined ? { deadline: new Date(Date.now() + o.timeout) } : {}),
  };
}
