import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readlinkSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { containers as capi, content as kapi, eventsService, images as iapi, snapshots as sapi, tasks as tapi, version as vapi } from '@berth/api';
import { Client, createClient } from '@berth/grpc';
import { mountsUnder } from '@berth/mount';
import { ReferenceContainerd, TestDaemon, cleanupShims, ociSpec, openFds, populateBusybox, rssMiB, runcContainer, shimsOf } from '@berth/testing';
import { percentile, rng } from './stats';
import { VersionProbe } from './version-probe';

/** Options of {@link runSoak}. */
export interface SoakOptions {
  /** Length of the loaded phase, in milliseconds (warm-up included). */
  durationMs: number;
  /** Concurrent clients, each on its own connection. Default 64. */
  clients?: number;
  /** Loaded time after which the RSS baseline is taken, in milliseconds. Default 20% of the run. */
  warmupMs?: number;
  /** Interval of the printed rows, in milliseconds. Default 10 000. */
  rowMs?: number;
  /** Task runs (create, start, kill, delete) in flight at once. Default 4 (a 2-core machine). */
  taskConcurrency?: number;
  /** How long a slow event subscriber stops reading before it hangs up, in milliseconds. Default 30 000. */
  stallMs?: number;
  /** The exchange's per-subscriber queue (`queue_limit`); the daemon's default (1024) when unset. */
  eventQueueLimit?: number;
  /**
   * Events of 4 KiB a second that one more client publishes (Events.Publish, topic `/soak/filler`).
   * Default 0. The short soak sets it, so that a stalled subscriber overflows its queue however
   * few operations a loaded machine gets through (what HTTP/2 and the socket buffer comes first).
   */
  fillerEventsPerSecond?: number;
  /**
   * Mean pause of a client between two operations, in milliseconds (uniform in [0.5x, 1.5x]).
   * Default 1000: 64 clients then offer about 64 operations a second, a load the daemon serves
   * without queueing on a 2-core machine; 0 runs every client flat out (a saturation test, where
   * Version's latency is the length of the queue).
   */
  thinkMs?: number;
  /** Largest blob a client ingests, in bytes (sizes are uniform from 4 KiB). Default 256 KiB. */
  maxBlob?: number;
  /** Seed of the operation mix. Default 1. */
  seed?: number;
  /** Where progress lines go. Default stdout. */
  log?: (line: string) => void;
  /**
   * The daemon under the soak: berthd (default), or containerd 1.6 for the same load side by side
   * (its exchange neither bounds nor logs what slow subscribers miss: no drop figures).
   */
  daemon?: 'berthd' | 'containerd';
}

/** One row of the soak's time series. */
export interface SoakRow {
  /** Seconds since the load started. */
  t: number;
  rssMiB: number;
  fds: number;
  mounts: number;
  shims: number;
  /** Version latency over the row's interval, in milliseconds. */
  versionP50: number;
  versionP99: number;
  versionMax: number;
  /** Operations completed in the row's interval, and how many failed. */
  ops: number;
  errors: number;
}

/** What a soak measured. */
export interface SoakReport {
  clients: number;
  durationS: number;
  rows: SoakRow[];
  /** Idle figures before the load and after it stopped (clients closed, tasks gone). */
  before: { rssMiB: number; fds: number; mounts: number };
  after: { rssMiB: number; fds: number; mounts: number; shims: number };
  /** RSS when the warm-up ended, the highest and the last RSS after it, in MiB. */
  rssBaselineMiB: number;
  rssMaxAfterWarmupMiB: number;
  rssEndMiB: number;
  /** Growth of the last loaded RSS over the baseline, as a fraction (0.1 = +10%). */
  rssGrowth: number;
  /** The worst p99 of Version over any one-second window, and p99 over the whole run, in ms. */
  versionWorstSecondP99: number;
  versionP99: number;
  versionSamples: number;
  /** Completed operations per kind, and failures per kind with the first messages. */
  ops: Record<string, number>;
  errors: Record<string, number>;
  errorSamples: string[];
  /** Slow subscribers the daemon disconnected and the events they dropped (from its log). */
  events: { stalledSubscribers: number; disconnected: number; dropped: number };
}

