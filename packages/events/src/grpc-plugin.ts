import { eventsService, ttrpcEvents } from '@berth/api';
import type { Context } from '@berth/context';
import { InvalidArgumentError, UnknownError } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { definePlugin } from '@berth/plugin';
import { TtrpcServicePlugin, createTtrpcService } from '@berth/ttrpc';
import type { Envelope } from '@berth/api/events';
import { encodeEnvelopeOnce } from './encode-once';
import type { Subscription } from './exchange';
import { EVENT_PLUGIN_TYPE, ExchangeToken } from './plugin';

/** containerd's Events service, with Subscribe's replies encoded once per event. */
const EventsServiceEncodeOnce = {
  ...eventsService.EventsService,
  subscribe: { ...eventsService.EventsService.subscribe, responseSerialize: encodeEnvelopeOnce },
};

/** The events API plugin: gRPC Publish/Forward/Subscribe and ttrpc Forward. */
export interface EventsApiPlugin extends GrpcServicePlugin, TtrpcServicePlugin {
  /**
   * Ends every Subscribe stream. The daemon calls it once it has stopped accepting calls, so that
   * subscriptions, which only end when their client leaves, do not hold up shutdown.
   */
  drain(): void;
}

/**
 * `io.containerd.grpc.v1 events`: containerd.services.events.v1.Events on the gRPC socket and,
 * as in containerd, containerd.services.events.ttrpc.v1.Events/Forward on the ttrpc socket
 * (where shims send task events).
 */
export const eventsGrpcPlugin = definePlugin<undefined, EventsApiPlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'events',
  requires: [EVENT_PLUGIN_TYPE],
  init: (ctx) => {
    const exchange = ctx.get(ExchangeToken);
    const streams = new Set<Subscription>();
    let draining = false;

    const forward = async (call: Context, envelope: Envelope | undefined) => {
      // containerd dereferences a missing envelope and crashes; refuse it instead.
      if (!envelope) throw new InvalidArgumentError('envelope must be set on forwarded event');
      await exchange.forward(call, envelope);
      return {};
    };

    const grpcService = createService(
      EventsServiceEncodeOnce,
      {
        publish: async (req, call) => {
          await exchange.publishAny(call, req.topic, req.event);
          return {};
        },
        forward: (req, call) => forward(call, req.envelope),
        subscribe: async function* (req, call) {
          let sub: Subscription;
          try {
            sub = exchange.subscribe(call, req.filters);
          } catch (err) {
            // containerd answers a bad filter with UNKNOWN and this wording.
            throw new UnknownError(`subscription error: ${(err as Error).message}`, { cause: err });
          }
          if (draining) sub.close();
          streams.add(sub);
          try {
            yield* sub;
          } finally {
            streams.delete(sub);
            sub.close();
          }
        },
      },
      ctx.logger,
    );
    const ttrpcService = createTtrpcService(ttrpcEvents.EventsService, {
      forward: (req, call) => forward(call, req.envelope),
    });

    const drain = () => {
      draining = true;
      for (const sub of [...streams]) sub.close();
    };
    ctx.onClose(drain);
    return { services: [grpcService], ttrpcServices: [ttrpcService], drain };
  },
});
