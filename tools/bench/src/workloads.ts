import { performance } from 'node:perf_hooks';
import { namespaces } from '@berth/api';
import { createClient } from '@berth/grpc';
import { BenchDaemon, rssMiB } from './daemons';

/** A measurement taken on a fresh daemon: name, unit, direction, and the function that measures. */
export interface Workload {
  name: string;
  unit: string;
  lowerIsBetter: boolean;
  /** Returns one value per figure name (a workload may yield several figures). */
  run(d: BenchDaemon, n: number): Promise<Record<string, number>>;
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

export const WORKLOADS: Record<string, Workload> = {
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
