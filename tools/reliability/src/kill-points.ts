import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { containers as capi, content as kapi, images as iapi, namespaces as napi, snapshots as sapi, tasks as tapi } from '@berth/api';
import { buildBusyboxImage, buildImage, file, dir as dirEntry, pseudoRandom, writeOciArchive } from '@berth/fixtures';
import { Client, createClient } from '@berth/grpc';
import { TestDaemon, cleanupShims, shimsOf, tempDir } from '@berth/testing';
import { rng } from './stats';

/** Options of {@link runKillPoints}. */
export interface KillPointOptions {
  seed: number;
  /** How many times berthd is killed. Default 100. */
  points?: number;
  /** Where progress lines go. Default stdout. */
  log?: (line: string) => void;
}

/** The operations a round runs, two or three at once, before berthd is killed. */
export const KINDS = ['ingest', 'commit', 'unpack', 'container', 'task'] as const;
export type Kind = (typeof KINDS)[number];

/** What the kill points found. */
export interface KillPointReport {
  seed: number;
  points: number;
  /** Rounds that ran each kind of operation. */
  rounds: Record<Kind, number>;
  /** Operations acknowledged before a kill (each checked to be there after the restart). */
  acked: { commits: number; imports: number; containers: number; tasks: number };
  /** Interrupted ingests resumed from a non-zero offset, from zero, and found already committed. */
  resumed: { fromOffset: number; fromZero: number; committed: number };
  /** Blob files hashed, images and containers checked, over all restarts. */
  checked: { blobs: number; images: number; containers: number };
  /** Milliseconds from the restart (the round's operations ended) until the daemon served again: median and max. */
  restartMs: { median: number; max: number };
  /** Every broken property, with its round. Empty when all held. */
  failures: string[];
}

const NS = 'kp';
const SNAPSHOTTER = 'overlayfs';
const BUSYBOX = 'docker.io/library/busybox:berth';
const CONTENT_DIR = ['io.containerd.content.v1.content', 'blobs', 'sha256'];
const INGEST_SIZE = 8 << 20;
const INGEST_CHUNK = 256 << 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

type Api = {
  content: Client<typeof kapi.ContentService>;
  images: Client<typeof iapi.ImagesService>;
  containers: Client<typeof capi.ContainersService>;
  snapshots: Client<typeof sapi.SnapshotsService>;
  tasks: Client<typeof tapi.TasksService>;
  namespaces: Client<typeof napi.NamespacesService>;
};

function connect(d: TestDaemon): Api {
  return {
    content: d.client(kapi.ContentService, NS),
    images: d.client(iapi.ImagesService, NS),
    containers: d.client(capi.ContainersService, NS),
    snapshots: d.client(sapi.SnapshotsService, NS),
    tasks: d.client(tapi.TasksService, NS),
    namespaces: d.client(napi.NamespacesService),
  };
}

const writeReq = (m: Partial<kapi.WriteContentRequest>): kapi.WriteContentRequest => ({
  action: kapi.WriteAction.STAT,
  ref: '',
  total: 0,
  expected: '',
  offset: 0,
  data: Buffer.alloc(0),
  labels: {},
  ...m,
});

/** An ingest in progress: what it writes and how far the daemon acknowledged it. */
interface Ingest {
  ref: string;
  data: Buffer;
  digest: string;
  acked: number;
  committed: boolean;
}

/**
 * Writes `ing.data` through a Write stream from `from`, one acknowledged chunk at a time, and
 * commits it when `commit`; `ing.acked` follows the daemon's replies.
 */
async function write(api: Api, ing: Ingest, from: number, commit: boolean): Promise<void> {
  const call = api.content.write();
  try {
    const send = async (m: Partial<kapi.WriteContentRequest>) => {
      call.write(writeReq({ ref: ing.ref, total: ing.data.length, expected: ing.digest, ...m }));
      const reply = await call.read();
      if (!reply) throw new Error('stream ended');
      return reply;
    };
    const stat = await send({ action: kapi.WriteAction.STAT });
    if (stat.offset !== from) throw new Error(`ingest ${ing.ref} is at ${stat.offset}, expected ${from}`);
    for (let off = from; off < ing.data.length; off += INGEST_CHUNK) {
      const r = await send({ action: kapi.WriteAction.WRITE, offset: off, data: ing.data.subarray(off, off + INGEST_CHUNK) });
      ing.acked = r.offset;
    }
    if (commit) {
      await send({ action: kapi.WriteAction.COMMIT, offset: ing.data.length, labels: { 'containerd.io/gc.root': 'kill-points' } });
      ing.committed = true;
    }
    call.end();
    while ((await call.read()) !== undefined);
  } catch (err) {
    call.cancel();
    throw err;
  }
}

