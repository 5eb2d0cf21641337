import { isKnownTypeUrl, unpackAny } from '@berth/api/events';
import { context } from '@berth/context';
import type { Subscriber, Subscription } from './exchange';

/** An event as a test asserts it: envelope fields and the decoded payload. */
export interface RecordedEvent {
  namespace: string;
  topic: string;
  /** The Any's type URL, e.g. `containerd.events.ContentDelete`. */
  typeUrl: string;
  /** The decoded payload; undefined for a type URL the API does not know. */
  event: unknown;
}

/**
 * Records the events an exchange delivers, for tests of services that publish through
 * `PublisherToken`:
 *
 * ```ts
 * const exchange = new Exchange();
 * const rec = new EventRecorder(exchange);
 * await svc.delete(ctx, digest);
 * expect(await rec.take()).toEqual([{ namespace: 'ns', topic: '/content/delete', typeUrl: 'containerd.events.ContentDelete', event: { digest } }]);
 * await expect(svc.delete(ctx, missing)).rejects.toThrow();
 * expect(await rec.take()).toEqual([]); // nothing published for a failed change
 * rec.close();
 * ```
 */
export class EventRecorder {
  private readonly sub: Subscription;
  private readonly seen: RecordedEvent[] = [];
  private readonly pump: Promise<void>;

  constructor(subscriber: Subscriber, filters: readonly string[] = []) {
    const sub = subscriber.subscribe(context(), filters);
    this.sub = sub;
    this.pump = (async () => {
      for await (const env of sub) {
        const any = env.event;
        this.seen.push({
          namespace: env.namespace,
          topic: env.topic,
          typeUrl: any?.typeUrl ?? '',
          event: any && isKnownTypeUrl(any.typeUrl) ? unpackAny(any) : undefined,
        });
      }
    })();
  }

  /** Returns the events recorded since the last `take` (publishing is synchronous, so all of them). */
  async take(): Promise<RecordedEvent[]> {
    await new Promise((resolve) => setImmediate(resolve));
    return this.seen.splice(0);
  }

  /** Stops recording; rejects if the subscription failed (fell behind). */
  async close(): Promise<void> {
    this.sub.close();
    await this.pump;
  }
}

/** Runs `fn` and returns the events published while it ran (see EventRecorder). */
export async function collectEvents(subscriber: Subscriber, fn: () => unknown, filters: readonly string[] = []): Promise<RecordedEvent[]> {
  const rec = new EventRecorder(subscriber, filters);
  try {
    await fn();
    return await rec.take();
  } finally {
    await rec.close();
  }
}
