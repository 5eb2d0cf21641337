import { Counter, Gauge, Registry } from 'prom-client';
import type { CgroupStats } from './cgroups';
import type { TaskStats } from './cgroups-monitor';

type Sample = { v: number; l?: Record<string, string | number> };

/** One container_* metric: its name (without the `container_` namespace), help and values. */
interface TaskMetric {
  name: string;
  help: string;
  labels?: string[];
  counter?: boolean;
  values(s: CgroupStats): Sample[] | undefined;
}

const one = (v: number | undefined): Sample[] | undefined => (v === undefined ? undefined : [{ v }]);

/** memory.stat keys containerd's v1 monitor reports, as container_memory_<key>_bytes. */
const V1_MEMORY_STAT = [
  'cache', 'rss', 'rss_huge', 'mapped_file', 'dirty', 'writeback', 'pgpgin', 'pgpgout', 'pgfault', 'pgmajfault',
  'inactive_anon', 'active_anon', 'inactive_file', 'active_file', 'unevictable', 'hierarchical_memory_limit',
  'hierarchical_memsw_limit',
];

const counters = (key: 'usage' | 'swap' | 'kernel' | 'kerneltcp', pick: (s: CgroupStats) => { usage: number; limit: number; max: number; failcnt: number } | undefined): TaskMetric[] => [
  { name: `memory_${key}_failcnt_total`, help: `The ${key} failcnt`, values: (s) => one(pick(s)?.failcnt) },
  { name: `memory_${key}_limit_bytes`, help: `The ${key === 'usage' ? 'memory' : key} limit`, values: (s) => one(pick(s)?.limit) },
  { name: `memory_${key}_max_bytes`, help: `The ${key === 'usage' ? 'memory' : key} maximum usage`, values: (s) => one(pick(s)?.max) },
  { name: `memory_${key}_usage_bytes`, help: `The ${key === 'usage' ? 'memory' : key} usage`, values: (s) => one(pick(s)?.usage) },
];

const blkio = (name: string, help: string, pick: (s: CgroupStats) => Array<{ major: number; minor: number; device: string; op: string; value: number }> | undefined): TaskMetric => ({
  name,
  help,
  labels: ['op', 'device', 'major', 'minor'],
  values: (s) => pick(s)?.map((e) => ({ v: e.value, l: { op: e.op, device: e.device, major: e.major, minor: e.minor } })),
});

const PIDS: TaskMetric[] = [
  { name: 'pids_limit', help: 'The limit to the number of pids allowed', values: (s) => one(s.pids?.limit) },
  { name: 'pids_current', help: 'The current number of pids', values: (s) => one(s.pids?.current) },
];

const OOM: TaskMetric = { name: 'memory_oom_total', help: 'The number of times a container has received an oom event', counter: true, values: (s) => one(s.memory?.oomKills) };

/** containerd's cgroup v1 task metrics (metrics/cgroups/v1), by the names docker/go-metrics gives them. */
export const V1_TASK_METRICS: TaskMetric[] = [
  { name: 'cpu_total_nanoseconds', help: 'The total cpu time', values: (s) => one(s.cpu?.total) },
  { name: 'cpu_kernel_nanoseconds', help: 'The total kernel cpu time', values: (s) => one(s.cpu?.kernel) },
  { name: 'cpu_user_nanoseconds', help: 'The total user cpu time', values: (s) => one(s.cpu?.user) },
  { name: 'per_cpu_nanoseconds', help: 'The total cpu time per cpu', labels: ['cpu'], values: (s) => s.cpu?.perCpu.map((v, i) => ({ v, l: { cpu: i } })) },
  { name: 'cpu_throttle_periods_total', help: 'The total cpu throttle periods', values: (s) => one(s.cpu?.periods) },
  { name: 'cpu_throttled_periods_total', help: 'The total cpu throttled periods', values: (s) => one(s.cpu?.throttledPeriods) },
  { name: 'cpu_throttled_time_nanoseconds', help: 'The total cpu throttled time', values: (s) => one(s.cpu?.throttledTime) },
  ...V1_MEMORY_STAT.flatMap((k) => [
    { name: `memory_${k}_bytes`, help: `The ${k} amount`, values: (s: CgroupStats) => one(s.memory?.stat[k]) },
    { name: `memory_total_${k}_bytes`, help: `The total_${k} amount`, values: (s: CgroupStats) => one(s.memory?.stat[`total_${k}`]) },
  ]).filter((m) => !/^memory_total_hierarchical/.test(m.name)),
  ...counters('usage', (s) => s.memory),
  ...counters('swap', (s) => s.memory?.swap),
  ...counters('kernel', (s) => s.memory?.kernel),
  ...counters('kerneltcp', (s) => s.memory?.kernelTcp),
  OOM,
  ...PIDS,
  blkio('blkio_io_service_bytes_recursive_bytes', 'The blkio io service bytes recursive', (s) => s.blkio?.serviceBytes),
  blkio('blkio_io_serviced_recursive_total', 'The blkio io serviced recursive', (s) => s.blkio?.serviced),
];

