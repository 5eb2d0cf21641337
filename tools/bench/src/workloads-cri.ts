import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ContainerConfig, ContainerFilter, ImageServiceService, ImageSpec, PodSandboxConfig, RuntimeServiceService } from '@berth/api/cri';
import { createClient } from '@berth/grpc';
import { type BenchDaemon, type DaemonSetup, ownCpuMs } from './daemons';
import { median } from './stats';
import type { Workload } from './workloads';

/*
 * Kubernetes' path through the CRI: berthd's CRI plugin against containerd 1.6.20's in
 * tools/cri-conformance's world: one private CNI bridge network (the pods' traffic stays in their
 * namespaces and on the bridge), critest's busybox and the catatonit pause image from a loopback
 * registry through hosts.toml.
 * The calls are made through one gRPC client, as kubelet makes them, so that no crictl start is
 * in the figures.
 */

const SECTION = 'plugins."io.containerd.grpc.v1.cri"';
/** Both daemons' pods go under this cgroup parent, removed when the run ends. */
const CGROUP_PARENT = `/berth-bench-cri-${process.pid}`;
/** A container that ends at once on SIGTERM, so StopContainer takes the stop signal's path. */
const COMMAND = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];
/** critest's busybox, which the conformance world mirrors. */
const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';

/** The conformance tool's world: its registry of look-alike images, hosts.toml, a CNI bridge. */
type ConformanceWorld = import('@berth/cri-conformance/dist/world').World;

let world: Promise<{ world: ConformanceWorld; setup: DaemonSetup }> | undefined;

/** The registry, hosts.toml and CNI network of this run, made once (loaded only by these workloads). */
function criWorld(): Promise<{ world: ConformanceWorld; setup: DaemonSetup }> {
  world ??= (async () => {
    const { startWorld } = require('@berth/cri-conformance/dist/world') as typeof import('@berth/cri-conformance/dist/world');
    const w = await startWorld();
    // containerd 1.6 keeps its network namespaces under its own state dir (berthd ignores the key).
    const config = w.criConfig.replace('restrict_oom_score_adj = true\n', 'restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n');
    return { world: w, setup: { config, cri: true } };
  })();
  return world;
}

async function teardown(): Promise<void> {
  const w = world;
  world = undefined;
  await (await w?.catch(() => undefined))?.world.cleanup();
  for (const c of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    try {
      rmdirSync(join('/sys/fs/cgroup', c, CGROUP_PARENT));
    } catch {
      /* absent, or not empty: left for a look */
    }
  }
}

type Runtime = ReturnType<typeof createClient<typeof RuntimeServiceService>>;

/** A pod's config: its own name and log directory, under the run's cgroup parent. */
function podConfig(dir: string, kind: string, i: number): PodSandboxConfig {
  // kubelet makes the pod's log directory before it asks for the pod; the runtime only writes there.
  const logDirectory = join(dir, 'logs', kind, String(i));
  mkdirSync(logDirectory, { recursive: true });
  return PodSandboxConfig.fromPartial({
    metadata: { name: `bench-${i}`, namespace: 'bench', uid: `${kind}-${process.pid}-${i}`, attempt: 0 },
    hostname: `bench-${i}`,
    logDirectory,
    linux: { cgroupParent: CGROUP_PARENT },
  });
}

function containerConfig(name: string): ContainerConfig {
  return ContainerConfig.fromPartial({ metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, command: COMMAND, logPath: `${name}.log`, labels: { name }, linux: {} });
}

/** Connects to the daemon's CRI, pulls busybox (untimed) and hands both clients to `fn`. */
async function withCri<T>(d: BenchDaemon, fn: (runtime: Runtime, dir: string) => Promise<T>): Promise<T> {
  const { world: w } = await criWorld();
  const runtime = createClient(RuntimeServiceService, d.address);
  const images = createClient(ImageServiceService, d.address);
  try {
    await images.pullImage({ image: ImageSpec.fromPartial({ image: BUSYBOX }) });
    return await fn(runtime, w.dir);
  } finally {
    // Whatever a failed round left: its pods, stopped and removed, so that no shim outlives it.
    const listed = await runtime.listPodSandbox({}).catch((err: Error) => {
      process.stderr.write(`bench: listing pods to clean up: ${err.message}\n`);
      return { items: [] };
    });
    for (const p of listed.items) {
      const report = (err: Error) => process.stderr.write(`bench: cleaning up pod ${p.id}: ${err.message}\n`);
      await runtime.stopPodSandbox({ podSandboxId: p.id }).catch(report);
      await runtime.removePodSandbox({ podSandboxId: p.id }).catch(report);
    }
    runtime.close();
    images.close();
  }
}

