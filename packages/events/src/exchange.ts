import { Any, DeepPartial, Envelope, MessageType, isKnownTypeUrl, isZeroTime, packAny, unpackAny } from '@berth/api/events';
import { Context, namespaceRequired } from '@berth/context';
import { InvalidArgumentError, ResourceExhaustedError, wrap } from '@berth/errdefs';
import { Adaptor, Filter, parseAll } from '@berth/filters';
import { validate } from '@berth/identifiers';
import { Logger, nullLogger } from '@berth/log';
import { token } from '@berth/plugin';

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

/**
 * The filter adaptor of an envelope: `namespace`, `topic`, and `event.<field>` over the decoded
 * payload (proto field names, snake_case as containerd's adaptors use them).
 */
export function envelopeAdaptor(env: Envelope): Adaptor {
  let decoded: unknown;
  let decodedDone = false;
  const payload = () => {
    if (!decodedDone) {
      decodedDone = true;
      decoded = env.event && isKnownTypeUrl(env.event.typeUrl) ? unpackAny(env.event) : undefined;
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
      for (const seg of path.slice(1)) {
        if (v === null || typeof v !== 'object') return undefined;
        const obj = v as Record<string, unknown>;
        v = seg in obj ? obj[seg] : obj[snakeToCamel(seg)];
      }
      if (typeof v === 'string') return v || undefined;
      if (typeof v === 'number' || typeof v === 'boolean') return String(v);
      return undefined;
    },
  };
}

export interface ExchangeOptions {
  /** Envelopes a subscriber may fall behind before it is disconnected. Default 1024. */
  queueLimit?: number;
  logger?: Logger;
}

class Sub implements Subscription {
  private readonly queue: Envelope[] = [];
  private wake?: () => void;
  private failure?: Error;
  closed = false;

  constructor(readonly filter: Filter, private readonly limit: number, private readonly onClose: (s: Sub) => void) {}

  deliver(env: Envelope): boolean {
    if (this.closed) return true;
    if (this.queue.length >= this.limit) return false;
    this.queue.push(env);
    this.wake?.();
    return true;
  }

  fail(err: Error): void {
    this.failure = err;
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Envelope> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.closed) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.close();
    }
  }
}

/**
 * The in-process event exchange. Publishing stamps and fans an envelope out to the matching
 * subscribers synchronously, so each publisher's events stay in order; a subscriber whose queue
 * overflows is disconnected with ResourceExhausted instead of slowing anyone down.
 */
export class Exchange implements Publisher, Forwarder, Subscriber {
  private readonly subs = new Set<Sub>();
  private readonly limit: number;
  private readonly logger: Logger;

  constructor(options: ExchangeOptions = {}) {
    this.limit = options.queueLimit ?? 1024;
    this.logger = options.logger ?? nullLogger;
  }

  async publish<T>(ctx: Context, topic: string, type: MessageType<T>, event: T | DeepPartial<T>): Promise<void> {
    let namespace: string;
    try {
      namespace = namespaceRequired(ctx);
      validateTopic(topic);
    } catch (err) {
      throw wrap(err, 'failed publishing event');
    }
    this.dispatch({ timestamp: new Date(), namespace, topic, event: packAny(type, event) });
  }

  /** Publishes a payload that is already an Any (the events service's Publish). */
  async publishAny(ctx: Context, topic: string, event: Any | undefined): Promise<void> {
    let namespace: string;
    try {
      namespace = namespaceRequired(ctx);
      validateTopic(topic);
    } catch (err) {
      throw wrap(err, 'failed publishing event');
    }
    this.dispatch({ timestamp: new Date(), namespace, topic, event });
  }

  async forward(_ctx: Context, envelope: Envelope): Promise<void> {
    namespaceRequired({ namespace: envelope.namespace, signal: _ctx.signal });
    validateTopic(envelope.topic);
    if (isZeroTime(envelope.timestamp)) throw new InvalidArgumentError('timestamp must be set on forwarded event');
    this.dispatch(envelope);
  }

  subscribe(ctx: Context, filters: readonly string[]): Subscription {
    const filter = parseAll(filters);
    const sub = new Sub(filter, this.limit, (s) => this.subs.delete(s));
    this.subs.add(sub);
    ctx.signal.addEventListener('abort', () => sub.close(), { once: true });
    return sub;
  }

  /** Number of live subscriptions. */
  get subscribers(): number {
    return this.subs.size;
  }

  private dispatch(env: Envelope): void {
    if (this.logger.enabled('debug')) this.logger.debug('event published', { ns: env.namespace, topic: env.topic, type: env.event?.typeUrl });
    if (this.subs.size === 0) return;
    const adaptor = envelopeAdaptor(env);
    for (const sub of this.subs) {
      if (!sub.filter.match(adaptor)) continue;
      if (!sub.deliver(env)) {
        this.logger.warn('disconnecting event subscriber that fell behind', { queued: this.limit, topic: env.topic });
        sub.fail(new ResourceExhaustedError(`event subscriber fell behind by ${this.limit} events and was disconnected`));
      }
    }
  }
}
