import { Any, DeepPartial, Envelope, MessageType, isKnownTypeUrl, isZeroTime, packAny, unpackAny } from '@berth/api/events';
import { Context, namespaceRequired } from '@berth/context';
import { InvalidArgumentError, ResourceExhaustedError, wrap } from '@berth/errdefs';
import { Adaptor, Filter, parseAll } from '@berth/filters';
import { validate } from '@berth/identifiers';
import { Logger, nullLogger } from '@berth/log';
import { token } from '@berth/plugin';
import { SubscriberQueue } from './subscriber-queue';

/** Publishes events from the caller's namespace. Never blocks on subscribers. */
export interface Publisher {
  publish<T>(ctx: Context, topic: string, type: MessageType<T>, event: T | DeepPartial<T>): Promise<void>;
}

/** Accepts an envelope made elsewhere (a shim, another daemon), keeping its namespace and time. */
export interface Forwarder {
  forward(ctx: Context, envelope: Envelope): Promise<void>;
}

/** A live subscription: the matching envelopes, in publish order, until closed. */
export interface Subscription extends AsyncIterable<Envelope> {
  close(): void;
}

export interface Subscriber {
  /** Subscribes to the events of all namespaces that match any of `filters` (none: all). */
  subscribe(ctx: Context, filters: readonly string[]): Subscription;
}

export const PublisherToken = token<Publisher>('io.containerd.event.v1/publisher');
export const ForwarderToken = token<Forwarder>('io.containerd.event.v1/forwarder');
export const SubscriberToken = token<Subscriber>('io.containerd.event.v1/subscriber');

/** Checks a topic as containerd does: `/` then `/`-separated identifiers. */
export function validateTopic(topic: string): void {
  const fail = (why: string) => new InvalidArgumentError(`envelope topic ${JSON.stringify(topic)}: ${why}`);
  if (topic === '') throw fail('must not be empty');
  if (topic[0] !== '/') throw fail("must start with '/'");
  if (topic.length === 1) throw fail('must have at least one component');
  for (const component of topic.slice(1).split('/')) {
    try {
      validate(component);
    } catch (err) {
      throw wrap(err, `envelope topic ${JSON.stringify(topic)}: failed validation on component ${JSON.stringify(component)}`);
    }
  }
}

const snakeToCamel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The map fields of event payloads; containerd looks their keys up with the rest of the path joined by dots. */
const MAP_FIELDS = new Set(['labels']);

/**
 * The filter adaptor of an envelope: `namespace`, `topic`, and `event.<field>` over the decoded
 * payload, as containerd's generated field adaptors see it: proto (snake_case) field names,
 * non-empty strings, booleans (always present), nested messages, and `labels.<key>` (the rest of
 * the path joined by dots is the key). Numbers, timestamps, repeated fields and payloads of
 * unknown type never match.
 */
export function envelopeAdaptor(env: Envelope): Adaptor {
  let decoded: unknown;
  let decodedDone = false;
  const payload = () => {
    if (!decodedDone) {
      decodedDone = true;
      try {
        decoded = env.event && isKnownTypeUrl(env.event.typeUrl) ? unpackAny(env.event) : undefined;
      } catch {
        decoded = undefined;
      }
    }
    return decoded;
  };
  return {
    field(path) {
      if (path.length === 0) return undefined;
      if (path[0] === 'namespace') return env.namespace || undefined;
      if (path[0] === 'topic') return env.topic || undefined;
      if (path[0] !== 'event' || path.length < 2) return undefined;
      let v: unknown = payload();
      for (let i = 1; i < path.length; i++) {
        const seg = path[i];
        if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Date || v instanceof Uint8Array) return undefined;
        if (/[A-Z]/.test(seg)) return undefined;
        const obj = v as Record<string, unknown>;
        const key = snakeToCamel(seg);
        if (!Object.prototype.hasOwnProperty.call(obj, key)) return undefined;
        v = obj[key];
        if (MAP_FIELDS.has(seg) && i + 1 < path.length) {
          const value = (v as Record<string, string> | undefined)?.[path.slice(i + 1).join('.')];
          return value || undefined;
        }
      }
      if (typeof v === 'string') return v || undefined;
      if (typeof v === 'boolean') return String(v);
      return undefined;
    },
  };
}

/** What the exchange has done to subscribers that fell behind, since it started. */
export interface ExchangeStats {
  /** Subscribers disconnected because their queue was full. */
  disconnected: number;
  /** Envelopes those subscribers never received: the one that overflowed and those discarded from their queues. */
  dropped: number;
}

export interface ExchangeOptions {
  /** Envelopes a subscriber may fall behind before it is disconnected. Default 1024. */
  queueLimit?: number;
  logger?: Logger;
}

/** A subscription: its queue, and the filter the exchange matches envelopes against. */
class Sub extends SubscriberQueue<Envelope> implements Subscription {
  constructor(readonly filter: Filter, limit: number, onClose: (s: Sub) => void) {
    super(limit, onClose as (q: SubscriberQueue<Envelope>) => void);
  }
}

