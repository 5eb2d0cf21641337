/**
 * An example plugin module for berthd, written as a third party would: it imports nothing but
 * @berth/plugin-sdk. Listed in berthd's config,
 *
 * ```toml
 * plugin_modules = ["@berth/example-plugin"]
 *
 * [plugins."io.containerd.internal.v1.event-log"]
 * path = "/var/log/berth-events.jsonl"
 * filters = ['topic~="/namespaces/"']
 * ```
 *
 * it loads after the event exchange, shows in `ctr plugins ls` as
 * `io.containerd.internal.v1 event-log`, and appends one JSON line per event.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PluginTypes, SkipPluginError, SubscriberToken, context, definePlugin, type Subscription } from '@berth/plugin-sdk';

/** `[plugins."io.containerd.internal.v1.event-log"]`. */
export interface EventLogConfig {
  /** The file events are appended to. Default "": `events.jsonl` in the plugin's root. */
  path: string;
  /** containerd event filters (`topic~="/images/"`); an event matching any is logged. Default none: all events. */
  filters: string[];
  /** Set false to load the plugin without logging (it reports skip). Default true. */
  enabled: boolean;
}

/** What the plugin's instance offers other plugins: where it writes and how much it wrote. */
export interface EventLog {
  readonly path: string;
  readonly written: number;
}

/** `io.containerd.internal.v1 event-log`: appends each event as `{"timestamp","namespace","topic","type"}`. */
export const eventLogPlugin = definePlugin<EventLogConfig, EventLog>({
  type: PluginTypes.internal,
  id: 'event-log',
  requires: [PluginTypes.event],
  config: {
    defaults: () => ({ path: '', filters: [], enabled: true }),
    parse: (section, defaults) => {
      const cfg = { ...defaults, ...section } as EventLogConfig;
      if (typeof cfg.path !== 'string') throw new Error('path must be a string');
      if (!Array.isArray(cfg.filters) || cfg.filters.some((f) => typeof f !== 'string')) throw new Error('filters must be a list of strings');
      if (typeof cfg.enabled !== 'boolean') throw new Error('enabled must be a boolean');
      return cfg;
    },
  },
  init: (ctx) => {
    if (!ctx.config.enabled) throw new SkipPluginError('event-log is not enabled');
    const path = ctx.config.path || join(ctx.root, 'events.jsonl');
    mkdirSync(dirname(path), { recursive: true });
    ctx.exports.path = path;
    const out = createWriteStream(path, { flags: 'a' });
    const subscription: Subscription = ctx.get(SubscriberToken).subscribe(context(), ctx.config.filters);
    const state = { path, written: 0 };
    const pump = (async () => {
      for await (const e of subscription) {
        const line = { timestamp: e.timestamp?.toISOString(), namespace: e.namespace, topic: e.topic, type: e.event?.typeUrl };
        out.write(JSON.stringify(line) + '\n');
        state.written++;
      }
    })().catch((err: Error) => ctx.logger.warn('event log stopped', { error: err.message }));
    ctx.onClose(async () => {
      subscription.close();
      await pump;
      await new Promise<void>((resolve) => out.end(resolve));
    });
    return state;
  },
});

/** What berthd's `plugin_modules` reads. */
export const plugins = [eventLogPlugin];
