import { PluginTypes, SubscriberToken, context, definePlugin } from '@berth/plugin-sdk';

interface Config {
  /** Default none: every event. */
  filters: string[];
}

export const plugins = [
  definePlugin<Config, { seen: number }>({
    type: PluginTypes.internal, // io.containerd.internal.v1
    id: 'event-counter',
    requires: [PluginTypes.event], // what ctx.get may look up, and what loads first
    config: { defaults: () => ({ filters: [] }) }, // [plugins."io.containerd.internal.v1.event-counter"]
    init: (ctx) => {
      const state = { seen: 0 };
      const sub = ctx.get(SubscriberToken).subscribe(context(), ctx.config.filters);
      void (async () => {
        for await (const _ of sub) state.seen++;
      })();
      ctx.onClose(() => sub.close());
      return state;
    },
  }),
];
