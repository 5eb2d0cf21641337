import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BenchDaemon, rssMiB } from './daemons';
import type { Workload } from './workloads';

let rootfs: string | undefined;

/** A busybox rootfs dir (Debian's busybox-static) for `ctr run --rootfs`, made once per run. */
function busyboxRootfs(): string {
  if (rootfs) return rootfs;
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-rootfs-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(dir, d));
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
  for (const a of ['sh', 'true', 'sleep']) symlinkSync('busybox', join(dir, 'bin', a));
  return (rootfs = dir);
}

async function ctrOk(d: BenchDaemon, args: string[]): Promise<void> {
  const res = await d.ctr(args);
  if (res.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(' ')} failed: ${res.stderr}`);
}

/** Task ids carry the daemon kind: both daemons share runc's state dir /run/containerd/runc/default. */
const tid = (d: BenchDaemon, s: string) => `bench-${d.kind}-${process.pid}-${s}`;

/** Tasks per round, as the issue sets them (independent of --n, which sizes the metadata workloads). */
const TASKS = 20;

/** Workloads that run containers through containerd-shim-runc-v2 and runc. */
export const TASK_WORKLOADS: Record<string, Workload> = {
  'run-rm': {
    name: 'ctr run --rm --rootfs busybox x true (x20, per task)',
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d) => {
      const n = TASKS;
      const fs = busyboxRootfs();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await ctrOk(d, ['run', '--rm', '--rootfs', fs, tid(d, `rm${i}`), '/bin/true']);
      return { 'ctr run --rm true, per task': (performance.now() - t0) / n };
    },
  },
  'run-detached': {
    name: '20 detached sleep tasks: run -d, tasks ls, kill, rm, containers rm (per task), RSS with 20 tasks',
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d) => {
      const n = TASKS;
      const fs = busyboxRootfs();
      const ids = Array.from({ length: n }, (_, i) => tid(d, `d${i}`));
      const t0 = performance.now();
      for (const id of ids) await ctrOk(d, ['run', '-d', '--rootfs', fs, id, '/bin/sleep', '1000']);
      const start = (performance.now() - t0) / n;
      const t1 = performance.now();
      await ctrOk(d, ['tasks', 'ls']);
      const ls = performance.now() - t1;
      const rss = rssMiB(d.pid);
      const t2 = performance.now();
      for (const id of ids) await ctrOk(d, ['tasks', 'kill', '-s', 'SIGKILL', id]);
      for (const id of ids) {
        // ctr refuses to delete a task that has not stopped yet.
        for (let tries = 0; ; tries++) {
          const res = await d.ctr(['tasks', 'rm', id]);
          if (res.code === 0) break;
          if (tries > 100) throw new Error(`${d.kind}: tasks rm ${id}: ${res.stderr}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        await ctrOk(d, ['containers', 'rm', id]);
      }
      const stop = (performance.now() - t2) / n;
      return { 'run -d sleep, per task': start, 'tasks ls with 20 tasks': ls, 'kill + rm + containers rm, per task': stop, 'daemon RSS with 20 tasks (MiB)': rss };
    },
  },
};