const NS = 'soak';
const SNAPSHOTTER = 'overlayfs';
const BASE = 'soak-busybox';
const GC_ROOT = 'containerd.io/gc.root';

type Clients = {
  version: Client<typeof vapi.VersionService>;
  content: Client<typeof kapi.ContentService>;
  images: Client<typeof iapi.ImagesService>;
  containers: Client<typeof capi.ContainersService>;
  snapshots: Client<typeof sapi.SnapshotsService>;
  tasks: Client<typeof tapi.TasksService>;
  events: Client<typeof eventsService.EventsService>;
  close(): void;
};

function connect(address: string): Clients {
  const cs = {
    version: createClient(vapi.VersionService, address, { namespace: NS }),
    content: createClient(kapi.ContentService, address, { namespace: NS }),
    images: createClient(iapi.ImagesService, address, { namespace: NS }),
    containers: createClient(capi.ContainersService, address, { namespace: NS }),
    snapshots: createClient(sapi.SnapshotsService, address, { namespace: NS }),
    tasks: createClient(tapi.TasksService, address, { namespace: NS }),
    events: createClient(eventsService.EventsService, address, { namespace: NS }),
  };
  return { ...cs, close: () => Object.values(cs).forEach((c) => c.close()) };
}

/** Writes one blob through the Content API's Write stream and commits it; returns its digest. */
export async function ingest(content: Clients['content'], ref: string, data: Buffer, labels: Record<string, string> = {}): Promise<string> {
  const expected = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const call = content.write();
  const base = { ref, total: data.byteLength, expected, labels: {} as Record<string, string>, data: Buffer.alloc(0), offset: 0 };
  try {
    call.write({ ...base, action: kapi.WriteAction.WRITE, data });
    if (!(await call.read())) throw new Error(`write ${ref}: stream ended early`);
    call.write({ ...base, action: kapi.WriteAction.COMMIT, offset: data.byteLength, labels });
    if (!(await call.read())) throw new Error(`commit ${ref}: stream ended early`);
    call.end();
    while ((await call.read()) !== undefined);
    return expected;
  } catch (err) {
    call.cancel();
    throw err;
  }
}

/** A counter of free slots that never waits: a client that finds none does other work. */
class Slots {
  constructor(private free: number) {}
  tryTake(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }
  give(): void {
    this.free++;
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** The open fds of a process by kind (sockets, pipes, files with digits masked), for a report. */
function fdKinds(pid: number): string {
  const kinds: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/\d+/g, 'N');
    } catch {
      continue;
    }
    kinds[target] = (kinds[target] ?? 0) + 1;
  }
  return JSON.stringify(kinds);
}

function mountCount(dir: string): number {
  return mountsUnder(dir).length;
}

