import { performance } from 'node:perf_hooks';
import { containers, eventsService, images } from '@berth/api';
import { NamespaceCreate, RUNTIME_SPEC_TYPE_URLS, packAny, packJsonAny, unpackAny } from '@berth/api/events';
import { createClient } from '@berth/grpc';
import type { BenchDaemon } from './daemons';
import type { Workload } from './workloads';
import { median } from './stats';

const ns = { namespace: 'bench' };

async function ctrOk(d: BenchDaemon, args: string[]): Promise<void> {
  const res = await d.ctr(args, ns);
  if (res.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(' ')} failed: ${res.stderr}`);
}

/** Runs `fn` for i = 0..n-1 sequentially and returns ms per call. */
export async function perOp(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return (performance.now() - t0) / n;
}

const digestOf = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;

/** An image record whose target is the i-th made-up manifest digest. */
export function image(name: string, i: number): images.Image {
  return {
    name,
    labels: { bench: 'yes' },
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(i + 1), size: 1234, annotations: {} },
    createdAt: undefined,
    updatedAt: undefined,
  };
}

const spec = packJsonAny(RUNTIME_SPEC_TYPE_URLS.spec, { ociVersion: '1.0.2', process: { args: ['true'] }, root: { path: 'rootfs' } });

/** A container record like ctr's (no task), for create workloads. */
export function container(id: string): containers.Container {
  return {
    id,
    labels: { bench: 'yes' },
    image: 'example.com/bench:1',
    runtime: { name: 'io.containerd.runc.v2', options: undefined },
    spec,
    snapshotter: 'overlayfs',
    snapshotKey: id,
    createdAt: undefined,
    updatedAt: undefined,
    extensions: {},
  };
}

/** Workloads over the snapshot, image, container and event APIs. */
export const API_WORKLOADS: Record<string, Workload> = {
  'snapshots-ctr': {
    name: 'snapshots via ctr',
    unit: 'ms/op',
    lowerIsBetter: true,
    run: async (d) => {
      const n = 100;
      const prepare = await perOp(n, (i) => ctrOk(d, ['snapshots', 'prepare', `a${i}`]));
      const commit = await perOp(n, (i) => ctrOk(d, ['snapshots', 'commit', `c${i}`, `a${i}`]));
      const rm = await perOp(n, (i) => ctrOk(d, ['snapshots', 'rm', `c${i}`]));
      return { 'ctr snapshots prepare': prepare, 'ctr snapshots commit': commit, 'ctr snapshots rm': rm };
    },
  },
  'meta-grpc': {
    name: 'images and containers via one grpc client',
    unit: 'ms/op',
    lowerIsBetter: true,
    run: async (d) => {
      const img = createClient(images.ImagesService, d.address, ns);
      const ctr = createClient(containers.ContainersService, d.address, ns);
      try {
        const n = 200;
        await img.list({ filters: [] });
        const out: Record<string, number> = {};
        out['images create'] = await perOp(n, (i) => img.create({ image: image(`example.com/bench/img${i}:1`, i) }));
        out['images get'] = await perOp(n, (i) => img.get({ name: `example.com/bench/img${i}:1` }));
        out[`images list (${n} images)`] = await perOp(n, () => img.list({ filters: [] }));
        out['containers create'] = await perOp(n, (i) => ctr.create({ container: container(`c${i}`) }));
        out[`containers list (${n} containers)`] = await perOp(n, () => ctr.list({ filters: [] }));
        out['containers delete'] = await perOp(n, (i) => ctr.delete({ id: `c${i}` }));
        const many = 10_000;
        for (let i = 0; i < many; i += 50) {
          await Promise.all(Array.from({ length: 50 }, (_, j) => ctr.create({ container: container(`m${i + j}`) })));
        }
        const t0 = performance.now();
        const listed = (await ctr.list({ filters: [] })).containers.length;
        out[`containers list of ${many} (total ms)`] = performance.now() - t0;
        if (listed !== many) throw new Error(`${d.kind}: listed ${listed} containers, want ${many}`);
        // Untimed: leave the namespace as it was, so that the workload can run again on the
        // same daemon (the mixed workload does).
        for (let i = 0; i < many; i += 50) {
          await Promise.all(Array.from({ length: 50 }, (_, j) => ctr.delete({ id: `m${i + j}` })));
        }
        for (let i = 0; i < n; i += 50) {
          await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => img.delete({ name: `example.com/bench/img${i + j}:1`, sync: false })));
        }
        return out;
      } finally {
        img.close();
        ctr.close();
      }
    },
  },
  events: {
    name: 'events with 10 subscribers',
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d) => {
      const subscribers = 10;
      const pub = createClient(eventsService.EventsService, d.address, { namespace: 'bench' });
      const subs = Array.from({ length: subscribers }, () => createClient(eventsService.EventsService, d.address));
      const ac = new AbortController();
      // Each subscriber counts the events it has seen by sequence number.
      const seen = subs.map(() => new Map<number, number>());
      const waiters = new Map<number, { need: number; done: () => void }>();
      const readers = subs.map(async (s, k) => {
        try {
          for await (const env of s.subscribe({ filters: ['topic=="/bench/e"'] }, { signal: ac.signal })) {
            const seq = Number((unpackAny(env.event!) as { name: string }).name);
            seen[k].set(seq, performance.now());
            const w = waiters.get(seq);
            if (w && --w.need === 0) w.done();
          }
        } catch {
          // Cancelled at the end.
        }
      });
      const publish = (seq: number) =>
        new Promise<void>((resolve, reject) => {
          waiters.set(seq, { need: subscribers, done: resolve });
          pub.publish({ topic: '/bench/e', event: packAny(NamespaceCreate, { name: String(seq), labels: {} }) }).catch(reject);
        });
      try {
        // Wait until every subscriber receives a warm-up event.
        await new Promise((r) => setTimeout(r, 300));
        await publish(0);
        const latencies: number[] = [];
        for (let seq = 1; seq <= 200; seq++) {
          const t0 = performance.now();
          await publish(seq);
          latencies.push(performance.now() - t0);
        }
        const total = 2000;
        const t0 = performance.now();
        const inflight = new Set<Promise<void>>();
        for (let seq = 1000; seq < 1000 + total; seq++) {
          const p = publish(seq).finally(() => inflight.delete(p));
          inflight.add(p);
          if (inflight.size >= 32) await Promise.race(inflight);
        }
        await Promise.all(inflight);
        const ms = performance.now() - t0;
        return {
          'publish-to-receive latency, 10 subscribers (median ms)': median(latencies),
          [`ms per 1000 events delivered to 10 subscribers (${total} events)`]: (ms / total) * 1000,
        };
      } finally {
        ac.abort();
        await Promise.all(readers);
        pub.close();
        for (const s of subs) s.close();
      }
    },
  },
};