/**
 * The in-process event exchange. Publishing stamps and fans an envelope out to the matching
 * subscribers synchronously, so each publisher's events stay in order; a subscriber whose queue
 * overflows is disconnected with ResourceExhausted instead of slowing anyone down. Queues are
 * bounded by `queueLimit`; each disconnect is logged with the envelopes dropped, and the running
 * totals (see {@link Exchange.stats}).
 */
export class Exchange implements Publisher, Forwarder, Subscriber {
  private readonly subs = new Set<Sub>();
  private closed = false;
  private readonly limit: number;
  private readonly logger: Logger;
  private readonly totals: ExchangeStats = { disconnected: 0, dropped: 0 };

  constructor(options: ExchangeOptions = {}) {
    this.limit = options.queueLimit ?? 1024;
    this.logger = options.logger ?? nullLogger;
  }

  async publish<T>(ctx: Context, topic: string, type: MessageType<T>, event: T | DeepPartial<T>): Promise<void> {
    let namespace: string;
    try {
      namespace = namespaceRequired(ctx);
    } catch (err) {
      throw wrap(err, 'failed publishing event');
    }
    validateTopic(topic);
    this.dispatch({ timestamp: new Date(), namespace, topic, event: packAny(type, event) });
  }

  /**
   * Publishes a payload that is already an Any (the events service's Publish). The Any is kept
   * verbatim, whatever its type URL, as containerd does.
   */
  async publishAny(ctx: Context, topic: string, event: Any | undefined): Promise<void> {
    let namespace: string;
    try {
      namespace = namespaceRequired(ctx);
    } catch (err) {
      throw wrap(err, 'failed publishing event');
    }
    validateTopic(topic);
    // containerd dereferences a missing event and crashes; refuse it instead.
    if (!event) throw new InvalidArgumentError('failed publishing event: event must be set');
    this.dispatch({ timestamp: new Date(), namespace, topic, event });
  }

  /**
   * Re-broadcasts an envelope as it was made (namespace, time and Any kept), after containerd's
   * checks: a valid namespace, a valid topic, a set timestamp, and (where containerd would crash)
   * an event.
   */
  async forward(_ctx: Context, envelope: Envelope): Promise<void> {
    try {
      validate(envelope.namespace);
    } catch (err) {
      throw wrap(err, 'event envelope has invalid namespace');
    }
    validateTopic(envelope.topic);
    if (isZeroTime(envelope.timestamp)) throw new InvalidArgumentError('timestamp must be set on forwarded event');
    if (!envelope.event) throw new InvalidArgumentError('event must be set on forwarded event');
    this.dispatch(envelope);
  }

  /**
   * Subscribes to the matching events of all namespaces. The subscription ends when `ctx` is
   * cancelled, when it is closed, or when the exchange closes.
   *
   * @throws InvalidArgumentError "failed parsing subscription filters: ..." for a bad filter.
   */
  subscribe(ctx: Context, filters: readonly string[]): Subscription {
    let filter: Filter;
    try {
      filter = parseAll(filters);
    } catch (err) {
      throw wrap(err, 'failed parsing subscription filters');
    }
    const onAbort = () => sub.close();
    const sub = new Sub(filter, this.limit, (s) => {
      this.subs.delete(s);
      ctx.signal.removeEventListener('abort', onAbort);
    });
    if (this.closed || ctx.signal.aborted) {
      sub.close();
      return sub;
    }
    this.subs.add(sub);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    return sub;
  }

  /** Ends every subscription (their iterators finish normally); later subscriptions end at once. */
  close(): void {
    this.closed = true;
    for (const sub of [...this.subs]) sub.close();
  }

  /** Number of live subscriptions. */
  get subscribers(): number {
    return this.subs.size;
  }

  /** Subscribers disconnected for falling behind, and the envelopes they did not receive. */
  get stats(): ExchangeStats {
    return { ...this.totals };
  }

  private dispatch(env: Envelope): void {
    if (this.logger.enabled('debug')) this.logger.debug('event published', { ns: env.namespace, topic: env.topic, type: env.event?.typeUrl });
    if (this.subs.size === 0) return;
    const adaptor = envelopeAdaptor(env);
    for (const sub of this.subs) {
      if (!sub.filter.match(adaptor)) continue;
      if (!sub.deliver(env)) {
        const dropped = sub.fail(new ResourceExhaustedError(`event subscriber fell behind by ${this.limit} events and was disconnected`)) + 1;
        this.totals.disconnected++;
        this.totals.dropped += dropped;
        this.logger.warn('disconnected event subscriber that fell behind', {
          queued: this.limit,
          dropped,
          topic: env.topic,
          disconnected_total: this.totals.disconnected,
          dropped_total: this.totals.dropped,
        });
      }
    }
  }
}