/**
 * Runs the soak: a fresh berthd on a temp dir, `clients` concurrent clients of mixed work for
 * `durationMs` (Content Write ingests and deletes; images, containers, content and snapshots
 * listings; container create and delete; task runs on overlay snapshots through the shim and runc,
 * killed with SIGKILL; event subscribers that stop reading), a Version probe every 20 ms on its
 * own connection, and a row of RSS, fds, mounts, shims and Version latency every `rowMs`.
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const nClients = options.clients ?? 64;
  const warmupMs = options.warmupMs ?? Math.round(options.durationMs * 0.2);
  const rowMs = options.rowMs ?? 10_000;
  const stallMs = options.stallMs ?? 30_000;
  const thinkMs = options.thinkMs ?? 1000;
  const maxBlob = options.maxBlob ?? 256 * 1024;
  const log = options.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const random = rng(options.seed ?? 1);
  const config = options.eventQueueLimit ? `[plugins."io.containerd.event.v1.exchange"]\n  queue_limit = ${options.eventQueueLimit}\n` : '';
  const daemon = options.daemon === 'containerd' ? await ReferenceContainerd.start() : await TestDaemon.start({ logLevel: 'info', config });
  const name = options.daemon ?? 'berthd';
  const pid = daemon.pid!;
  const ops: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const errorSamples: string[] = [];
  let rowOps = 0;
  let rowErrors = 0;
  const control = new AbortController();
  const stop = control.signal;
  // Every sleeping client listens on it.
  setMaxListeners(0, stop);
  const setup = connect(daemon.address);
  try {
    // A committed busybox snapshot for the tasks' overlay rootfs.
    const active = `${BASE}-active`;
    const [m] = (await setup.snapshots.prepare({ snapshotter: SNAPSHOTTER, key: active, parent: '', labels: { [GC_ROOT]: 'soak' } })).mounts;
    populateBusybox(m.source);
    await setup.snapshots.commit({ snapshotter: SNAPSHOTTER, name: BASE, key: active, labels: { [GC_ROOT]: 'soak' } });
    const spec = ociSpec(['/bin/sleep', '1000']);
    // One ingest and one task before the idle figures: the first of each starts what stays up
    // between operations (the layer worker thread, the runtime's sockets).
    await ingest(setup.content, 'soak-prime', randomBytes(4096), { [GC_ROOT]: 'soak' }).then((digest) => setup.content.delete({ digest }));
    await runTask(setup, 'soak-prime', spec, 0);
    await sleep(1000);

    const before = { rssMiB: rssMiB(pid), fds: openFds(pid), mounts: mountCount(daemon.dir) };
    log(`${name} pid ${pid} on ${daemon.dir}; idle: RSS ${before.rssMiB.toFixed(1)} MiB, ${before.fds} fds, ${before.mounts} mounts`);
    log(`${nClients} clients for ${(options.durationMs / 1000).toFixed(0)} s (warm-up ${(warmupMs / 1000).toFixed(0)} s), ${thinkMs} ms between operations`);

    const taskSlots = new Slots(options.taskConcurrency ?? 4);
    const record = async (kind: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
        ops[kind] = (ops[kind] ?? 0) + 1;
        rowOps++;
      } catch (err) {
        if (stop.aborted && kind === 'subscribe') return;
        errors[kind] = (errors[kind] ?? 0) + 1;
        rowErrors++;
        if (errorSamples.length < 10) errorSamples.push(`${kind}: ${(err as Error).message}`);
      }
    };

    let stalledSubscribers = 0;
    const worker = async (i: number) => {
      const c = connect(daemon.address);
      let n = 0;
      try {
        while (!stop.aborted) {
          const id = `c${i}-${n++}`;
          // One client in eight subscribes to everything, reads a little, then stops reading.
          if (i % 8 === 7) {
            await record('subscribe', async () => {
              const ac = new AbortController();
              const hangUp = () => ac.abort();
              stop.addEventListener('abort', hangUp, { once: true });
              const it = c.events.subscribe({ filters: [] }, { signal: ac.signal })[Symbol.asyncIterator]();
              try {
                for (let k = 0; k < 5 && !stop.aborted; k++) await it.next();
                stalledSubscribers++;
                await sleep(stallMs, stop);
              } finally {
                stop.removeEventListener('abort', hangUp);
                ac.abort();
                await it.return?.().catch(() => undefined);
              }
            });
            continue;
          }
          if (n > 1 && thinkMs > 0) await sleep(thinkMs * (0.5 + random()), stop);
          if (stop.aborted) break;
          const r = random();
          if (r < 0.25) {
            await record('ingest', async () => {
              const size = 4096 + Math.floor(random() * (maxBlob - 4096));
              // The gc.root label keeps the collector off the blob until this client deletes it.
              const digest = await ingest(c.content, `soak-${id}`, randomBytes(size), { [GC_ROOT]: 'soak' });
              await c.content.delete({ digest });
            });
          } else if (r < 0.6) {
            const which = Math.floor(random() * 4);
            await record('list', async () => {
              if (which === 0) await c.images.list({ filters: [] });
              else if (which === 1) await c.containers.list({ filters: [] });
              else if (which === 2) for await (const _ of c.content.list({ filters: [] })) void _;
              else for await (const _ of c.snapshots.list({ snapshotter: SNAPSHOTTER, filters: [] })) void _;
            });
          } else if (r < 0.85 || !taskSlots.tryTake()) {
            await record('container', async () => {
              await c.containers.create({ container: runcContainer(id, spec) });
              await c.containers.delete({ id });
            });
          } else {
            await record('task', async () => {
              try {
                await runTask(c, id, spec, Math.floor(random() * 500));
              } finally {
                taskSlots.give();
              }
            });
          }
        }
      } finally {
        c.close();
      }
    };

    const t0 = performance.now();
    const epoch0 = performance.timeOrigin + t0;
    // The Version probe: one call every 20 ms, from a worker thread on its own connection.
    const probe = new VersionProbe(daemon.address, 20);
    const samples = probe.samples;
    const rows: SoakRow[] = [];
    let rssBaselineMiB = 0;
    let lastRowAt = t0;
    let sampleIdx = 0;
    const takeRow = () => {
      const now = performance.now();
      const window = samples.slice(sampleIdx).map(([, ms]) => ms);
      sampleIdx = samples.length;
      const row: SoakRow = {
        t: Math.round((now - t0) / 1000),
        rssMiB: rssMiB(pid),
        fds: openFds(pid),
        mounts: mountCount(daemon.dir),
        shims: shimsOf(daemon.address).length,
        versionP50: percentile(window, 0.5),
        versionP99: percentile(window, 0.99),
        versionMax: percentile(window, 1),
        ops: rowOps,
        errors: rowErrors,
      };
      rowOps = rowErrors = 0;
      lastRowAt = now;
      rows.push(row);
      log(formatRow(row));
    };
    log(ROW_HEADER);
    const filler = async (perSecond: number) => {
      const c = connect(daemon.address);
      const event = { typeUrl: 'soak.Filler', value: Buffer.alloc(4096, 0x66) };
      try {
        while (!stop.aborted) {
          await record('publish', () => c.events.publish({ topic: '/soak/filler', event }));
          await sleep(1000 / perSecond, stop);
        }
      } finally {
        c.close();
      }
    };
    const running = [
      ...Array.from({ length: nClients }, (_, i) => worker(i)),
      ...(options.fillerEventsPerSecond ? [filler(options.fillerEventsPerSecond)] : []),
    ];
    while (performance.now() - t0 < options.durationMs) {
      await sleep(Math.min(250, options.durationMs - (performance.now() - t0)));
      if (!rssBaselineMiB && performance.now() - t0 >= warmupMs) rssBaselineMiB = rssMiB(pid);
      if (performance.now() - lastRowAt >= rowMs) takeRow();
    }
    takeRow();
    const rssEndMiB = rows[rows.length - 1].rssMiB;
    control.abort();
    await Promise.all([probe.stop(), ...running]);
    if (probe.failure) throw new Error(`the Version probe failed: ${probe.failure}`);

    // Idle again: every client closed, every task deleted. The daemon closes the connections
    // as it notices them gone: wait up to 10 s for its fds to come back to the idle count.
    for (let i = 0; i < 40 && openFds(pid) > before.fds; i++) await sleep(250);
    const after = { rssMiB: rssMiB(pid), fds: openFds(pid), mounts: mountCount(daemon.dir), shims: shimsOf(daemon.address).length };
    if (after.fds > before.fds) log(`fds after the run: ${fdKinds(pid)}`);
    const afterWarmup = rows.filter((r) => r.t * 1000 >= warmupMs);
    const perSecond = new Map<number, number[]>();
    for (const [at, ms] of samples) {
      const s = Math.floor((at - epoch0) / 1000);
      if (!perSecond.has(s)) perSecond.set(s, []);
      perSecond.get(s)!.push(ms);
    }
    const { disconnected, dropped } = droppedEvents(daemon.output);
    const report: SoakReport = {
      clients: nClients,
      durationS: Math.round(options.durationMs / 1000),
      rows,
      before,
      after,
      rssBaselineMiB,
      rssMaxAfterWarmupMiB: Math.max(...afterWarmup.map((r) => r.rssMiB), rssEndMiB),
      rssEndMiB,
      rssGrowth: rssEndMiB / rssBaselineMiB - 1,
      versionWorstSecondP99: Math.max(...[...perSecond.values()].map((w) => percentile(w, 0.99))),
      versionP99: percentile(
        samples.map(([, ms]) => ms),
        0.99,
      ),
      versionSamples: samples.length,
      ops,
      errors,
      errorSamples,
      events: { stalledSubscribers, disconnected, dropped },
    };
    log(formatSummary(report));
    return report;
  } finally {
    control.abort();
    setup.close();
    await cleanupShims(daemon.address, daemon.dir);
    await daemon.cleanup();
  }
}

/** One task on its own overlay snapshot: create, start, run for `runMs`, SIGKILL, wait, delete. */
async function runTask(c: Clients, id: string, spec: any, runMs: number): Promise<void> {
  // Its own cgroup: ctr's default spec puts every container in /default, which fails as soon as
  // anything else on the machine has made a child cgroup there.
  spec = { ...spec, linux: { ...spec.linux, cgroupsPath: `/berth-soak-${process.pid}-${id}` } };
  const { mounts } = await c.snapshots.prepare({ snapshotter: SNAPSHOTTER, key: id, parent: BASE, labels: { [GC_ROOT]: 'soak' } });
  try {
    await c.containers.create({ container: runcContainer(id, spec, { snapshotter: SNAPSHOTTER, key: id }) });
    try {
      await c.tasks.create({ containerId: id, rootfs: mounts, stdin: '', stdout: '', stderr: '', terminal: false, runtimePath: '' });
      try {
        await c.tasks.start({ containerId: id, execId: '' });
        await sleep(runMs);
        await c.tasks.kill({ containerId: id, execId: '', signal: 9, all: false });
        await c.tasks.wait({ containerId: id, execId: '' });
      } finally {
        await c.tasks.delete({ containerId: id });
      }
    } finally {
      await c.containers.delete({ id });
    }
  } finally {
    await c.snapshots.remove({ snapshotter: SNAPSHOTTER, key: id });
  }
}

