import { readFileSync, readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';

/** A gauge whose value is read when scraped. */
function gauge(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v !== undefined) this.set(v);
    },
  });
}

function counter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

function procStatus(key: string): number | undefined {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves with how late a setImmediate runs: the event loop's lag right now (seconds). */
function lag(): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - t0) / 1e9)));
}

/**
 * Registers the process figures, with prom-client's default metric names (so its dashboards
 * read them): CPU, resident and virtual memory, heap, open and maximum fds, active handles,
 * start time, and event-loop lag (now, and its distribution since the last scrape).
 *
 * Everything is read when scraped. prom-client's `collectDefaultMetrics` is not used: its GC
 * histogram (nodejs_gc_duration_seconds) watches every garbage collection through a
 * PerformanceObserver, a cost paid on every collection whether anyone scrapes or not. The one
 * thing running in between is Node's event-loop delay sampler (a native timer every 20 ms).
 */
export function registerProcessMetrics(registry: Registry): () => void {
  const cpu = () => process.cpuUsage();
  counter(registry, 'process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => cpu().user / 1e6);
  counter(registry, 'process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => cpu().system / 1e6);
  counter(registry, 'process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
    const c = cpu();
    return (c.user + c.system) / 1e6;
  });
  const started = Math.round(Date.now() / 1000 - process.uptime());
  gauge(registry, 'process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => started);
  gauge(registry, 'process_resident_memory_bytes', 'Resident memory size in bytes.', () => process.memoryUsage.rss());
  gauge(registry, 'process_virtual_memory_bytes', 'Virtual memory size in bytes.', () => procStatus('VmSize'));
  gauge(registry, 'process_heap_bytes', 'Process heap size in bytes.', () => procStatus('VmData'));
  gauge(registry, 'process_open_fds', 'Number of open file descriptors.', () => {
    try {
      return readdirSync('/proc/self/fd').length;
    } catch {
      return undefined;
    }
  });
  const max = maxFds();
  gauge(registry, 'process_max_fds', 'Maximum number of open file descriptors.', () => max);
  gauge(registry, 'nodejs_active_handles_total', 'Number of active libuv handles grouped by handle type.', () => process.getActiveResourcesInfo().length);
  gauge(registry, 'nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', () => process.memoryUsage().heapTotal);
  gauge(registry, 'nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', () => process.memoryUsage().heapUsed);
  gauge(registry, 'nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', () => process.memoryUsage().external);

  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers: [registry],
    async collect() {
      this.set(await lag());
    },
  });
  const delay = monitorEventLoopDelay({ resolution: 20 });
  delay.enable();
  const fromNs = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
  const stats: Array<[string, string, () => number]> = [
    ['min', 'The minimum recorded event loop delay.', () => delay.min],
    ['max', 'The maximum recorded event loop delay.', () => delay.max],
    ['mean', 'The mean of the recorded event loop delays.', () => delay.mean],
    ['stddev', 'The standard deviation of the recorded event loop delays.', () => delay.stddev],
    ['p50', 'The 50th percentile of the recorded event loop delays.', () => delay.percentile(50)],
    ['p90', 'The 90th percentile of the recorded event loop delays.', () => delay.percentile(90)],
    ['p99', 'The 99th percentile of the recorded event loop delays.', () => delay.percentile(99)],
  ];
  for (const [i, [stat, help, read]] of stats.entries()) {
    new Gauge({
      name: `nodejs_eventloop_lag_${stat}_seconds`,
      help,
      registers: [registry],
      collect() {
        this.set(fromNs(read()));
        // The last of them starts the next window: each scrape reports the delays since the previous one.
        if (i === stats.length - 1) delay.reset();
      },
    });
  }
  return () => delay.disable();
}