/** memory.stat keys of cgroup v2 that containerd reports as container_memory_<key>_bytes. */
const V2_MEMORY_STAT = [
  'file_mapped', 'file_dirty', 'file_writeback', 'pgactivate', 'pgdeactivate', 'pgfault', 'pgmajfault', 'pglazyfree',
  'pgrefill', 'pglazyfreed', 'pgscan', 'pgsteal', 'inactive_anon', 'active_anon', 'inactive_file', 'active_file',
  'unevictable', 'anon', 'file', 'kernel_stack', 'slab', 'sock', 'shmem', 'anon_thp', 'slab_reclaimable',
  'slab_unreclaimable', 'workingset_refault', 'workingset_activate', 'workingset_nodereclaim', 'thp_fault_alloc',
  'thp_collapse_alloc',
];

/**
 * containerd's cgroup v2 task metrics (metrics/cgroups/v2), names as it spells them
 * (`memory_swap_Limit` included). The OOM count, from memory.events, is Berth's addition.
 */
export const V2_TASK_METRICS: TaskMetric[] = [
  { name: 'cpu_usage_microseconds', help: 'Total cpu usage (cgroup v2)', values: (s) => one(s.cpu?.total) },
  { name: 'cpu_user_usage_microseconds', help: 'Current cpu usage in user space (cgroup v2)', values: (s) => one(s.cpu?.user) },
  { name: 'cpu_kernel_usage_microseconds', help: 'Current cpu usage in kernel space (cgroup v2)', values: (s) => one(s.cpu?.kernel) },
  { name: 'cpu_nr_periods_total', help: 'Current cpu number of periods (only if controller is enabled)', values: (s) => one(s.cpu?.periods) },
  { name: 'cpu_nr_throttled_total', help: 'Total number of times tasks have been throttled (only if controller is enabled)', values: (s) => one(s.cpu?.throttledPeriods) },
  { name: 'cpu_throttled_usec_microseconds', help: 'Total time duration for which tasks have been throttled. (only if controller is enabled)', values: (s) => one(s.cpu?.throttledTime) },
  { name: 'memory_usage_bytes', help: 'Current memory usage (cgroup v2)', values: (s) => one(s.memory?.usage) },
  { name: 'memory_usage_limit_bytes', help: 'Current memory usage limit (cgroup v2)', values: (s) => one(s.memory?.limit) },
  { name: 'memory_swap_usage_bytes', help: 'Current swap usage (cgroup v2)', values: (s) => one(s.memory?.swap?.usage) },
  { name: 'memory_swap_Limit_bytes', help: 'Current swap usage limit (cgroup v2)', values: (s) => one(s.memory?.swap?.limit) },
  ...V2_MEMORY_STAT.map((k) => ({ name: `memory_${k}_bytes`, help: `The ${k} amount`, values: (s: CgroupStats) => one(s.memory?.stat[k]) })),
  OOM,
  ...PIDS,
];

/**
 * Registers containerd's `container_*` task metrics in `registry`, labelled `container_id` and
 * `namespace`, read from the tasks' cgroups at each scrape (one reading for all of them).
 */
export function registerTaskMetrics(registry: Registry, source: { stats(): Promise<TaskStats[]> }, version: 1 | 2): void {
  // A scrape collects the metrics in registration order: the first reads the cgroups, the rest
  // reuse that reading, so one scrape reads each file once and every figure is from one moment.
  let reading: Promise<TaskStats[]> | undefined;
  for (const [i, m] of (version === 1 ? V1_TASK_METRICS : V2_TASK_METRICS).entries()) {
    const labelNames = ['container_id', 'namespace', ...(m.labels ?? [])];
    const config = {
      name: `container_${m.name}`,
      help: m.help,
      labelNames,
      registers: [registry],
      async collect(this: Gauge | Counter) {
        this.reset();
        if (i === 0 || !reading) reading = source.stats();
        for (const t of await reading) {
          for (const sample of m.values(t.stats) ?? []) {
            const labels = { container_id: t.id, namespace: t.namespace, ...sample.l };
            if (this instanceof Gauge) this.set(labels, sample.v);
            else this.inc(labels, sample.v);
          }
        }
      },
    };
    if (m.counter) new Counter(config);
    else new Gauge(config);
  }
}
