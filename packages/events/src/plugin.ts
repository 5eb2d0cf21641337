import { definePlugin, token } from '@berth/plugin';
import { Exchange, ForwarderToken, PublisherToken, SubscriberToken } from './exchange';

export const EVENT_PLUGIN_TYPE = 'io.containerd.event.v1';

/** The exchange itself, for the events service (Publish of a ready-made Any, and shutdown). */
export const ExchangeToken = token<Exchange>(`${EVENT_PLUGIN_TYPE}/exchange`);

/** `io.containerd.event.v1 exchange`: the daemon's one event exchange. */
export const exchangePlugin = definePlugin<{ queue_limit: number }, Exchange>({
  type: EVENT_PLUGIN_TYPE,
  id: 'exchange',
  config: { defaults: () => ({ queue_limit: 1024 }) },
  init: (ctx) => {
    const exchange = new Exchange({ queueLimit: ctx.config.queue_limit, logger: ctx.logger });
    ctx.provide(ExchangeToken, exchange);
    ctx.provide(PublisherToken, exchange);
    ctx.provide(ForwarderToken, exchange);
    ctx.provide(SubscriberToken, exchange);
    // Subscribers still reading (in-process ones; remote streams end earlier, see plugins.ts) end here.
    ctx.onClose(() => exchange.close());
    return exchange;
  },
});
