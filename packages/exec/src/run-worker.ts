import { ChildProcess, spawn } from 'node:child_process';
import { parentPort } from 'node:worker_threads';
import { Launcher } from './launcher';
import type { RunJob, RunOutcome } from './run';

// The exec thread of @berth/exec. Programs start through the launcher (a small shell that forks
// for us, see launcher.ts); what it cannot start, spawn starts here: fork and exec block the
// calling thread until the child has exec'd, longer the larger the process and the busier the
// machine, and this thread is the one that may wait.
const port = parentPort!;

type Post = (o: RunOutcome) => void;

/** Starts `job` with spawn from this thread. */
function spawnJob(job: RunJob, post: Post): void {
  const fail = (err: NodeJS.ErrnoException) => post({ id: job.id, error: { message: err.message, code: err.code, errno: err.errno, syscall: err.syscall, path: err.path } });
  let child: ChildProcess;
  try {
    child = spawn(job.file, job.args, {
      cwd: job.cwd,
      env: job.env ?? process.env,
      stdio: [job.input === undefined ? 'ignore' : 'pipe', job.stdout ? 'pipe' : 'ignore', 'pipe', ...job.fds],
    });
  } catch (err) {
    return fail(err as NodeJS.ErrnoException);
  }
  const out: Buffer[] = [];
  const errs: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => errs.push(b));
  child.once('error', fail);
  if (child.stdin) {
    // EPIPE when the program exits without reading: its exit status tells.
    child.stdin.on('error', () => undefined);
    child.stdin.end(job.input);
  }
  let timedOut = false;
  const timer =
    job.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, job.timeoutMs);
  child.once('close', (code, signal) => {
    if (timer) clearTimeout(timer);
    post({ id: job.id, code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(errs), timedOut });
  });
}

const launcher = process.env.BERTH_EXEC_SPAWN === '1' ? undefined : new Launcher(spawnJob);

port.on('message', (job: RunJob) => {
  let settled = false;
  const post: Post = (o) => {
    if (settled) return;
    settled = true;
    port.postMessage(o);
  };
  if (launcher) launcher.run(job, post);
  else spawnJob(job, post);
});
