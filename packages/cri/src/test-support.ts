/*
 * Test support for the crictl tests (not part of the package's build): a loopback registry with
 * busybox-based images, the hosts.toml that mirrors docker.io to it, and the CRI config that
 * points a daemon (berthd or containerd 1.6) at temp directories only; for the events tests,
 * `crictl events` as a stream and one pod's lifecycle with the events of each step.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltImage, buildImage, busyboxSpec, pauseImage } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { CRICTL_PATH, TestRegistry, runCrictl, tempDir } from '@berth/testing';

/** One image in the test registry. */
export interface SeededImage {
  /** Repository path in the registry (`library/busybox`). */
  repo: string;
  tag: string;
  image: BuiltImage;
}

/** A registry with images, and the directories a CRI config points at. */
export interface CriWorld {
  registry: TestRegistry;
  dir: string;
  /** `registry.config_path`: docker.io mirrored to the registry (and nowhere else). */
  hostsDir: string;
  /** `cni.conf_dir`, empty at first. */
  confDir: string;
  busybox: SeededImage;
  /** USER 1002 (uid 1002). */
  userUid: SeededImage;
  /** USER www-data:1004 (username www-data). */
  userName: SeededImage;
  /** The CRI plugin's config section for a daemon of this world. */
  criConfig: string;
  cleanup(): Promise<void>;
}

/** Pushes an image's blobs and manifest into the registry (with basic credentials when given). */
export async function push(registry: TestRegistry, s: SeededImage, auth?: { username: string; secret: string }): Promise<void> {
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }), credentials: auth && (async () => auth) });
  try {
    const ref = `${registry.host}/${s.repo}`;
    for (const d of [...s.image.layers, s.image.config]) await client.push(ref, d, s.image.blobs.get(d.digest)!);
    await client.push(`${ref}:${s.tag}`, s.image.manifest, s.image.blobs.get(s.image.manifest.digest)!);
  } finally {
    await client.close();
  }
}