/** State carried from round to round. */
interface State {
  d: TestDaemon;
  api: Api;
  work: string;
  /** Blob files already hashed (name → size), so each restart hashes only the new ones. */
  verified: Map<string, number>;
  /** Digests whose commit the daemon acknowledged. */
  commits: Set<string>;
  images: Set<string>;
  containers: Set<string>;
  tasks: Set<string>;
  /** Set once the round's kill is sent: a ctr started after it would wait for a daemon that is not coming back until the round ends. */
  killed: boolean;
}

/**
 * Kills berthd with SIGKILL at `points` random moments, chosen from `seed`: each round starts two
 * or three operations at once (an 8 MiB ingest, small blobs committed in a loop, `ctr images
 * import` of a new three-layer image with its unpack, `ctr containers create` on the busybox
 * image, `ctr run -d`), kills the daemon after a random delay, restarts it on the same root, and
 * checks:
 * - every blob file verifies (its sha256 is its name), and the Content API's list and reads agree
 *   with the files;
 * - everything acknowledged before the kill is there (committed blobs, imported images, created
 *   containers, started tasks);
 * - no image is half there (every blob of its target is present) and every container's snapshot
 *   exists;
 * - the interrupted ingest resumes at the offset the daemon reports (at least what it had
 *   acknowledged) and commits to the right digest;
 * - after the round's tasks are deleted, no shim of this daemon runs and no mount mentions its
 *   directory.
 */
export async function runKillPoints(options: KillPointOptions): Promise<KillPointReport> {
  const log = options.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const points = options.points ?? 100;
  const random = rng(options.seed);
  const work = tempDir('berth-kill-points-');
  const d = await TestDaemon.start({ logLevel: 'info' });
  const report: KillPointReport = {
    seed: options.seed,
    points,
    rounds: { ingest: 0, commit: 0, unpack: 0, container: 0, task: 0 },
    acked: { commits: 0, imports: 0, containers: 0, tasks: 0 },
    resumed: { fromOffset: 0, fromZero: 0, committed: 0 },
    checked: { blobs: 0, images: 0, containers: 0 },
    restartMs: { median: 0, max: 0 },
    failures: [],
  };
  const restarts: number[] = [];
  const st: State = { d, api: connect(d), work: work.path, verified: new Map(), commits: new Set(), images: new Set(), containers: new Set(), tasks: new Set(), killed: false };
  try {
    const busybox = await buildBusyboxImage(work.path);
    const imp = await d.ctr(['-n', NS, 'images', 'import', busybox]);
    if (imp.code !== 0) throw new Error(`ctr images import busybox: ${imp.stderr}`);
    st.images.add(BUSYBOX);
    log(`berthd on ${d.dir}, seed ${options.seed}, ${points} kill points`);

    for (let round = 1; round <= points; round++) {
      const kinds = pick(random, 2 + Math.floor(random() * 2));
      for (const k of kinds) report.rounds[k]++;
      const delayMs = Math.floor(random() * 1500);
      const ingest: Ingest = { ref: `kp-ingest-${round}`, data: pseudoRandom(`kp-${options.seed}-${round}`, INGEST_SIZE), digest: '', acked: 0, committed: false };
      ingest.digest = sha256(ingest.data);
      st.killed = false;
      const running = kinds.map((k) => operation(st, k, round, ingest, report).catch(() => undefined));
      await sleep(delayMs);
      st.killed = true;
      await d.kill('SIGKILL');
      await Promise.all(running);
      const t0 = performance.now();
      await d.restart();
      restarts.push(performance.now() - t0);
      st.api = connect(d);
      const failures = await check(st, kinds.includes('ingest') ? ingest : undefined, report);
      for (const f of failures) report.failures.push(`round ${round} (${kinds.join('+')}, kill at ${delayMs} ms): ${f}`);
      log(`round ${String(round).padStart(3)}: ${kinds.join('+').padEnd(24)} killed at ${String(delayMs).padStart(4)} ms, restarted in ${restarts[restarts.length - 1].toFixed(0)} ms: ${failures.length ? failures.join('; ') : 'ok'}`);
    }
  } finally {
    await cleanupShims(d.address, d.dir);
    await d.cleanup();
    work.remove();
  }
  restarts.sort((a, b) => a - b);
  report.restartMs = { median: Math.round(restarts[restarts.length >> 1] ?? 0), max: Math.round(restarts[restarts.length - 1] ?? 0) };
  log(formatKillPointReport(report));
  return report;
}

function pick(random: () => number, n: number): Kind[] {
  const pool = [...KINDS];
  const out: Kind[] = [];
  while (out.length < n) out.push(pool.splice(Math.floor(random() * pool.length), 1)[0]);
  return out;
}

