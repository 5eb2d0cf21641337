import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { containers, namespaces } from '@berth/api';
import { createClient } from '@berth/grpc';
import { CTR_PATH, TestDaemon, freePort } from '@berth/testing';
import { BenchDaemon, DaemonKind, type DaemonSetup, rssMiB } from './daemons';
import { API_WORKLOADS, container, perOp } from './workloads-api';
import { median } from './stats';
import { GC_WORKLOADS } from './workloads-gc';
import { PERCALL_WORKLOADS } from './workloads-percall';
import { PULL_WORKLOADS } from './workloads-pull';
import { CRI_WORKLOADS } from './workloads-cri';
import { TASK_WORKLOADS } from './workloads-tasks';
import { UNPACK_WORKLOADS } from './workloads-unpack';
import { cpuMs, mixedWorkload } from './workloads-mixed';

/** A measurement taken on a fresh daemon: name, unit, direction, and the function that measures. */
export interface Workload {
  name: string;
  unit: string;
  lowerIsBetter: boolean;
  /** The daemons it runs on, rotated across rounds; berthd and containerd (1.6) by default. */
  daemons?: readonly DaemonKind[];
  /**
   * Returns one value per figure name (a workload may yield several figures, and a figure may
   * have no value for some daemon).
   */
  run(d: BenchDaemon, n: number): Promise<Record<string, number>>;
  /** Prepares what its daemons need (a registry, a CNI network) once, before the first round. */
  setup?(): Promise<DaemonSetup>;
  /** Releases what the workload kept for the whole run (a registry); called once at the end. */
  teardown?(): Promise<void>;
}

async function ctrOk(d: BenchDaemon, args: string[]): Promise<void> {
  const res = await d.ctr(args);
  if (res.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(' ')} failed: ${res.stderr}`);
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Size of the file the content workloads move. */
const CONTENT_MIB = 256;
let contentFile: { path: string; digest: string } | undefined;

/**
 * Writes (once per bench run) a 256 MiB file of pseudo-random bytes, generated and hashed as a
 * stream, and returns its path and digest. Removed when the process exits.
 */
async function benchFile(): Promise<{ path: string; digest: string }> {
  if (contentFile && existsSync(contentFile.path)) return contentFile;
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'blob');
  const h = createHash('sha256');
  let seed = createHash('sha256').update('bench').digest();
  async function* chunks() {
    for (let i = 0; i < CONTENT_MIB; i++) {
      const chunk = Buffer.alloc(1 << 20);
      for (let o = 0; o < chunk.length; o += 32) {
        seed.copy(chunk, o);
        seed = createHash('sha256').update(seed).digest();
      }
      h.update(chunk);
      yield chunk;
    }
  }
  await pipeline(chunks, createWriteStream(path));
  contentFile = { path, digest: `sha256:${h.digest('hex')}` };
  return contentFile;
}

/** Runs a command with stdin from a file (or nothing) and stdout to /dev/null; throws on failure. */
function run(cmd: string, args: string[], stdinPath?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdinPath ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    if (stdinPath) {
      // A command that stops reading early (ctr finding the blob there already) closes the pipe:
      // its exit status tells, not the EPIPE of the write in flight.
      child.stdin!.on('error', () => undefined);
      createReadStream(stdinPath).pipe(child.stdin!);
    }
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err}`))));
  });
}

const mibps = (ms: number) => CONTENT_MIB / (ms / 1000);

/** `sha256sum` of the same file: the speed limit of any ingest that verifies its digest. */
async function hashLimit(path: string): Promise<number> {
  await run('sha256sum', [path]); // warm the page cache
  return mibps(await timed(() => run('sha256sum', [path])));
}

/**
 * The bench file with a suffix (`variant` as text) after it: a different blob of the same size
 * for each variant, so every ingest really streams (an existing blob would be taken as is).
 * The file's hash state is kept and copied, so each variant's digest costs only the suffix.
 */
let baseHash: ReturnType<typeof createHash> | undefined;
/** The next variant the content workloads ingest (the metrics workload counts its own from 0). */
let nextVariant = 1_000_000;
async function fileVariant(variant: number): Promise<{ path: string; suffix: Buffer; digest: string; size: number }> {
  const file = await benchFile();
  if (!baseHash) {
    const h = createHash('sha256');
    // update(), not a pipe: a piped Hash finalises itself at the end and cannot be copied after.
    for await (const chunk of createReadStream(file.path)) h.update(chunk as Buffer);
    baseHash = h;
  }
  const suffix = Buffer.from(`variant ${variant}\n`);
  const digest = `sha256:${baseHash.copy().update(suffix).digest('hex')}`;
  return { path: file.path, suffix, digest, size: (CONTENT_MIB << 20) + suffix.length };
}

