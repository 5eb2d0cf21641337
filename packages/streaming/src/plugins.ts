import { Empty, packAny, typeUrlOf, unpackAnyAs } from '@berth/api';
import { streaming } from '@berth/api/transfer';
import { InvalidArgumentError } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, type GrpcServicePlugin, createService } from '@berth/grpc';
import { METADATA_PLUGIN_TYPE } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { STREAMING_PLUGIN_TYPE, StreamManager, StreamRegistryToken, type StreamRegistry } from './manager';
import { CallStream } from './stream';


/** `io.containerd.streaming.v1 manager`: the registry of client-opened streams. */
export const streamingManagerPlugin = definePlugin<undefined, StreamRegistry>({
  type: STREAMING_PLUGIN_TYPE,
  id: 'manager',
  requires: [METADATA_PLUGIN_TYPE],
  provides: [StreamRegistryToken],
  init: (ctx) => {
    const manager = new StreamManager();
    ctx.onClose(() => manager.closeAll());
    return manager;
  },
});

/**
 * `io.containerd.grpc.v1 streaming`: containerd.services.streaming.v1.Streaming/Stream. The first
 * frame must be a StreamInit naming the stream; once it is registered the client gets one empty
 * frame (google.protobuf.Empty) as the ack, and the call stays open until the daemon closes the
 * stream (the call then ends with OK) or the client goes away.
 */
export const streamingGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'streaming',
  requires: [STREAMING_PLUGIN_TYPE],
  init: (ctx) => {
    const manager = ctx.get(StreamRegistryToken);
    const service = createService(
      streaming.StreamingService,
      {
        stream: async function* (frames, call) {
          const incoming = frames[Symbol.asyncIterator]();
          const first = await incoming.next();
          if (first.done) return;
          // Matched exactly, as containerd does: a prefixed type URL is refused too.
          if (first.value.typeUrl !== typeUrlOf(streaming.StreamInit)) {
            throw new InvalidArgumentError(`first message must be a StreamInit, not ${JSON.stringify(first.value.typeUrl)}`);
          }
          const { id } = unpackAnyAs(first.value, streaming.StreamInit);
          const stream = new CallStream(incoming, call.signal);
          manager.register(call, id, stream);
          try {
            yield packAny(Empty, {});
            yield* stream.outgoing();
          } finally {
            stream.close();
          }
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