const ms = async (fn: () => Promise<unknown>): Promise<number> => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};

export const CRI_WORKLOADS: Record<string, Workload> = {
  'cri-pods': {
    name: '20 pods, each run with one container started, then stopped and removed (CRI)',
    unit: 'ms',
    lowerIsBetter: true,
    setup: async () => (await criWorld()).setup,
    teardown,
    run: (d) =>
      withCri(d, async (runtime, dir) => {
        const pods: Array<{ pod: string; container: string }> = [];
        // Each call's own time too, so that a slow total says which step it comes from.
        const calls = new Map<string, number[]>();
        const timed = async <T>(call: string, fn: () => Promise<T>): Promise<T> => {
          const t0 = performance.now();
          const out = await fn();
          calls.set(call, [...(calls.get(call) ?? []), performance.now() - t0]);
          return out;
        };
        const cpu0 = ownCpuMs(d.pid);
        const up = await ms(async () => {
          for (let i = 0; i < 20; i++) {
            const config = podConfig(dir, d.kind, i);
            const { podSandboxId } = await timed('RunPodSandbox', () => runtime.runPodSandbox({ config, runtimeHandler: '' }));
            const { containerId } = await timed('CreateContainer', () => runtime.createContainer({ podSandboxId, config: containerConfig('app'), sandboxConfig: config }));
            await timed('StartContainer', () => runtime.startContainer({ containerId }));
            pods.push({ pod: podSandboxId, container: containerId });
          }
        });
        const cpuUp = ownCpuMs(d.pid) - cpu0;
        const down = await ms(async () => {
          for (const { pod, container } of pods) {
            await timed('StopContainer', () => runtime.stopContainer({ containerId: container, timeout: 10 }));
            await timed('RemoveContainer', () => runtime.removeContainer({ containerId: container }));
            await timed('StopPodSandbox', () => runtime.stopPodSandbox({ podSandboxId: pod }));
            await timed('RemovePodSandbox', () => runtime.removePodSandbox({ podSandboxId: pod }));
          }
        });
        const perCall = Object.fromEntries([...calls].map(([call, times]) => [`${call} (median ms)`, median(times)]));
        return { 'run 20 pods with a started container (total ms)': up, 'stop and remove them (total ms)': down, '20 pods end to end (total ms)': up + down, ...perCall, "daemon's own CPU over the run (ms)": cpuUp };
      }),
  },
  'cri-list': {
    name: 'ListContainers with 100 containers (10 pods of 10; CRI)',
    unit: 'ms/op',
    lowerIsBetter: true,
    setup: async () => (await criWorld()).setup,
    teardown,
    run: (d) =>
      withCri(d, async (runtime, dir) => {
        for (let i = 0; i < 10; i++) {
          const config = podConfig(dir, d.kind, i);
          const { podSandboxId } = await runtime.runPodSandbox({ config, runtimeHandler: '' });
          for (let j = 0; j < 10; j++) await runtime.createContainer({ podSandboxId, config: containerConfig(`c${j}`), sandboxConfig: config });
        }
        const listAll = async () => {
          const r = await runtime.listContainers({});
          if (r.containers.length !== 100) throw new Error(`${d.kind}: ListContainers gave ${r.containers.length} containers, not 100`);
        };
        const listFiltered = async () => {
          const r = await runtime.listContainers({ filter: ContainerFilter.fromPartial({ labelSelector: { name: 'c3' } }) });
          if (r.containers.length !== 10) throw new Error(`${d.kind}: ListContainers name=c3 gave ${r.containers.length} containers, not 10`);
        };
        const sample = async (n: number) => {
          const all: number[] = [];
          const filtered: number[] = [];
          for (let k = 0; k < n; k++) {
            all.push(await ms(listAll));
            filtered.push(await ms(listFiltered));
          }
          return { all: median(all), filtered: median(filtered) };
        };
        for (let k = 0; k < 3; k++) await listAll();
        // The first calls of a daemon just started (code not yet compiled), then a daemon as
        // kubelet sees it, which lists every second for as long as the node runs. berthd's
        // answers settle only after some 3,000 calls of a path (V8's tiers; measured with Version:
        // 1.2 ms at first, 0.5 ms from about the 3,000th call), hence 5,000 before the warm figure.
        const cold = await sample(50);
        for (let k = 0; k < 2500; k++) await Promise.all([listAll(), listFiltered()]);
        const warm = await sample(200);
        return {
          'ListContainers of 100': warm.all,
          'ListContainers with a label filter': warm.filtered,
          'ListContainers of 100, first 50 calls': cold.all,
          'label filter, first 50 calls': cold.filtered,
        };
      }),
  },
};
