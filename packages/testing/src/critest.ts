import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { unmountAll } from '@berth/mount';
import { CRITEST_PATH } from './reference-tools';

/** The gcr.io path of critest's own test images. */
export const CRITEST_STAGING = 'k8s-staging-cri-tools';

/**
 * Look-alikes of critest v1.37's image specs' images (repository path under a mirrored registry,
 * tags, run config over busybox with `Cmd: ["sh"]`); the tags of one entry are one image.
 */
export const CRITEST_IMAGE_LOOKALIKES: ReadonlyArray<{ repo: string; tags: string[]; runConfig: Record<string, unknown> }> = [
  { repo: `${CRITEST_STAGING}/test-image-tag`, tags: ['test'], runConfig: { Env: ['IMAGE=tag-test'] } },
  { repo: `${CRITEST_STAGING}/test-image-tag`, tags: ['all'], runConfig: { Env: ['IMAGE=tag-all'] } },
  { repo: `${CRITEST_STAGING}/test-image-latest`, tags: ['latest'], runConfig: { Env: ['IMAGE=latest'] } },
  { repo: `${CRITEST_STAGING}/test-image-1`, tags: ['latest'], runConfig: { Env: ['IMAGE=1'] } },
  { repo: `${CRITEST_STAGING}/test-image-2`, tags: ['latest'], runConfig: { Env: ['IMAGE=2'] } },
  { repo: `${CRITEST_STAGING}/test-image-3`, tags: ['latest'], runConfig: { Env: ['IMAGE=3'] } },
  { repo: `${CRITEST_STAGING}/test-image-tags`, tags: ['1', '2', '3'], runConfig: { Env: ['IMAGE=tags'] } },
  { repo: `${CRITEST_STAGING}/test-image-user-uid`, tags: ['latest'], runConfig: { User: '1002' } },
  { repo: `${CRITEST_STAGING}/test-image-user-username`, tags: ['latest'], runConfig: { User: 'www-data' } },
  { repo: `${CRITEST_STAGING}/test-image-user-uid-group`, tags: ['latest'], runConfig: { User: '1003:1004' } },
  { repo: `${CRITEST_STAGING}/test-image-user-username-group`, tags: ['latest'], runConfig: { User: 'www-data:1004' } },
  // registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9 both mirror to this one.
  { repo: 'pause', tags: ['3.9'], runConfig: { Entrypoint: ['/bin/sleep'], Cmd: ['infinity'] } },
];

/** One critest spec's outcome. */
export interface SpecResult {
  name: string;
  outcome: 'passed' | 'failed' | 'skipped';
  /** For a failed or skipped spec, ginkgo's message (the failure, or the reason it skipped). */
  message?: string;
}

/** What one critest run gave. */
export interface CritestRun {
  specs: SpecResult[];
  /** critest's stdout and stderr, interleaved. */
  output: string;
  /** Whether the run was killed (timeout or abort) before it wrote its report. */
  killed: boolean;
}

/** Options of {@link critest}. */
export interface CritestOptions {
  /** Kills critest (SIGKILL to its process group) after this many ms; default none. */
  timeoutMs?: number;
  /** Kills critest when aborted. */
  signal?: AbortSignal;
  /** Called with each chunk of critest's output. */
  onOutput?: (chunk: string) => void;
}

const unescape = (s: string) =>
  s
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#x([0-9a-f]+);/gi, (_m, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_m, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&amp;/g, '&');

/**
 * Reads the `[It]` specs of a ginkgo junit report: failure or error is failed, skipped is
 * skipped, with the element's `message`.
 */
export function parseJunit(xml: string): SpecResult[] {
  const specs: SpecResult[] = [];
  for (const m of xml.matchAll(/<testcase name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = unescape(m[1]);
    if (!name.startsWith('[It]')) continue;
    const body = m[3] ?? '';
    const outcome = /<failure|<error/.test(body) ? 'failed' : /<skipped/.test(body) ? 'skipped' : 'passed';
    const message = outcome === 'passed' ? undefined : /<(?:failure|error|skipped)\b[^>]*\bmessage="([^"]*)"/.exec(body)?.[1];
    specs.push({ name, outcome, ...(message ? { message: unescape(message) } : {}) });
  }
  return specs;
}

