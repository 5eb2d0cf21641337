import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { namespaces } from '@berth/api';
import { createClient } from '@berth/grpc';
import { CTR_PATH } from '@berth/testing';
import { BenchDaemon, DaemonKind, rssMiB } from './daemons';
import { API_WORKLOADS } from './workloads-api';
import { GC_WORKLOADS } from './workloads-gc';
import { PULL_WORKLOADS } from './workloads-pull';
import { TASK_WORKLOADS } from './workloads-tasks';
import { UNPACK_WORKLOADS } from './workloads-unpack';

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
    if (stdinPath) createReadStream(stdinPath).pipe(child.stdin!);
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

export const WORKLOADS: Record<string, Workload> = {
  ...API_WORKLOADS,
  ...GC_WORKLOADS,
  ...TASK_WORKLOADS,
  ...UNPACK_WORKLOADS,
  ...PULL_WORKLOADS,
  'content-ingest': {
    name: 'ctr content ingest (256 MiB from stdin)',
    unit: 'MiB/s',
    lowerIsBetter: false,
    run: async (d) => {
      const file = await benchFile();
      const limit = await hashLimit(file.path);
      const ctr = (ref: string) => ['--address', d.address, 'content', 'ingest', '--expected-digest', file.digest, '--expected-size', String(CONTENT_MIB << 20), ref];
      const ms = await timed(() => run(CTR_PATH, ctr('bench-ingest'), file.path));
      const speed = mibps(ms);
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
      await run(CTR_PATH, ['--address', d.address, 'content', 'ingest', '--expected-digest', file.digest, 'bench-get'], file.path);
      const get = ['--address', d.address, 'content', 'get', file.digest];
      await run(CTR_PATH, get); // warm up (page cache, code paths)
      const speed = mibps(await timed(() => run(CTR_PATH, get)));
      const limit = await hashLimit(file.path);
      process.stderr.write(`  ${d.kind} get ${speed.toFixed(0)} MiB/s (sha256sum ${limit.toFixed(0)} MiB/s)\n`);
      return { 'ctr content get 256 MiB': speed };
    },
  },
  start: {
    name: 'start-to-ready',
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d) => ({ 'start-to-ready': d.startMs }),
  },
  rss: {
    name: 'idle RSS',
    unit: 'MiB',
    lowerIsBetter: true,
    run: async (d) => {
      await new Promise((r) => setTimeout(r, 1000));
      return { 'idle RSS': rssMiB(d.pid) };
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
};
