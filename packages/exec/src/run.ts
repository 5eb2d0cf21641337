import { join } from 'node:path';
import { SHARE_ENV, Worker } from 'node:worker_threads';

/** How {@link run} starts a program. */
export interface RunOptions {
  /** Working directory. Default: the daemon's. */
  cwd?: string;
  /** The whole environment. Default: the daemon's (as it is at the call). */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. Default: stdin is /dev/null. */
  input?: Uint8Array | string;
  /** Whether to collect stdout (default true); false sends it to /dev/null. */
  stdout?: boolean;
  /** Open fds of this process handed to the program as its fds 3, 4, ... */
  fds?: readonly number[];
  /** Kill the program with SIGKILL after this many milliseconds (`timedOut` then says so). Default: no limit. */
  timeoutMs?: number;
}

/** How a program ended and what it wrote. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** True when the program was killed because it ran past `timeoutMs`. */
  timedOut: boolean;
}

/** @internal A job as the worker receives it. */
export interface RunJob {
  id: number;
  file: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: Uint8Array | string;
  stdout: boolean;
  fds: readonly number[];
  timeoutMs?: number;
}

/** @internal What the worker answers. */
export type RunOutcome =
  | { id: number; code: number | null; signal: NodeJS.Signals | null; stdout: Uint8Array; stderr: Uint8Array; timedOut: boolean }
  | { id: number; error: { message: string; code?: string; errno?: number; syscall?: string; path?: string } };

const WORKER_SCRIPT = __filename.endsWith('.ts') ? join(__dirname, '../dist/run-worker.js') : join(__dirname, 'run-worker.js');

const pending = new Map<number, { resolve(r: RunResult): void; reject(err: Error): void }>();
let worker: Worker | undefined;
let nextId = 1;

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function ensureWorker(): Worker {
  if (worker) return worker;
  // SHARE_ENV: the default environment is the daemon's live one, not a copy from the start.
  const w = new Worker(WORKER_SCRIPT, { env: SHARE_ENV });
  const failAll = (message: string) => {
    if (worker === w) worker = undefined;
    for (const [id, job] of pending) {
      pending.delete(id);
      job.reject(new Error(message));
    }
  };
  w.on('message', (o: RunOutcome) => {
    const job = pending.get(o.id);
    if (!job) return;
    pending.delete(o.id);
    // Nothing to wait for: the worker must not keep a finished program alive.
    if (pending.size === 0) w.unref();
    if ('error' in o) job.reject(Object.assign(new Error(o.error.message), o.error));
    else job.resolve({ code: o.code, signal: o.signal, stdout: asBuffer(o.stdout), stderr: asBuffer(o.stderr), timedOut: o.timedOut });
  });
  w.on('error', (err) => failAll(`exec worker failed: ${err.message}`));
  w.on('exit', (code) => failAll(`exec worker exited with code ${code}`));
  worker = w;
  return w;
}

/**
 * Runs `file` with `args` (an argument array, never a shell) to completion and resolves with its
 * exit status and output; rejects when it cannot be started (ENOENT), as spawn's 'error'.
 * Nothing forks on the calling thread: programs start through the launcher, a small shell that
 * forks for us (see launcher.ts), driven from a worker thread, which also spawns what the
 * launcher cannot start (a job with `fds`). A spawn from the caller's thread would block it until
 * the child has exec'd: 3 ms on average and up to 45 ms on a loaded machine, growing with the
 * process's size.
 */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const w = ensureWorker();
  const id = nextId++;
  const job: RunJob = { id, file, args: [...args], cwd: options.cwd, env: options.env, input: options.input, stdout: options.stdout ?? true, fds: options.fds ?? [], timeoutMs: options.timeoutMs };
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    // Referenced while a program runs, so that awaiting one keeps the process alive.
    w.ref();
    w.postMessage(job);
  });
}
