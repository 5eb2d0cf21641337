/**
 * The CRI plugin's container events (runtime.v1 GetContainerEvents, which kubelet's evented PLEG
 * reads): one hub that the sandbox and container services tell of every lifecycle change, and
 * that fans each event out to every open stream, in one order for all.
 *
 * What containerd 2.4's CRI plugin does, and what Berth does alike or otherwise:
 * - An event is made where the state changed, with the pod's status (as PodSandboxStatus answers)
 *   and its containers' (as ContainerStatus answers) read right then; Berth reads the containers'
 *   state before anything else can change it (see {@link ContainerEvents.emit}).
 * - Every subscriber gets every event published while it is subscribed, in publish order.
 * - While nobody subscribes, events wait (containerd: every event for 5 minutes) and go to the
 *   next subscriber first, so a kubelet that reconnects misses nothing of a short gap. Berth keeps
 *   the same 5 minutes but at most `holdLimit` events (the newest); the older are discarded.
 * - A subscriber's queue holds 100 events (containerd's channel buffer). containerd then blocks:
 *   the next event waits until that subscriber reads or leaves, and with it the CRI call that made
 *   the event. Berth never waits: a subscriber whose queue is full is disconnected with
 *   RESOURCE_EXHAUSTED (its queued events discarded), so a stuck client costs at most its queue,
 *   and kubelet, seeing the stream fail, relists and subscribes again.
 * - A subscriber that goes away (its call cancelled) is removed at once. No timers: old held
 *   events are discarded when the next one is held or when someone subscribes.
 */
import { ResourceExhaustedError } from '@berth/errdefs';
import { SubscriberQueue } from '@berth/events';
import { type Logger, nullLogger } from '@berth/log';
import type { CriImage } from './image-service';
import type { CriContainer } from './container-service';
import type { SandboxView } from './sandbox-service';

/** CRI's ContainerEventType names; the wire numbers are their indexes. */
export const CONTAINER_EVENT_TYPES = ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT'] as const;
export type ContainerEventType = (typeof CONTAINER_EVENT_TYPES)[number];

/** What a pod looks like at the moment of an event. */
export interface PodSnapshot {
  /** The pod as PodSandboxStatus answers; undefined when it could not be read (containerd sends none then). */
  sandbox?: SandboxView;
  /** The pod's containers as ContainerStatus answers, each with its image when it is still there. */
  containers: Array<{ container: CriContainer; image?: CriImage }>;
}

/** One CRI container event: a pod's or a container's lifecycle change. */
export interface ContainerEvent extends PodSnapshot {
  type: ContainerEventType;
  /** The container's id; the sandbox's id for a pod's own events. */
  containerId: string;
  /** When the event was made, in nanoseconds since the epoch. */
  createdAt: bigint;
}

/** Where the services tell of lifecycle changes ({@link ContainerEvents} is one). */
export interface ContainerEventSink {
  /** Emits an event of `type` for `containerId` (the sandbox id for a pod's own) in pod `sandboxId`; never rejects. */
  emit(type: ContainerEventType, containerId: string, sandboxId: string): Promise<void>;
}

/** A stream of events for one subscriber, in publish order, until it ends. */
export interface ContainerEventSubscription extends AsyncIterable<ContainerEvent> {
  /** Ends the subscription; a consumer waiting for the next event sees the end. */
  close(): void;
}

export interface ContainerEventsOptions {
  /**
   * Reads the pod's status and its containers' for an event. Whatever it reads before its first
   * `await` is read at the moment of `emit`. It should not throw; if it does, the event goes
   * without a pod and with no containers.
   */
  snapshot(sandboxId: string): Promise<PodSnapshot>;
  /** Events a subscriber may have queued before it is disconnected. Default 100 (containerd's buffer). */
  queueLimit?: number;
  /** Events kept while nobody subscribes. Default 100. */
  holdLimit?: number;
  /** How long an event is kept while nobody subscribes, in ms. Default 5 minutes (containerd's). */
  holdMs?: number;
  /**
   * How long an event waits for its snapshot, in ms, before it goes without one (as when the
   * snapshot fails). Default 10 s. Events are published in order, so one stuck snapshot (a shim
   * that does not answer) would otherwise hold up every later event and the calls that wait for
   * theirs.
   */
  snapshotTimeoutMs?: number;
  /** The clock, in ms (tests pass their own). */
  now?: () => number;
  logger?: Logger;
}

/** What the hub has dropped since it started. */
export interface ContainerEventStats {
  /** Subscribers disconnected because their queue was full. */
  disconnected: number;
  /** Events those subscribers never got: the one that overflowed and the ones still queued. */
  dropped: number;
  /** Events discarded while nobody subscribed (too old, or over `holdLimit`). */
  discarded: number;
}

/**
 * The hub of CRI container events (see the module comment for the rules). The services call
 * {@link ContainerEvents.emit}; each GetContainerEvents stream reads a
 * {@link ContainerEvents.subscribe} subscription.
 */