/** Runs `ctr content ingest` of a file variant (file, then suffix, on stdin). */
function ingestVariant(address: string, v: { path: string; suffix: Buffer; digest: string; size: number }, ref: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ['--address', address, 'content', 'ingest', '--expected-digest', v.digest, '--expected-size', String(v.size), ref];
    const child = spawn(CTR_PATH, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const input = createReadStream(v.path);
    child.stdin!.on('error', () => undefined); // see run(): the exit status tells
    input.pipe(child.stdin!, { end: false });
    input.once('end', () => child.stdin!.end(v.suffix));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ctr ${args.join(' ')} failed (${code}): ${err}`))));
  });
}

/**
 * What `plugin_modules` costs at startup: berthd's start-to-ready (spawn to the boot line, which
 * comes after the socket is bound) without modules and with `@berth/example-plugin`, 4 starts
 * each after a warm-up of each, in the order off on on off on off off on; the medians and the
 * overhead in %. The bound is 5%; on a loaded machine single starts swing more than that.
 */
const pluginModulesOverhead: Workload = {
  name: 'plugin_modules overhead (berthd start-to-ready without vs with one module)',
  unit: 'as named',
  lowerIsBetter: true,
  daemons: ['berthd'],
  run: async () => {
    const start = async (side: 'off' | 'on') => {
      const t0 = performance.now();
      const d = await TestDaemon.start({ logLevel: 'info', config: side === 'on' ? 'plugin_modules = ["@berth/example-plugin"]\n' : '' });
      const ms = performance.now() - t0;
      await d.cleanup();
      return ms;
    };
    await start('off');
    await start('on');
    const runs: Array<['off' | 'on', number]> = [];
    for (const side of ['off', 'on', 'on', 'off', 'on', 'off', 'off', 'on'] as const) runs.push([side, await start(side)]);
    const of = (side: 'off' | 'on') => median(runs.filter(([s]) => s === side).map(([, ms]) => ms));
    const off = of('off');
    const on = of('on');
    return { 'start-to-ready ms, no modules': off, 'start-to-ready ms, one module': on, 'overhead %': (100 * (on - off)) / off };
  },
};

/**
 * What Prometheus metrics cost: the workload's berthd (no [metrics]) against a second berthd
 * started beside it with `[metrics] address`. Each measure runs 4 times on each, in the order
 * off on on off on off off on (after one untimed warm-up on each), and the median of each
 * side's 4 is kept, so that neither gets the warmer machine or the page cache more often: ctr content ingest of 256 MiB (a different blob each time), and 500
 * Containers.Create through one gRPC client. Each is taken as wall time and as the daemon's own
 * CPU time (from /proc), which other load on the machine disturbs less. Overhead =
 * (on - off) / off of the cost; a negative figure is noise. A scrape of /v1/metrics is measured
 * apart (daemon CPU per scrape): its cost depends on how often Prometheus scrapes.
 */
const metricsOverhead: Workload = {
  name: 'metrics overhead (berthd without vs with [metrics])',
  unit: 'as named',
  lowerIsBetter: true,
  daemons: ['berthd'],
  run: async (off) => {
    const address = `127.0.0.1:${await freePort()}`;
    const on = await TestDaemon.start({ logLevel: 'info', config: `[metrics]\naddress = "${address}"\n` });
    const daemons = { off: { address: off.address, pid: off.pid }, on: { address: on.address, pid: on.pid! } };
    type Side = keyof typeof daemons;
    const clients = {
      off: createClient(containers.ContainersService, off.address, { namespace: 'bench' }),
      on: createClient(containers.ContainersService, on.address, { namespace: 'bench' }),
    };
    try {
      let variant = 0;
      const ingest = async (side: Side) => {
        const d = daemons[side];
        const v = await fileVariant(variant++);
        const c0 = cpuMs(d.pid);
        const ms = await timed(() => ingestVariant(d.address, v, `bench-${variant}`));
        return { speed: mibps(ms), cpu: cpuMs(d.pid) - c0 };
      };
      const creates = 500;
      let next = 0;
      const create = async (side: Side) => {
        const d = daemons[side];
        const base = next;
        next += creates;
        const c0 = cpuMs(d.pid);
        const ms = await perOp(creates, (i) => clients[side].create({ container: container(`c${base + i}`) }));
        return { speed: ms, cpu: ((cpuMs(d.pid) - c0) * 1000) / creates };
      };
      // One untimed warm-up each, then 8 runs in a balanced order; the median of each side's 4.
      const alternating = async (fn: (side: Side) => Promise<{ speed: number; cpu: number }>) => {
        await fn('off');
        await fn('on');
        const runs: Array<[Side, { speed: number; cpu: number }]> = [];
        for (const side of ['off', 'on', 'on', 'off', 'on', 'off', 'off', 'on'] as const) runs.push([side, await fn(side)]);
        const of = (side: Side, k: 'speed' | 'cpu') => median(runs.filter(([s]) => s === side).map(([, r]) => r[k]));
        return { off: { speed: of('off', 'speed'), cpu: of('off', 'cpu') }, on: { speed: of('on', 'speed'), cpu: of('on', 'cpu') } };
      };
      const ing = await alternating(ingest);
      const cr = await alternating(create);
      const scrapes = 20;
      const s0 = cpuMs(daemons.on.pid);
      for (let i = 0; i < scrapes; i++) await (await fetch(`http://${address}/v1/metrics`)).text();
      const scrapeCpu = (cpuMs(daemons.on.pid) - s0) / scrapes;
      const pct = (a: number, b: number) => (100 * (b - a)) / a;
      process.stderr.write(
        `  ingest off ${ing.off.speed.toFixed(0)} MiB/s ${ing.off.cpu} ms cpu, on ${ing.on.speed.toFixed(0)} MiB/s ${ing.on.cpu} ms cpu; ` +
          `create off ${cr.off.speed.toFixed(3)} ms ${cr.off.cpu.toFixed(0)} us cpu, on ${cr.on.speed.toFixed(3)} ms ${cr.on.cpu.toFixed(0)} us cpu; scrape ${scrapeCpu.toFixed(1)} ms cpu\n`,
      );
      return {
        'ingest MiB/s, metrics off': ing.off.speed,
        'ingest MiB/s, metrics on': ing.on.speed,
        'ingest wall time overhead %': pct(1 / ing.off.speed, 1 / ing.on.speed),
        'ingest daemon CPU ms, metrics off': ing.off.cpu,
        'ingest daemon CPU ms, metrics on': ing.on.cpu,
        'ingest daemon CPU overhead %': pct(ing.off.cpu, ing.on.cpu),
        'containers create ms/op, metrics off': cr.off.speed,
        'containers create ms/op, metrics on': cr.on.speed,
        'containers create wall time overhead %': pct(cr.off.speed, cr.on.speed),
        'containers create daemon CPU us/op, metrics off': cr.off.cpu,
        'containers create daemon CPU us/op, metrics on': cr.on.cpu,
        'containers create daemon CPU overhead %': pct(cr.off.cpu, cr.on.cpu),
        'one scrape of /v1/metrics, daemon CPU ms': scrapeCpu,
      };
    } finally {
      clients.off.close();
      clients.on.close();
      await on.cleanup();
    }
  },
};

