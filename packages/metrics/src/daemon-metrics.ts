import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from './process-metrics';

/** What the garbage collector reports (the gc scheduler's statistics). */
export interface GcFigures {
  collections: number;
  failures: number;
  /** The latest collections, oldest first; each once, by `endedAt`. */
  recent: ReadonlyArray<{ endedAt: number; pauseMs: number; totalMs: number }>;
}

/**
 * Where the daemon's own figures come from; each is optional (a plugin that did not load is
 * left out). The daemon wires them to its services, so this package needs none of them.
 */
export interface DaemonMetricsSources {
  gc?: () => GcFigures;
  namespaces?: () => Promise<string[]>;
  /** Blobs and bytes in a namespace's content store. */
  content?: (namespace: string) => Promise<{ blobs: number; bytes: number }>;
  /** Snapshots in a namespace, by snapshotter. */
  snapshots?: (namespace: string) => Promise<Record<string, number>>;
}

/**
 * Registers the process figures (`registerProcessMetrics`) and Berth's own: garbage collections
 * by status and their durations, and content and snapshot totals per namespace (read at scrape
 * time). Returns what stops the process figures' event-loop sampler.
 */
export function registerDaemonMetrics(registry: Registry, sources: DaemonMetricsSources): () => void {
  const stop = registerProcessMetrics(registry);

  const gc = sources.gc;
  if (gc) {
    let seen = 0;
    new Histogram({
      name: 'berth_gc_duration_seconds',
      help: 'Durations of garbage collections (metadata pause, then backend cleanup).',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
      collect() {
        for (const c of gc().recent) {
          if (c.endedAt <= seen) continue;
          seen = c.endedAt;
          this.observe(c.totalMs / 1000);
        }
      },
    });
    new Counter({
      name: 'berth_gc_collections_total',
      help: 'Garbage collections run, by status (success or failure).',
      labelNames: ['status'],
      registers: [registry],
      collect() {
        const f = gc();
        this.reset();
        this.inc({ status: 'success' }, f.collections);
        this.inc({ status: 'failure' }, f.failures);
      },
    });
  }

  const namespaces = sources.namespaces;
  if (namespaces && sources.content) {
    const content = sources.content;
    // A scrape collects in registration order: the blobs gauge reads, the bytes gauge reuses it.
    let reading: Promise<Array<[string, { blobs: number; bytes: number }]>> | undefined;
    const read = async () => {
      const out: Array<[string, { blobs: number; bytes: number }]> = [];
      for (const ns of await namespaces()) out.push([ns, await content(ns)]);
      return out;
    };
    new Gauge({
      name: 'berth_content_blobs',
      help: 'Content blobs in a namespace.',
      labelNames: ['namespace'],
      registers: [registry],
      async collect() {
        this.reset();
        reading = read();
        for (const [ns, c] of await reading) this.set({ namespace: ns }, c.blobs);
      },
    });
    new Gauge({
      name: 'berth_content_bytes',
      help: 'Bytes of the content blobs in a namespace.',
      labelNames: ['namespace'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [ns, c] of await (reading ?? read())) this.set({ namespace: ns }, c.bytes);
      },
    });
  }
  if (namespaces && sources.snapshots) {
    const snapshots = sources.snapshots;
    new Gauge({
      name: 'berth_snapshots',
      help: 'Snapshots in a namespace, by snapshotter.',
      labelNames: ['namespace', 'snapshotter'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const ns of await namespaces()) {
          for (const [snapshotter, n] of Object.entries(await snapshots(ns))) this.set({ namespace: ns, snapshotter }, n);
        }
      },
    });
  }
  return stop;
}
