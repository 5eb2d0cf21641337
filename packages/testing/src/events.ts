import { eventsService } from '@berth/api';
import { ContainerDelete, Envelope, isKnownTypeUrl, packAny, unpackAny } from '@berth/api/events';
import { Client, createClient } from '@berth/grpc';

/** The topic of the markers EventSubscription publishes to know what has been delivered. */
export const SYNC_TOPIC = '/testing/sync';

/** An event as a test asserts it: envelope fields and the decoded payload. */
export interface ReceivedEvent {
  namespace: string;
  topic: string;
  typeUrl: string;
  /** The decoded payload; undefined for a type URL the API does not know. */
  event: unknown;
  timestamp?: Date;
}

/**
 * A live Subscribe stream on a daemon (berthd or containerd), for end-to-end tests of services
 * that publish events:
 *
 * ```ts
 * const events = await EventSubscription.open(daemon.address, ['topic~="^/content/"']);
 * await daemon.ctr(['content', 'rm', digest]);
 * expect(await events.take()).toMatchObject([{ namespace: 'default', topic: '/content/delete', event: { digest } }]);
 * events.close();
 * ```
 *
 * `open` returns once the server has registered the subscription, and `take` returns everything
 * published before it was called: both publish a marker event on SYNC_TOPIC (namespace
 * `testing`) and wait for it, and markers are never returned.
 */
export class EventSubscription {
  private readonly received: Envelope[] = [];
  private waiters: Array<() => void> = [];
  private failure?: unknown;
  private ended = false;
  private seq = 0;

  private constructor(
    private readonly client: Client<typeof eventsService.EventsService>,
    private readonly ac: AbortController,
  ) {}

  /** Subscribes with `filters` (ORed, as containerd's) and waits until the stream is live. */
  static async open(address: string, filters: readonly string[] = [], options: { timeoutMs?: number } = {}): Promise<EventSubscription> {
    const client = createClient(eventsService.EventsService, address, { namespace: 'testing' });
    const ac = new AbortController();
    const sub = new EventSubscription(client, ac);
    const stream = client.subscribe({ filters: filters.length ? [...filters, `topic=="${SYNC_TOPIC}"`] : [] }, { signal: ac.signal });
    void (async () => {
      try {
        for await (const env of stream) {
          sub.received.push(env);
          sub.wake();
        }
      } catch (err) {
        if (!ac.signal.aborted) sub.failure = err;
      } finally {
        sub.ended = true;
        sub.wake();
      }
    })();
    try {
      await sub.sync(options.timeoutMs ?? 10_000, 100);
    } catch (err) {
      sub.close();
      throw err;
    }
    return sub;
  }

  /** Returns the events delivered since the last `take` (or `open`), in order. */
  async take(timeoutMs = 10_000): Promise<ReceivedEvent[]> {
    const upTo = await this.sync(timeoutMs);
    const batch = this.received.splice(0, upTo + 1);
    return batch.filter((e) => e.topic !== SYNC_TOPIC).map(toReceived);
  }

  /** Ends the stream. */
  close(): void {
    this.ac.abort();
    this.client.close();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Publishes a marker (again every `repeatMs`) until it arrives; returns its index in `received`. */
  private async sync(timeoutMs: number, repeatMs?: number): Promise<number> {
    const id = `sync-${process.pid}-${++this.seq}`;
    const deadline = Date.now() + timeoutMs;
    const publish = () => this.client.publish({ topic: SYNC_TOPIC, event: packAny(ContainerDelete, { id }) });
    await publish();
    let last = Date.now();
    for (;;) {
      const at = this.received.findIndex((e) => e.topic === SYNC_TOPIC && e.event && (unpackAny(e.event) as { id?: string }).id === id);
      if (at >= 0) return at;
      if (this.failure) throw this.failure;
      if (this.ended) throw new Error('event stream ended');
      if (Date.now() > deadline) throw new Error(`event stream did not deliver ${SYNC_TOPIC} within ${timeoutMs} ms`);
      if (repeatMs && Date.now() - last >= repeatMs) {
        last = Date.now();
        await publish();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function toReceived(env: Envelope): ReceivedEvent {
  const any = env.event;
  return {
    namespace: env.namespace,
    topic: env.topic,
    typeUrl: any?.typeUrl ?? '',
    event: any && isKnownTypeUrl(any.typeUrl) ? unpackAny(any) : undefined,
    timestamp: env.timestamp,
  };
}

/**
 * For a subscription opened some other way (the client under test): publishes a marker on
 * SYNC_TOPIC in `namespace` every 100 ms until `seen()` says it came through, so that what
 * follows is published to a live subscription. Fails after `timeoutMs`.
 */
export async function publishUntilSeen(address: string, namespace: string, seen: () => boolean, timeoutMs = 10_000): Promise<void> {
  const client = createClient(eventsService.EventsService, address, { namespace });
  const deadline = Date.now() + timeoutMs;
  try {
    while (!seen()) {
      if (Date.now() > deadline) throw new Error(`no subscriber saw ${SYNC_TOPIC} within ${timeoutMs} ms`);
      await client.publish({ topic: SYNC_TOPIC, event: packAny(ContainerDelete, { id: `sync-${process.pid}` }) });
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}