export class ContainerEvents implements ContainerEventSink {
  private readonly subs = new Set<SubscriberQueue<ContainerEvent>>();
  private held: Array<{ event: ContainerEvent; at: number }> = [];
  /** The publication of the last event emitted: events are published in emit order. */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly queueLimit: number;
  private readonly holdLimit: number;
  private readonly holdMs: number;
  private readonly snapshotTimeoutMs: number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly totals: ContainerEventStats = { disconnected: 0, dropped: 0, discarded: 0 };

  constructor(private readonly o: ContainerEventsOptions) {
    this.queueLimit = o.queueLimit ?? 100;
    this.holdLimit = o.holdLimit ?? 100;
    this.holdMs = o.holdMs ?? 5 * 60_000;
    this.snapshotTimeoutMs = o.snapshotTimeoutMs ?? 10_000;
    this.now = o.now ?? Date.now;
    this.logger = o.logger ?? nullLogger;
  }

  /** How many subscriptions are open. */
  get subscribers(): number {
    return this.subs.size;
  }

  /** How many events wait for a subscriber. */
  get waiting(): number {
    return this.held.length;
  }

  /** What was dropped or discarded so far. */
  get stats(): ContainerEventStats {
    return { ...this.totals };
  }

  /**
   * Makes an event of `type` for `containerId` in pod `sandboxId` and publishes it after every
   * event emitted before it. The snapshot starts now (its synchronous part sees the state of this
   * moment); the returned promise resolves once the event is in every subscriber's queue, and
   * never rejects.
   */
  emit(type: ContainerEventType, containerId: string, sandboxId: string): Promise<void> {
    const createdAt = BigInt(this.now()) * 1_000_000n;
    let built: Promise<PodSnapshot>;
    try {
      built = this.o.snapshot(sandboxId);
    } catch (err) {
      built = Promise.reject(err);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no pod status after ${this.snapshotTimeoutMs} ms`)), this.snapshotTimeoutMs);
      timer.unref();
    });
    const snapshot = Promise.race([built, timeout])
      .catch((err: unknown) => {
        this.logger.warn('container event without pod status', { container: containerId, sandbox: sandboxId, type, error: (err as Error).message });
        return { containers: [] } as PodSnapshot;
      })
      .finally(() => clearTimeout(timer));
    this.tail = this.tail
      .then(() => snapshot)
      .then((s) => this.publish({ type, containerId, createdAt, ...s }))
      .catch((err: unknown) => this.logger.error('publishing a container event', { container: containerId, type, error: (err as Error).message }));
    return this.tail;
  }

  /** Hands an event to every subscriber now, or keeps it for the next one when there is none. */
  publish(event: ContainerEvent): void {
    if (this.closed) return;
    for (const s of [...this.subs]) {
      if (s.deliver(event)) continue;
      const discarded = s.fail(new ResourceExhaustedError(`container event subscriber fell behind: ${this.queueLimit} events queued`));
      this.totals.disconnected += 1;
      this.totals.dropped += discarded + 1;
      this.logger.warn('disconnected container event subscriber that fell behind', { queued: discarded, type: event.type, container: event.containerId });
    }
    if (this.subs.size === 0) this.hold(event);
  }

  private hold(event: ContainerEvent): void {
    this.held.push({ event, at: this.now() });
    this.discardOld();
    while (this.held.length > this.holdLimit) this.discard(this.held.shift()!.event);
  }

  private discardOld(): void {
    const oldest = this.now() - this.holdMs;
    while (this.held.length > 0 && this.held[0].at <= oldest) this.discard(this.held.shift()!.event);
  }

  private discard(e: ContainerEvent): void {
    this.totals.discarded += 1;
    // containerd logs each at info; here it is the usual case (kubelet's evented PLEG is off by
    // default), so only debug.
    this.logger.debug('container event discarded', { container: e.containerId, type: e.type });
  }

  /**
   * Subscribes to every event from now on (the first subscriber after a gap also gets the events
   * kept meanwhile). The subscription ends when `signal` aborts, when it is closed, when it falls
   * `queueLimit` events behind (ResourceExhausted) or when the hub closes.
   */
  subscribe(signal?: AbortSignal): ContainerEventSubscription {
    const onAbort = () => sub.close();
    const sub = new SubscriberQueue<ContainerEvent>(this.queueLimit, (s) => {
      this.subs.delete(s);
      signal?.removeEventListener('abort', onAbort);
    });
    if (this.closed || signal?.aborted) {
      sub.close();
      return sub;
    }
    this.discardOld();
    for (const { event } of this.held) sub.deliver(event, true);
    this.held = [];
    this.subs.add(sub);
    signal?.addEventListener('abort', onAbort, { once: true });
    return sub;
  }

  /** Ends every subscription (normally, as at shutdown) and drops what is kept; later ones end at once. */
  close(): void {
    this.closed = true;
    for (const s of [...this.subs]) s.close();
    this.held = [];
  }
}
