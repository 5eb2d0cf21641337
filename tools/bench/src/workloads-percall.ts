import { containers, eventsService, images, namespaces } from '@berth/api';
import { NamespaceCreate, packAny } from '@berth/api/events';
import { createClient } from '@berth/grpc';
import type { BenchDaemon } from './daemons';
import type { Workload } from './workloads';
import { container, image } from './workloads-api';
import { cpuMs } from './workloads-mixed';

const ns = { namespace: 'bench' };

/** Runs `f(0..n-1)` 50 at a time (untimed setup and teardown). */
async function batched(n: number, f: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => f(i + j)));
}

/**
 * The daemon's CPU time per call, in microseconds, over `n` sequential calls after `warm` calls
 * (JIT and caches): wall times on a shared 2-core machine swing 2x, the daemon's own CPU much
 * less. /proc counts 10 ms ticks, so `n` is chosen to make each figure several hundred ticks.
 */
async function cpuPerCall(d: BenchDaemon, warm: number, n: number, call: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < warm; i++) await call(i);
  const before = cpuMs(d.pid);
  for (let i = 0; i < n; i++) await call(warm + i);
  return ((cpuMs(d.pid) - before) * 1000) / n;
}

const imageName = (i: number) => `example.com/percall/img${i}:1`;

/** Daemon CPU per call of the per-call figures of meta-grpc, ns-grpc and events. */
export const PERCALL_WORKLOADS: Record<string, Workload> = {
  'percall-cpu': {
    name: 'daemon CPU per call',
    unit: 'us/call',
    lowerIsBetter: true,
    run: async (d) => {
      const img = createClient(images.ImagesService, d.address, ns);
      const ctr = createClient(containers.ContainersService, d.address, ns);
      const nss = createClient(namespaces.NamespacesService, d.address, ns);
      const out: Record<string, number> = {};
      try {
        await batched(200, (i) => img.create({ image: image(imageName(i), i) }));
        out['images get'] = await cpuPerCall(d, 500, 3000, (i) => img.get({ name: imageName(i % 200) }));
        await batched(200, (i) => img.delete({ name: imageName(i), sync: false }));

        await batched(1500, (i) => ctr.create({ container: container(`d${i}`) }));
        out['containers delete'] = await cpuPerCall(d, 300, 1200, (i) => ctr.delete({ id: `d${i}` }));

        await batched(1000, (i) => nss.create({ namespace: { name: `percall-${i}`, labels: { a: 'b' } } }));
        out['namespaces list (1000)'] = await cpuPerCall(d, 10, 60, () => nss.list({ filter: '' }));
        await batched(1000, (i) => nss.delete({ name: `percall-${i}` }));

        await batched(10_000, (i) => ctr.create({ container: container(`m${i}`) }));
        out['containers list (10,000)'] = await cpuPerCall(d, 2, 10, () => ctr.list({ filters: [] }));
        await batched(10_000, (i) => ctr.delete({ id: `m${i}` }));

        out['event to 10 subscribers'] = await eventsCpu(d);
        return out;
      } finally {
        img.close();
        ctr.close();
        nss.close();
      }
    },
  },
};

/** Daemon CPU per event published and received by 10 subscribers, one event at a time. */
async function eventsCpu(d: BenchDaemon): Promise<number> {
  const pub = createClient(eventsService.EventsService, d.address, ns);
  const subs = Array.from({ length: 10 }, () => createClient(eventsService.EventsService, d.address));
  const ac = new AbortController();
  let want = 0;
  let got = 0;
  let wake = () => {};
  const readers = subs.map(async (s) => {
    try {
      for await (const _ of s.subscribe({ filters: ['topic=="/bench/percall"'] }, { signal: ac.signal })) if (++got === want) wake();
    } catch {
      // Cancelled at the end.
    }
  });
  try {
    await new Promise((r) => setTimeout(r, 300)); // every subscriber is listening
    const one = (i: number) =>
      new Promise<void>((resolve, reject) => {
        want += subs.length;
        wake = resolve;
        pub.publish({ topic: '/bench/percall', event: packAny(NamespaceCreate, { name: String(i), labels: {} }) }).catch(reject);
      });
    return await cpuPerCall(d, 200, 1500, one);
  } finally {
    ac.abort();
    await Promise.all(readers);
    pub.close();
    for (const s of subs) s.close();
  }
}