/** Starts the registry, pushes the images and writes the hosts.toml; `cleanup` undoes it all. */
export async function startCriWorld(): Promise<CriWorld> {
  const { path: dir, remove } = tempDir('berth-cri-');
  const registry = await TestRegistry.start();
  try {
    const base = busyboxSpec('docker.io/library/busybox:berth');
    const busybox = { repo: 'library/busybox', tag: 'berth', image: await buildImage(base) };
    const userUid = { repo: 'cri/user-uid', tag: '1', image: await buildImage({ ...base, name: 'x', runConfig: { User: '1002', Cmd: ['sh'] } }) };
    const userName = { repo: 'cri/user-name', tag: '1', image: await buildImage({ ...base, name: 'y', runConfig: { User: 'www-data:1004', Cmd: ['sh'] } }) };
    for (const s of [busybox, userUid, userName]) await push(registry, s);
    const hostsDir = join(dir, 'certs.d');
    mkdirSync(join(hostsDir, 'docker.io'), { recursive: true });
    // server is the registry too, so that nothing ever falls back to the real Docker Hub.
    writeFileSync(
      join(hostsDir, 'docker.io', 'hosts.toml'),
      `server = "${registry.url}"\n\n[host."${registry.url}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    const section = 'plugins."io.containerd.grpc.v1.cri"';
    const criConfig =
      `[${section}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n` +
      `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(confDir)}\n` +
      `[${section}.registry]\n  config_path = ${JSON.stringify(hostsDir)}\n`;
    return {
      registry,
      dir,
      hostsDir,
      confDir,
      busybox,
      userUid,
      userName,
      criConfig,
      cleanup: async () => {
        await registry.stop();
        remove();
      },
    };
  } catch (err) {
    await registry.stop();
    remove();
    throw err;
  }
}

/** crictl's stdout parsed as JSON (`-o json`, `inspecti`, `info`). */
export function json<T = Record<string, any>>(out: string): T {
  return JSON.parse(out) as T;
}

export { CATATONIT_PATH, pauseImage } from '@berth/fixtures';

/** Pushes the pause image as `pause:3.6` and mirrors registry.k8s.io to the world's registry. */
export async function addPauseImage(world: CriWorld): Promise<SeededImage> {
  const pause = { repo: 'pause', tag: '3.6', image: await pauseImage() };
  await push(world.registry, pause);
  mkdirSync(join(world.hostsDir, 'registry.k8s.io'), { recursive: true });
  writeFileSync(
    join(world.hostsDir, 'registry.k8s.io', 'hosts.toml'),
    `server = "${world.registry.url}"\n\n[host."${world.registry.url}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
  return pause;
}

export { type SpecResult, critest } from '@berth/testing';

/**
 * `crictl events -o json` (GetContainerEvents) running against a daemon's socket: the events it
 * has printed so far, parsed. `stop` ends it as a user would (SIGINT) and waits for its exit.
 */
export class CrictlEvents {
  readonly events: Array<Record<string, any>> = [];
  private out = '';
  private err = '';
  private readonly closed: Promise<number>;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (b: Buffer) => {
      this.out += b.toString();
      this.parse();
    });
    child.stderr.on('data', (b: Buffer) => (this.err += b.toString()));
    this.closed = new Promise((resolve) => child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  }

  /** Starts crictl events and gives it `settleMs` to subscribe (it prints nothing until an event comes). */
  static async start(socket: string, settleMs = 1000): Promise<CrictlEvents> {
    if (!CRICTL_PATH) throw new Error('crictl is not installed: run tools/reference-tools.sh');
    const endpoint = `unix://${socket}`;
    const child = spawn(CRICTL_PATH, ['--timeout', '60s', '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, 'events', '-o', 'json'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const e = new CrictlEvents(child);
    await new Promise((r) => setTimeout(r, settleMs));
    return e;
  }

  /** crictl prints one indented JSON object per event: take each complete one off the buffer. */
  private parse(): void {
    for (;;) {
      const start = this.out.indexOf('{');
      if (start < 0) return;
      let depth = 0;
      let inString = false;
      let end = -1;
      for (let i = start; i < this.out.length && end < 0; i++) {
        const ch = this.out[i];
        if (inString) {
          if (ch === '\\') i++;
          else if (ch === '"') inString = false;
        } else if (ch === '"') inString = true;
        else if (ch === '{') depth++;
        else if (ch === '}' && --depth === 0) end = i;
      }
      if (end < 0) return;
      this.events.push(JSON.parse(this.out.slice(start, end + 1)));
      this.out = this.out.slice(end + 1);
    }
  }

  /** The events of one pod (its own and its containers'), in the order they came. */
  ofPod(podId: string): Array<Record<string, any>> {
    return this.events.filter((e) => e.podSandboxStatus?.id === podId);
  }

  /** Waits until `count` events of one pod have come (or fails after `timeoutMs`); returns them. */
  waitForPod(podId: string, count: number, timeoutMs = 30_000): Promise<Array<Record<string, any>>> {
    return this.waitUntil(`of pod ${podId}`, () => this.ofPod(podId), count, timeoutMs);
  }

  /** Waits until `count` events have come (or fails after `timeoutMs`, showing what came). */
  waitFor(count: number, timeoutMs = 30_000): Promise<Array<Record<string, any>>> {
    return this.waitUntil('', () => this.events, count, timeoutMs);
  }

  /** Polls until `pick` gives `count` events; the first `count` of them. */
  private async waitUntil(what: string, pick: () => Array<Record<string, any>>, count: number, timeoutMs: number): Promise<Array<Record<string, any>>> {
    const end = Date.now() + timeoutMs;
    while (pick().length < count) {
      if (Date.now() > end) throw new Error(`waited for ${count} events${what ? ` ${what}` : ''}, got ${pick().length}: ${JSON.stringify(this.events.map((e) => [e.containerEventType, e.containerId]))}\n${this.err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return pick().slice(0, count);
  }

  /** Whether crictl has exited (the stream ended or failed). */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Interrupts crictl and waits for it; its exit code and stderr. */
  async stop(): Promise<{ code: number; stderr: string }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const code = await this.closed;
    return { code, stderr: this.err };
  }
}

/** One CRI event as the events tests compare it: what happened to whom, and what was set. */
export interface EventShape {
  /** `CREATED pod`, `STOPPED c2`... (the names the scenario gave). */
  what: string;
  /** The pod's state and whether it had an IP; null when the event had no pod status. */
  pod: { state: string; ip: boolean } | null;
  /** `name:STATE` of each container status, sorted (the order is the daemon's). */
  containers: string[];
  /** The fields of the event, of its pod status and of its container statuses that are set (not zero). */
  fields: { event: string[]; pod: string[]; container: string[] };
}

/**
 * ContainerStatus fields containerd 2.x reports that Berth's ContainerStatus (as containerd
 * 1.6's) does not yet: left out of the comparison (packages/cri/README.md says so).
 */
export const CONTAINER_STATUS_FIELDS_NOT_YET = ['resources', 'user', 'stopSignal'];

const isSet = (v: unknown): boolean =>
  v !== null && v !== undefined && v !== '' && v !== '0' && v !== 0 && v !== false && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0);
const setKeys = (o: Record<string, unknown> | null | undefined, leaveOut: readonly string[] = []): string[] =>
  o ? Object.keys(o).filter((k) => isSet(o[k]) && !leaveOut.includes(k)).sort() : [];

/** An event as crictl printed it, reduced to its {@link EventShape}; `names` maps ids to names. */
export function eventShape(e: Record<string, any>, names: Map<string, string>): EventShape {
  const name = (id: string) => names.get(id) ?? id.slice(0, 12);
  const pod = e.podSandboxStatus as Record<string, any> | null | undefined;
  const statuses = (e.containersStatuses ?? []) as Array<Record<string, any>>;
  const containerFields = new Set<string>();
  for (const s of statuses) for (const k of setKeys(s, CONTAINER_STATUS_FIELDS_NOT_YET)) containerFields.add(k);
  return {
    what: `${String(e.containerEventType).replace(/^CONTAINER_|_EVENT$/g, '')} ${name(e.containerId)}`,
    pod: pod ? { state: pod.state, ip: (pod.network?.ip ?? '') !== '' } : null,
    containers: statuses.map((s) => `${name(s.id)}:${s.state}`).sort(),
    fields: { event: setKeys(e), pod: setKeys(pod), container: [...containerFields].sort() },
  };
}

/**
 * A container command that exits with `code` once the file `/<name>` shows up in its rootfs: the
 * test picks the moment ({@link letExit}) where a `sleep` would race the machine's load.
 */
export const exitsWhenTold = (name: string, code: number): string[] => ['sh', '-c', `while [ ! -e /${name} ]; do sleep 0.1; done; exit ${code}`];

/** Tells a container running {@link exitsWhenTold} to exit: makes its file through the process's root. */
export function letExit(pid: number, name: string): void {
  writeFileSync(`/proc/${pid}/root/${name}`, '');
}

/** Waits until process `pid` is gone (reaped), or fails after `timeoutMs`. */
export async function processGone(pid: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > end) throw new Error(`process ${pid} is still there after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the lifecycle scenario saw: the events of each step, as shapes. */
export type ScenarioResult = Array<{ step: string; events: EventShape[] }>;

/**
 * Runs one pod's life through crictl against `socket` while `crictl events` listens, and returns
 * the events of each step: runp; create and start c1 (runs) and c2 (exits 3 on its own, in the
 * step "c2 exits"); stop c1 (twice); rm c2; create and start c3; stopp (c3 still runs); rmp. A
 * step's events are those that came until the count `expected` gives (then 300 ms more, to catch
 * extras).
 * In the steps where the daemon picks the order of the pod's containers (stopp, rmp), the
 * containers' events are sorted by name, the pod's own events kept last in their order.
 */
export async function lifecycleScenario(
  socket: string,
  o: { dir: string; image: string; cgroupParent: string; podName: string; expected: Record<string, number> },
): Promise<{ steps: ScenarioResult; raw: Array<Record<string, any>> }> {
  const crictl = async (...args: string[]) => {
    const r = await runCrictl(socket, args);
    if (r.code !== 0) throw new Error(`crictl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const podPath = join(o.dir, `${o.podName}.json`);
  // kubelet makes the log directory (containerd 1.6 and berthd do not; 2.x does).
  mkdirSync(join(o.dir, `${o.podName}-logs`), { recursive: true });
  writeFileSync(podPath, JSON.stringify({ metadata: { name: o.podName, namespace: 'berth-test', uid: `${o.podName}-${process.pid}`, attempt: 0 }, log_directory: join(o.dir, `${o.podName}-logs`), linux: { cgroup_parent: o.cgroupParent } }));
  const ctr = (name: string, command: string[]) => {
    const path = join(o.dir, `${o.podName}-${name}.json`);
    writeFileSync(path, JSON.stringify({ metadata: { name }, image: { image: o.image }, command, log_path: `${name}.log` }));
    return path;
  };
  const names = new Map<string, string>();
  const events = await CrictlEvents.start(socket);
  const steps: ScenarioResult = [];
  let seen = 0;
  const step = async (label: string, fn: () => Promise<void>) => {
    await fn();
    const want = seen + (o.expected[label] ?? 0);
    await events.waitFor(want);
    await new Promise((r) => setTimeout(r, 300));
    const got = events.events.slice(seen).map((e) => eventShape(e, names));
    seen += got.length;
    if (label === 'stopp' || label === 'rmp') {
      const own = got.filter((e) => e.what.endsWith(' pod'));
      got.splice(0, got.length, ...got.filter((e) => !e.what.endsWith(' pod')).sort((a, b) => (a.what < b.what ? -1 : 1)), ...own);
    }
    steps.push({ step: label, events: got });
  };
  try {
    let pod = '';
    const ids: Record<string, string> = {};
    await step('runp', async () => {
      pod = await crictl('runp', podPath);
      names.set(pod, 'pod');
    });
    for (const [name, command] of [
      ['c1', ['sleep', '1000']],
      ['c2', exitsWhenTold('go', 3)],
    ] as const) {
      await step(`create ${name}`, async () => {
        ids[name] = await crictl('create', pod, ctr(name, [...command]), podPath);
        names.set(ids[name], name);
      });
      await step(`start ${name}`, async () => void (await crictl('start', ids[name])));
    }
    await step('c2 exits', async () => {
      letExit(json(await crictl('inspect', '-o', 'json', ids.c2)).info.pid, 'go');
      const end = Date.now() + 30_000;
      while (json(await crictl('inspect', '-o', 'json', ids.c2)).status.state !== 'CONTAINER_EXITED') {
        if (Date.now() > end) throw new Error('c2 did not exit');
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    await step('stop c1', async () => void (await crictl('stop', '-t', '0', ids.c1)));
    await step('stop c1 again', async () => void (await crictl('stop', '-t', '0', ids.c1)));
    await step('rm c2', async () => void (await crictl('rm', ids.c2)));
    await step('create c3', async () => {
      ids.c3 = await crictl('create', pod, ctr('c3', ['sleep', '1000']), podPath);
      names.set(ids.c3, 'c3');
    });
    await step('start c3', async () => void (await crictl('start', ids.c3)));
    await step('stopp', async () => void (await crictl('stopp', pod)));
    await step('rmp', async () => void (await crictl('rmp', pod)));
  } finally {
    await events.stop();
  }
  return { steps, raw: events.events };
}

/** How many events each step of {@link lifecycleScenario} gives in containerd 2.4.2 (run here). */
export const LIFECYCLE_EVENT_COUNTS: Record<string, number> = {
  runp: 2,
  'create c1': 1,
  'start c1': 1,
  'create c2': 1,
  'start c2': 1,
  'c2 exits': 1,
  'stop c1': 1,
  'stop c1 again': 0,
  'rm c2': 1,
  'create c3': 1,
  'start c3': 1,
  stopp: 2,
  rmp: 3,
};