/** The exchange's running totals from the last "fell behind" line of a daemon's log. */
export function droppedEvents(output: string): { disconnected: number; dropped: number } {
  const lines = output.split('\n').filter((l) => l.includes('msg="disconnected event subscriber that fell behind"'));
  const last = lines[lines.length - 1] ?? '';
  const field = (k: string) => Number(new RegExp(`\\b${k}=(\\d+)`).exec(last)?.[1] ?? 0);
  return { disconnected: field('disconnected_total'), dropped: field('dropped_total') };
}

const ROW_HEADER = '    t(s)  RSS(MiB)   fds  mounts  shims  Version p50/p99/max (ms)   ops  errors';

function formatRow(r: SoakRow): string {
  const v = `${r.versionP50.toFixed(1)}/${r.versionP99.toFixed(1)}/${r.versionMax.toFixed(1)}`;
  return `${String(r.t).padStart(8)}  ${r.rssMiB.toFixed(1).padStart(8)}  ${String(r.fds).padStart(4)}  ${String(r.mounts).padStart(6)}  ${String(r.shims).padStart(5)}  ${v.padStart(24)}  ${String(r.ops).padStart(5)}  ${String(r.errors).padStart(6)}`;
}

/** The closing summary of a soak, as printed. */
export function formatSummary(r: SoakReport): string {
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
  return [
    `RSS: ${r.before.rssMiB.toFixed(1)} MiB idle before, ${r.rssBaselineMiB.toFixed(1)} after warm-up, max ${r.rssMaxAfterWarmupMiB.toFixed(1)}, end ${r.rssEndMiB.toFixed(1)} (${pct(r.rssGrowth)}), ${r.after.rssMiB.toFixed(1)} idle after`,
    `fds: ${r.before.fds} idle before, ${r.after.fds} idle after; mounts under the daemon's dir: ${r.before.mounts} before, ${r.after.mounts} after; shims left: ${r.after.shims}`,
    `Version: p99 ${r.versionP99.toFixed(1)} ms over ${r.versionSamples} calls, worst one-second p99 ${r.versionWorstSecondP99.toFixed(1)} ms`,
    `events: ${r.events.stalledSubscribers} subscribers stopped reading; the daemon disconnected ${r.events.disconnected} and dropped ${r.events.dropped} events`,
    `ops: ${Object.entries(r.ops)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; errors: ${Object.entries(r.errors).length ? Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}`,
    ...r.errorSamples.map((s) => `  ${s}`),
  ].join('\n');
}