/** Runs one operation until it finishes or the daemon dies; records what was acknowledged. */
async function operation(st: State, kind: Kind, round: number, ingest: Ingest, report: KillPointReport): Promise<void> {
  const { d, api } = st;
  const ctr = async (args: string[]) => (st.killed ? { code: -1 } : d.ctr(['-n', NS, ...args], { timeoutMs: 15_000 }));
  switch (kind) {
    case 'ingest':
      await write(api, ingest, 0, false);
      return;
    case 'commit':
      for (let i = 0; ; i++) {
        const data = pseudoRandom(`kp-commit-${round}-${i}`, 64 << 10);
        const ing: Ingest = { ref: `kp-commit-${round}-${i}`, data, digest: sha256(data), acked: 0, committed: false };
        await write(api, ing, 0, true);
        st.commits.add(ing.digest);
        report.acked.commits++;
      }
    case 'unpack': {
      const name = `docker.io/berth/kill-points:${round}`;
      const layers = [0, 1, 2].map((l) => ({ entries: [dirEntry(`l${l}`), file(`l${l}/data`, pseudoRandom(`kp-img-${round}-${l}`, 1 << 20))] }));
      const archive = join(st.work, `image-${round}.tar`);
      await writeOciArchive(archive, [await buildImage({ name, layers })]);
      const r = await ctr(['images', 'import', archive]);
      if (r.code === 0) {
        st.images.add(name);
        report.acked.imports++;
      }
      return;
    }
    case 'container': {
      const id = `kp-c-${round}`;
      const r = await ctr(['containers', 'create', BUSYBOX, id]);
      if (r.code === 0) {
        st.containers.add(id);
        report.acked.containers++;
      }
      return;
    }
    case 'task': {
      const id = `kp-t-${round}`;
      const r = await ctr(['run', '-d', '--cgroup', `/berth-kp-${process.pid}-${round}`, BUSYBOX, id, '/bin/sleep', '1000']);
      if (r.code === 0) {
        st.containers.add(id);
        st.tasks.add(id);
        report.acked.tasks++;
      }
      return;
    }
  }
}

const statOrUndefined = (path: string) => {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
};

