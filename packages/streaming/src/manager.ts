import { type Context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '@berth/errdefs';
import { token } from '@berth/plugin';
import type { Stream } from './stream';

export const STREAMING_PLUGIN_TYPE = 'io.containerd.streaming.v1';

/** The streams clients have opened, by namespace and id: what the Streaming API and transfers share. */
export interface StreamRegistry {
  /** Registers a stream until it ends; AlreadyExists when the namespace has a stream of that id. */
  register(ctx: Context, id: string, stream: Stream): void;
  /** Returns a registered stream; NotFound `stream "<id>": not found` when there is none. */
  get(ctx: Context, id: string): Stream;
  /** Closes every stream (daemon shutdown). */
  closeAll(): void;
}

/**
 * The streams clients have opened, by namespace and id (containerd's streaming manager). A
 * stream is registered by the Streaming API when a client opens it, and removed when it ends;
 * a Transfer request finds its progress, credential and data streams here. A stream lives as
 * long as the call that opened it (containerd also ties it to the call's lease, which ends
 * no earlier for the clients that exist: they delete the lease after the transfer).
 */
export class StreamManager implements StreamRegistry {
  private readonly streams = new Map<string, { stream: Stream }>();

  /** Registers a stream; AlreadyExists when the namespace has a stream of that id. */
  register(ctx: Context, id: string, stream: Stream): void {
    const key = this.key(ctx, id);
    if (this.streams.has(key)) throw new AlreadyExistsError(`stream ${JSON.stringify(id)}`);
    this.streams.set(key, { stream });
    void stream.done.then(() => {
      if (this.streams.get(key)?.stream === stream) this.streams.delete(key);
    });
  }

  /** Returns a registered stream; NotFound `stream "<id>": not found` when there is none. */
  get(ctx: Context, id: string): Stream {
    const found = this.streams.get(this.key(ctx, id));
    if (!found) throw new NotFoundError(`stream ${JSON.stringify(id)}`);
    return found.stream;
  }

  /** How many streams are open (for introspection and tests). */
  get size(): number {
    return this.streams.size;
  }

  /** Closes every stream (daemon shutdown). */
  closeAll(): void {
    for (const { stream } of this.streams.values()) stream.close();
  }

  private key(ctx: Context, id: string): string {
    const ns = namespaceRequired(ctx);
    if (id === '') throw new InvalidArgumentError('stream id must not be empty');
    return `${ns}\u0000${id}`;
  }
}

export const StreamRegistryToken = token<StreamRegistry>(`${STREAMING_PLUGIN_TYPE}/manager`);
