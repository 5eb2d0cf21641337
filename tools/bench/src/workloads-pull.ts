import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type BuiltImage, type ImageSpec, buildImage, busyboxSpec, generatedSpec } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { CTR2_PATH, CTR_PATH, TestRegistry, runCtr } from '@berth/testing';
import { type BenchDaemon, type DaemonKind, startDaemon } from './daemons';
import type { Workload } from './workloads';

/*
 * Pull and push through a registry on loopback (Debian's docker-registry), on berthd, containerd
 * 1.6 and containerd 2.x. berthd and containerd 2.x are driven by ctr 2.x (the Transfer API),
 * containerd 1.6 by its stock ctr (a client-side pull: the client fetches into the Content API,
 * then unpacks through Diff and Snapshots); berthd is also driven by the stock ctr, as separate
 * figures. Every timed command runs on a fresh daemon: content is shared between namespaces, so
 * a second pull on the same daemon would fetch nothing.
 */

/** The images: busybox and three generated images of incompressible 1 MiB files, gzip layers. */
const IMAGES = {
  busybox: { label: 'busybox', spec: () => busyboxSpec() },
  '5x40': { label: '5 x 40 MiB', spec: () => generatedSpec({ layers: 5, totalMiB: 200 }) },
  '20small': { label: '20 x 1 MiB', spec: () => generatedSpec({ layers: 20, totalMiB: 20 }) },
  '500': { label: '1 x 500 MiB', spec: () => generatedSpec({ layers: 1, totalMiB: 500 }) },
  // Pulled first on the daemon of a warm figure: no blob in common with the images above.
  warmup: { label: 'warm-up, 2 x 8 MiB', spec: () => generatedSpec({ layers: 2, totalMiB: 16 }) },
} satisfies Record<string, { label: string; spec: () => ImageSpec }>;
type ImageKey = keyof typeof IMAGES;

/** A seeded image: its reference in the registry, its layer count, and the host to push to. */
interface Seeded {
  ref: string;
  layers: number;
  /** The registry as `localhost:<port>` (see {@link pushWorkload}). */
  pushHost: string;
}

/** ctr 2.x (Transfer for image commands) or the stock ctr 1.6 (client-side pull and push). */
type Client = 'ctr2' | 'ctr';

/** The registry of this bench run, started on first use; each image pushed into it at most once. */
let registry: Promise<TestRegistry> | undefined;
const seeded = new Map<ImageKey, Promise<Seeded>>();

function theRegistry(): Promise<TestRegistry> {
  registry ??= TestRegistry.start();
  return registry;
}

async function stopRegistry(): Promise<void> {
  const r = registry;
  registry = undefined;
  seeded.clear();
  await (await r?.catch(() => undefined))?.stop();
}

/** Pushes a built image's blobs and manifest to `repo:tag` of a plain-HTTP registry. */
export async function pushBuilt(ref: string, img: BuiltImage): Promise<void> {
  const repo = ref.slice(0, ref.lastIndexOf(':'));
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
  try {
    for (const d of [...img.layers, img.config]) await client.push(repo, d, img.blobs.get(d.digest)!);
    await client.push(ref, img.manifest, img.blobs.get(img.manifest.digest)!);
  } finally {
    await client.close();
  }
}