/** The checks after a restart; returns what broke. */
async function check(st: State, ingest: Ingest | undefined, report: KillPointReport): Promise<string[]> {
  const { d, api } = st;
  const failures: string[] = [];
  const fail = (s: string) => failures.push(s);

  // Blob files: each one's sha256 is its name.
  const blobDir = join(d.root, ...CONTENT_DIR);
  const files = new Map<string, number>();
  for (const name of readdirSync(blobDir)) {
    // The restarted daemon's first collection may remove an orphan (a blob whose commit the kill
    // interrupted) between the listing and here: gone is fine, an acknowledged blob is checked
    // below through the Content API.
    const size = statOrUndefined(join(blobDir, name))?.size;
    if (size === undefined) continue;
    files.set(`sha256:${name}`, size);
    if (st.verified.get(name) === size) continue;
    const got = await hashFile(join(blobDir, name)).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (got === undefined) {
      files.delete(`sha256:${name}`);
      continue;
    }
    report.checked.blobs++;
    if (got !== `sha256:${name}`) fail(`blob ${name} hashes to ${got}`);
    else st.verified.set(name, size);
  }

  // The Content API and the files agree: every listed blob has its file, of its size.
  const listed = new Map<string, number>();
  for await (const r of api.content.list({ filters: [] })) for (const info of r.info) listed.set(info.digest, Number(info.size));
  for (const [digest, size] of listed) {
    if (!files.has(digest)) fail(`content lists ${digest}, which has no file`);
    else if (files.get(digest) !== size) fail(`content lists ${digest} with size ${size}, its file has ${files.get(digest)}`);
  }
  for (const digest of st.commits) if (!listed.has(digest)) fail(`acknowledged commit ${digest} is gone`);

  // Images: every acknowledged one is there, and each image's blobs are all present.
  const images = new Map((await api.images.list({ filters: [] })).images.map((i) => [i.name, i]));
  for (const name of st.images) if (!images.has(name)) fail(`acknowledged image ${name} is gone`);
  for (const img of images.values()) {
    report.checked.images++;
    const missing = await missingBlobs(api, img.target!.digest, img.target!.mediaType, listed);
    if (missing.length) fail(`image ${img.name} is half there: ${missing.join(', ')} missing`);
  }

  // Containers: every acknowledged one is there, and each one's snapshot exists.
  const containers = (await api.containers.list({ filters: [] })).containers;
  const ids = new Set(containers.map((c) => c.id));
  for (const id of st.containers) if (!ids.has(id)) fail(`acknowledged container ${id} is gone`);
  for (const c of containers) {
    report.checked.containers++;
    if (!c.snapshotKey) continue;
    const ok = await api.snapshots.stat({ snapshotter: c.snapshotter || SNAPSHOTTER, key: c.snapshotKey }).then(
      () => true,
      () => false,
    );
    if (!ok) fail(`container ${c.id} has no snapshot ${c.snapshotKey}`);
  }

  // The interrupted ingest resumes where the daemon says it is, at least where it acknowledged.
  if (ingest) {
    const status = await api.content.status({ ref: ingest.ref }).then(
      (r) => r.status,
      () => undefined,
    );
    if (listed.has(ingest.digest)) report.resumed.committed++;
    else {
      const offset = status ? Number(status.offset) : 0;
      if (offset < ingest.acked) fail(`ingest ${ingest.ref} resumes at ${offset}, below the ${ingest.acked} bytes acknowledged`);
      try {
        await write(api, ingest, offset, true);
        if (offset > 0) report.resumed.fromOffset++;
        else report.resumed.fromZero++;
        const back = await readBlob(api, ingest.digest);
        if (!back.equals(ingest.data)) fail(`resumed ingest ${ingest.ref} reads back different bytes`);
        await api.content.delete({ digest: ingest.digest });
      } catch (err) {
        fail(`ingest ${ingest.ref} did not resume from ${offset}: ${(err as Error).message}`);
      }
    }
  }

  // Tasks: every acknowledged one is known after the restart; then all go, and nothing is left.
  const tasks = (await api.tasks.list({ filter: '' })).tasks;
  const taskIds = new Set(tasks.map((t) => t.id));
  for (const id of st.tasks) if (!taskIds.has(id)) fail(`acknowledged task ${id} is gone`);
  for (const t of tasks) {
    await api.tasks.kill({ containerId: t.id, execId: '', signal: 9, all: true }).catch(() => undefined);
    await api.tasks.wait({ containerId: t.id, execId: '' }).catch(() => undefined);
    await api.tasks.delete({ containerId: t.id }).catch((err) => fail(`task ${t.id} could not be deleted: ${(err as Error).message}`));
  }
  st.tasks.clear();
  for (let i = 0; i < 20 && (shimsOf(d.address).length > 0 || mountLines(d.dir).length > 0); i++) await sleep(100);
  const shims = shimsOf(d.address);
  if (shims.length) {
    const ids = shims.map((s) => s.id);
    const said = d.output.split('\n').filter((l) => ids.some((id) => l.includes(id)));
    fail(`shims left: ${ids.join(', ')}${said.length ? `; the daemon logged:\n${said.join('\n')}` : ''}`);
  }
  const mounts = mountLines(d.dir);
  if (mounts.length) fail(`mounts left: ${mounts.map((m) => m.split(' ')[4]).join(', ')}`);
  return failures;
}

/** Lines of /proc/self/mountinfo that mention `dir` (mount point, source or options). */
function mountLines(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir));
}

async function readBlob(api: Api, digest: string): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const r of api.content.read({ digest, offset: 0, size: 0 })) out.push(Buffer.from(r.data));
  return Buffer.concat(out);
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** The blobs under an image's target that the content store does not have. */
async function missingBlobs(api: Api, digest: string, mediaType: string, listed: Map<string, number>): Promise<string[]> {
  if (!listed.has(digest)) return [digest];
  const doc = JSON.parse((await readBlob(api, digest)).toString('utf8'));
  if (INDEX_TYPES.has(mediaType) || Array.isArray(doc.manifests)) {
    const out: string[] = [];
    for (const m of doc.manifests ?? []) out.push(...(await missingBlobs(api, m.digest, m.mediaType, listed)));
    return out;
  }
  return [doc.config, ...(doc.layers ?? [])].filter((b) => b && !listed.has(b.digest)).map((b) => b.digest);
}

/** The closing summary, as printed. */
export function formatKillPointReport(r: KillPointReport): string {
  return [
    `seed ${r.seed}: ${r.points} kills; rounds per operation: ${KINDS.map((k) => `${k} ${r.rounds[k]}`).join(', ')}`,
    `acknowledged before a kill and found after it: ${r.acked.commits} commits, ${r.acked.imports} imports, ${r.acked.containers} containers, ${r.acked.tasks} tasks`,
    `interrupted ingests: ${r.resumed.fromOffset} resumed from their offset, ${r.resumed.fromZero} from zero, ${r.resumed.committed} already committed`,
    `checked: ${r.checked.blobs} blob files hashed, ${r.checked.images} images and ${r.checked.containers} containers walked; restart ${r.restartMs.median} ms median, ${r.restartMs.max} ms max`,
    r.failures.length ? `FAILURES (${r.failures.length}):\n${r.failures.map((f) => `  ${f}`).join('\n')}` : 'no failures',
  ].join('\n');
}