/** The first `name` on PATH, or undefined. */
function onPath(name: string): string | undefined {
  return (process.env.PATH ?? '').split(delimiter).map((d) => d && join(d, name)).find((p) => p && existsSync(p));
}

/**
 * The HostIpc specs make a System V shared memory segment on the host with `ipcmk -M` and never
 * remove it. critest finds ipcmk on PATH, so it is given a wrapper first on its PATH that runs the
 * real one and notes the segment's id in `log`; {@link removeIpcmkSegments} removes those after
 * the run, and only those (another run on the machine may be using its own).
 */
function ipcmkWrapper(binDir: string, log: string): boolean {
  const real = onPath('ipcmk');
  if (!real) return false;
  mkdirSync(binDir, { recursive: true });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(join(binDir, 'ipcmk'), `#!/bin/sh\nout=$(${q(real)} "$@") || exit $?\nprintf '%s\\n' "$out"\nprintf '%s\\n' "$out" >> ${q(log)}\n`);
  chmodSync(join(binDir, 'ipcmk'), 0o755);
  return true;
}

/** Removes the shared memory segments the ipcmk wrapper noted. */
function removeIpcmkSegments(log: string): void {
  if (!existsSync(log)) return;
  for (const m of readFileSync(log, 'utf8').matchAll(/Shared memory id: (\d+)/g)) {
    try {
      execFileSync('ipcrm', ['-m', m[1]], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  rmSync(log, { force: true });
}

/**
 * Runs critest v1.37 (CRITEST_PATH) against a CRI socket with a junit report in `dir` and returns
 * each spec's outcome. A run killed before its report has no specs. Shared memory segments its
 * HostIpc specs make on the host are removed after it, and so is its temp directory (TMPDIR, in
 * `dir`) with the mounts its specs left there.
 */
export async function critest(socket: string, dir: string, args: string[], options: CritestOptions = {}): Promise<CritestRun> {
  const stamp = Date.now();
  const report = join(dir, `junit-${stamp}.xml`);
  const binDir = join(dir, `critest-bin-${stamp}`);
  const ipcmkLog = join(dir, `ipcmk-${stamp}.log`);
  // critest's own temp directory: its specs make host paths there (os.MkdirTemp), and its mount
  // propagation specs leave bind mounts there when their container fails. Removed after the run
  // with whatever is mounted in it, and nothing outside it: other tests' mounts are theirs.
  const tmp = join(dir, `critest-tmp-${stamp}`);
  mkdirSync(tmp, { recursive: true });
  const path = ipcmkWrapper(binDir, ipcmkLog) ? `${binDir}${delimiter}${process.env.PATH ?? ''}` : process.env.PATH;
  const config = join(dir, 'crictl.yaml');
  writeFileSync(config, '');
  const endpoint = `unix://${socket}`;
  let output = '';
  let killed = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(CRITEST_PATH!, ['--config', config, '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, '--ginkgo.no-color', `--ginkgo.junit-report=${report}`, ...args], {
        env: { PATH: path, HOME: process.env.HOME, TMPDIR: tmp },
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group, so that a kill reaches ginkgo's parallel workers too.
        detached: true,
      });
      const kill = () => {
        killed = true;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      };
      const timer = options.timeoutMs ? setTimeout(kill, options.timeoutMs) : undefined;
      if (options.signal?.aborted) kill();
      options.signal?.addEventListener('abort', kill, { once: true });
      const take = (b: Buffer) => {
        const s = b.toString();
        output += s;
        options.onOutput?.(s);
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.once('error', reject);
      child.once('close', () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', kill);
        resolve();
      });
    });
  } finally {
    removeIpcmkSegments(ipcmkLog);
    rmSync(binDir, { recursive: true, force: true });
    // Removed only once nothing is mounted there: a recursive removal would go into a mount.
    if (await unmountAll(tmp, { lazyFallback: true }).then(() => true, () => false)) rmSync(tmp, { recursive: true, force: true });
  }
  const specs = !killed && existsSync(report) ? parseJunit(readFileSync(report, 'utf8')) : [];
  return { specs, output, killed };
}