/** Builds an image (gzip layers, deterministic) and pushes it into the registry as `bench/<key>:1`. */
function image(key: ImageKey): Promise<Seeded> {
  let p = seeded.get(key);
  if (!p) {
    p = (async () => {
      const r = await theRegistry();
      const t0 = performance.now();
      const img = await buildImage(IMAGES[key].spec());
      const repo = `${r.host}/bench/${key}`;
      await pushBuilt(`${repo}:1`, img);
      const mib = img.layers.reduce((s, l) => s + l.size, 0) / (1 << 20);
      process.stderr.write(`  seeded ${repo}:1 (${img.layers.length} layers, ${mib.toFixed(1)} MiB compressed) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      return { ref: `${repo}:1`, layers: img.layers.length, pushHost: `localhost:${r.host.split(':')[1]}` };
    })();
    seeded.set(key, p);
  }
  return p;
}

async function ctrOk(d: BenchDaemon, client: Client, args: string[], namespace = 'bench'): Promise<string> {
  const res = await runCtr(d.address, args, { ctr: client === 'ctr2' ? CTR2_PATH : CTR_PATH, namespace, timeoutMs: 900_000 });
  if (res.code !== 0) throw new Error(`${d.kind}: ${client} ${args.join(' ')} failed (${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** Seconds one ctr command takes (its wall time, process start included). */
async function timedCtr(d: BenchDaemon, client: Client, args: string[], namespace = 'bench'): Promise<number> {
  const t0 = performance.now();
  await ctrOk(d, client, args, namespace);
  return (performance.now() - t0) / 1000;
}

/** Blobs in the bench namespace. */
async function blobCount(d: BenchDaemon): Promise<number> {
  return (await ctrOk(d, 'ctr', ['content', 'ls', '-q'])).split('\n').filter(Boolean).length;
}

/** Snapshots in the bench namespace (the rows of `ctr snapshots ls` after its header). */
async function snapshotCount(d: BenchDaemon, namespace = 'bench'): Promise<number> {
  return (await ctrOk(d, 'ctr', ['snapshots', 'ls'], namespace)).split('\n').filter(Boolean).length - 1;
}

/** Runs `fn` on `d` when given, else on a fresh daemon of `kind` that is removed afterwards. */
async function onDaemon<T>(kind: DaemonKind, d: BenchDaemon | undefined, fn: (d: BenchDaemon) => Promise<T>): Promise<T> {
  const daemon = d ?? (await startDaemon(kind));
  try {
    return await fn(daemon);
  } finally {
    if (!d) await daemon.cleanup();
  }
}

/**
 * Content only: ctr 2.x `images pull --all-platforms` (Transfer with no unpack) or ctr 1.6
 * `content fetch`. Checks that nothing was unpacked.
 */
async function fetchOnly(d: BenchDaemon, client: Client, img: Seeded): Promise<number> {
  const args = client === 'ctr2' ? ['images', 'pull', '--plain-http', '--all-platforms', img.ref] : ['content', 'fetch', '--plain-http', img.ref];
  const s = await timedCtr(d, client, args);
  const blobs = await blobCount(d);
  const snapshots = await snapshotCount(d);
  if (blobs < img.layers + 2 || snapshots > 0) throw new Error(`${d.kind}: ${client} fetch left ${blobs} blobs and ${snapshots} snapshots`);
  return s;
}

/** `images pull --plain-http` (fetch and unpack). Checks that every layer was unpacked. */
async function pullUnpack(d: BenchDaemon, client: Client, img: Seeded, namespace = 'bench'): Promise<number> {
  const s = await timedCtr(d, client, ['images', 'pull', '--plain-http', img.ref], namespace);
  const snapshots = await snapshotCount(d, namespace);
  if (snapshots < img.layers) throw new Error(`${d.kind}: ${client} pull left ${snapshots} snapshots for ${img.layers} layers`);
  return s;
}

/**
 * Pull+unpack on a daemon that has pulled before: a fresh daemon pulls the warm-up image (in
 * another namespace, no blob in common), then the timed pull runs. This is a long-running
 * daemon's figure: the code of the pull path is loaded and compiled, which a fresh berthd does
 * during its first pull and a Go daemon never needs.
 */
async function warmPullUnpack(kind: DaemonKind, client: Client, img: Seeded): Promise<number> {
  const warmup = await image('warmup');
  return onDaemon(kind, undefined, async (x) => {
    await pullUnpack(x, client, warmup, 'warmup');
    return pullUnpack(x, client, img);
  });
}

/**
 * Pull of one image from the loopback registry, each measurement on a fresh daemon: fetch (content
 * only), pull+unpack, and their difference, the time unpacking adds; then pull+unpack again on a
 * warm daemon (see {@link warmPullUnpack}). berthd and containerd 2.x
 * through ctr 2.x's Transfer pull, containerd 1.6 through its stock ctr; the `berthd by ctr 1.6`
 * figures are berthd under the stock ctr's client-side pull, next to the same containerd 1.6 values.
 */
function pullWorkload(key: ImageKey): Workload {
  const label = IMAGES[key].label;
  return {
    name: `pull ${label}`,
    unit: 's',
    lowerIsBetter: true,
    daemons: ['berthd', 'containerd', 'containerd2'],
    teardown: stopRegistry,
    run: async (d) => {
      const img = await image(key);
      const figures = ([fetch, pull, warm]: readonly [number, number, number], suffix = '') => ({
        [`pull ${label}: fetch${suffix}`]: fetch,
        [`pull ${label}: pull+unpack${suffix}`]: pull,
        [`pull ${label}: unpack (pull - fetch)${suffix}`]: pull - fetch,
        [`pull ${label}: pull+unpack, warm daemon${suffix}`]: warm,
      });
      const measure = async (client: Client, first?: BenchDaemon) => {
        const fetch = await onDaemon(d.kind, first, (x) => fetchOnly(x, client, img));
        const pull = await onDaemon(d.kind, undefined, (x) => pullUnpack(x, client, img));
        const warm = await warmPullUnpack(d.kind, client, img);
        return [fetch, pull, warm] as const;
      };
      if (d.kind === 'containerd') {
        const m = await measure('ctr', d);
        return { ...figures(m), ...figures(m, ', berthd by ctr 1.6') };
      }
      const m = await measure('ctr2', d);
      if (d.kind === 'containerd2') return figures(m);
      return { ...figures(m), ...figures(await measure('ctr'), ', berthd by ctr 1.6') };
    },
  };
}

/**
 * Push of a pulled image to a new repository. It is pushed through `localhost:<port>`, not the
 * `127.0.0.1:<port>` it was pulled from, so that no blob has a distribution source on the
 * destination host and every layer is uploaded rather than mounted from the source repository.
 */
function pushWorkload(key: ImageKey): Workload {
  const label = IMAGES[key].label;
  const push = async (d: BenchDaemon, client: Client, img: Seeded) => {
    await ctrOk(d, client, ['images', 'pull', '--plain-http', img.ref]);
    const remote = `${img.pushHost}/bench/push-${d.kind}-${client}-${randomUUID().slice(0, 8)}:1`;
    return timedCtr(d, client, ['images', 'push', '--plain-http', remote, img.ref]);
  };
  return {
    name: `push ${label}`,
    unit: 's',
    lowerIsBetter: true,
    daemons: ['berthd', 'containerd', 'containerd2'],
    teardown: stopRegistry,
    run: async (d) => {
      const img = await image(key);
      const name = `push ${label}`;
      if (d.kind === 'containerd') {
        const s = await push(d, 'ctr', img);
        return { [name]: s, [`${name}, berthd by ctr 1.6`]: s };
      }
      const s = await push(d, 'ctr2', img);
      if (d.kind === 'containerd2') return { [name]: s };
      return { [name]: s, [`${name}, berthd by ctr 1.6`]: await onDaemon('berthd', undefined, (x) => push(x, 'ctr', img)) };
    },
  };
}

export const PULL_WORKLOADS: Record<string, Workload> = {
  'pull-busybox': pullWorkload('busybox'),
  'pull-5x40': pullWorkload('5x40'),
  'pull-20small': pullWorkload('20small'),
  'pull-500': pullWorkload('500'),
  'push-5x40': pushWorkload('5x40'),
};