export const WORKLOADS: Record<string, Workload> = {
  ...API_WORKLOADS,
  ...PERCALL_WORKLOADS,
  ...GC_WORKLOADS,
  ...TASK_WORKLOADS,
  ...UNPACK_WORKLOADS,
  ...PULL_WORKLOADS,
  ...CRI_WORKLOADS,
  'content-ingest': {
    name: 'ctr content ingest (256 MiB from stdin)',
    unit: 'MiB/s',
    lowerIsBetter: false,
    run: async (d) => {
      const file = await benchFile();
      const limit = await hashLimit(file.path);
      // A blob of its own per run: one removed earlier may linger until the next collection,
      // and a writer for it then resumes at its end, which a pipe cannot seek to (in containerd too).
      const v = await fileVariant(nextVariant++);
      const ms = await timed(() => ingestVariant(d.address, v, 'bench-ingest'));
      const speed = mibps(ms);
      await run(CTR_PATH, ['--address', d.address, 'content', 'rm', v.digest]); // untimed
      process.stderr.write(`  ${d.kind} ingest ${speed.toFixed(0)} MiB/s, sha256sum ${limit.toFixed(0)} MiB/s: ${((100 * speed) / limit).toFixed(0)}% of the hashing limit\n`);
      return { 'ctr content ingest 256 MiB': speed, 'sha256sum 256 MiB (limit)': limit, 'ingest % of sha256sum': (100 * speed) / limit };
    },
  },
  'content-get': {
    name: 'ctr content get (256 MiB to /dev/null)',
    unit: 'MiB/s',
    lowerIsBetter: false,
    run: async (d) => {
      const file = await benchFile();
      const v = await fileVariant(nextVariant++); // see content-ingest
      await ingestVariant(d.address, v, 'bench-get');
      const get = ['--address', d.address, 'content', 'get', v.digest];
      await run(CTR_PATH, get); // warm up (page cache, code paths)
      const cpuBefore = cpuMs(d.pid);
      const speed = mibps(await timed(() => run(CTR_PATH, get)));
      const cpu = cpuMs(d.pid) - cpuBefore;
      const limit = await hashLimit(file.path);
      await run(CTR_PATH, ['--address', d.address, 'content', 'rm', v.digest]);
      process.stderr.write(`  ${d.kind} get ${speed.toFixed(0)} MiB/s (sha256sum ${limit.toFixed(0)} MiB/s)\n`);
      return { 'ctr content get 256 MiB': speed, 'daemon CPU ms per get of 256 MiB': cpu };
    },
  },
  'cli-version': {
    name: 'berth version (the CLI from start to printed, against the daemon)',
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d) => {
      // The CLI's own cost, the same against either daemon: beside it Go's ctr, and Node's bare
      // start, run in turn with berth version so that "over node" pairs runs under the same load.
      const berth = join(__dirname, '../../../apps/berth/bin/berth');
      const commands: Array<[string, string, string[]]> = [
        ['berth version', process.execPath, [berth, '--address', d.address, 'version']],
        ['ctr version', CTR_PATH, ['--address', d.address, 'version']],
        ['node -e 0', process.execPath, ['-e', '0']],
      ];
      for (const [, cmd, args] of commands) await run(cmd, args); // warm the page cache
      const ms = new Map<string, number[]>(commands.map(([k]) => [k, []]));
      for (let i = 0; i < 7; i++) for (const [k, cmd, args] of commands) ms.get(k)!.push(await timed(() => run(cmd, args)));
      const over = ms.get('berth version')!.map((t, i) => t - ms.get('node -e 0')![i]!);
      return { ...Object.fromEntries([...ms].map(([k, v]) => [k, median(v)])), 'berth version over node -e 0': median(over) };
    },
  },
  start: {
    name: 'start-to-ready',
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d) => ({ 'start-to-ready': d.startMs, 'start CPU': d.startCpuMs }),
  },
  rss: {
    name: 'idle RSS',
    unit: 'MiB',
    lowerIsBetter: true,
    run: async (d) => {
      await new Promise((r) => setTimeout(r, 1000));
      const early = rssMiB(d.pid);
      // Node gives back what its start left behind when V8's memory reducer runs, 8 s after the
      // start (9.5 s under load); the daemon's lasting idle figure is the later one.
      await new Promise((r) => setTimeout(r, 14_000));
      return { 'idle RSS': early, 'idle RSS after 15 s': rssMiB(d.pid) };
    },
  },
  'ns-ctr': {
    name: 'namespaces via ctr',
    unit: 'ms/op',
    lowerIsBetter: true,
    run: async (d, n) => {
      const names = Array.from({ length: n }, (_, i) => `bench-${i}`);
      const create = await timed(async () => {
        for (const ns of names) await ctrOk(d, ['namespaces', 'create', ns, 'a=b']);
      });
      const label = await timed(async () => {
        for (const ns of names) await ctrOk(d, ['namespaces', 'label', ns, 'a=c']);
      });
      const list = await timed(() => ctrOk(d, ['namespaces', 'ls']));
      const remove = await timed(async () => {
        for (const ns of names) await ctrOk(d, ['namespaces', 'rm', ns]);
      });
      return {
        'ctr ns create': create / n,
        'ctr ns label': label / n,
        [`ctr ns ls (${n} namespaces, total ms)`]: list,
        'ctr ns rm': remove / n,
      };
    },
  },
  'ns-grpc': {
    name: 'namespaces via one grpc client',
    unit: 'ms/op',
    lowerIsBetter: true,
    run: async (d, n) => {
      const c = createClient(namespaces.NamespacesService, d.address, { namespace: 'default' });
      try {
        const names = Array.from({ length: n }, (_, i) => `grpc-${i}`);
        await c.get({ name: 'warmup' });
        const create = await timed(async () => {
          for (const name of names) await c.create({ namespace: { name, labels: { a: 'b' } } });
        });
        const label = await timed(async () => {
          for (const name of names) await c.update({ namespace: { name, labels: { a: 'c' } }, updateMask: ['labels.a'] });
        });
        const list = await timed(async () => {
          const all = (await c.list({ filter: '' })).namespaces;
          if (all.length < n) throw new Error(`${d.kind}: listed ${all.length} namespaces, want ${n}`);
        });
        const remove = await timed(async () => {
          for (const name of names) await c.delete({ name });
        });
        return {
          'grpc ns create': create / n,
          'grpc ns update label': label / n,
          [`grpc ns list (${n} namespaces, total ms)`]: list,
          'grpc ns delete': remove / n,
        };
      } finally {
        c.close();
      }
    },
  },
  'metrics-overhead': metricsOverhead,
  'plugin-modules-overhead': pluginModulesOverhead,
};
WORKLOADS.mixed = mixedWorkload(WORKLOADS);
