import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { RunJob, RunOutcome } from './run';

/**
 * The launcher: one long-lived system shell (dash on Debian, about 1 MB) that forks and execs
 * the programs @berth/exec runs. A fork copies the forking process's page tables and, until the
 * child execs, makes every page the parent writes a copy-on-write fault; for a daemon of a few
 * hundred MiB that is 3 to 5 ms per program on a quiet machine (more on a busy one), against well
 * under 1 ms for the shell. The shell also forks concurrently (one subshell per job), where one
 * thread of ours forks one program after another.
 *
 * Protocol. A job is a small shell script written by us into the launcher's private directory
 * (`<dir>/<id>.sh`) that runs the program through GNU env (`--default-signal -i -C cwd -- NAME=VALUE...`:
 * default signal dispositions, exactly the given environment and working directory, as spawn
 * gives them), its stdin, stdout and stderr redirected to files in the same directory. Our line
 * on the shell's stdin is the job id; the shell sources the script in a subshell of its own, and
 * the script writes `p <id> <pid>` when the program is forked and `x <id> <status>` when it has
 * been waited for. A status above 128 is a signal or a large exit code to a shell; dash's `jobs`
 * (written to `<id>.st` only then) tells which ("Done(137)" or the signal's description). Lines
 * shorter than PIPE_BUF are written at once, so concurrent jobs never interleave.
 *
 * What the shell cannot do stays with spawn: handing over extra file descriptors, environment
 * names a shell word cannot carry, a program path with "=" (env would take it for a variable).
 * When the shell or env lacks something (no `--default-signal` before coreutils 8.31), every job
 * goes to spawn.
 */

/** A job's outcome, as the launcher's caller posts it. */
type Post = (o: RunOutcome) => void;

const ENV_PATH = ['/usr/bin/env', '/bin/env'].find((p) => existsSync(p));
const RM_PATH = ['/usr/bin/rm', '/bin/rm'].find((p) => existsSync(p));
const SH_PATH = existsSync('/bin/sh') ? '/bin/sh' : undefined;

/** The launcher's own script: `$1` its directory, `$2` env(1); one job id per line on stdin. */
const LAUNCHER_SCRIPT = [
  'd=$1',
  // GNU env with --default-signal and -C (coreutils 8.31 and later), or nothing is launched here.
  'if ! "$2" --default-signal -i -C / -- "$2" >/dev/null 2>&1; then echo unsupported; exit 0; fi',
  'echo ready',
  // An async list in a non-interactive shell starts with SIGINT and SIGQUIT ignored and stdin
  // from /dev/null: env --default-signal undoes the first; every job redirects its stdin anyway.
  'while read -r id; do . "$d/$id.sh" & done',
  // Our end closed (the daemon exited): the programs still running finish, then the directory goes.
  'wait',
  '"$3" -rf -- "$d"',
].join('\n');

/** Quotes one shell word: single quotes, each ' written as '\''. */
export function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** Decodes a shell's wait status: `status` (0-255 and 128+N), told apart by dash's `jobs` line. */
export function decodeStatus(status: number, jobsLine: string | undefined): { code: number | null; signal: NodeJS.Signals | null } {
  if (status <= 128 || jobsLine === undefined || /\bDone\b/.test(jobsLine)) return { code: status, signal: null };
  const signal = SIGNAL_NAMES.get(status - 128);
  return signal ? { code: null, signal } : { code: status, signal: null };
}

interface Pending {
  job: RunJob;
  post: Post;
  pid?: number;
  timedOut: boolean;
  killOnPid: boolean;
  timer?: NodeJS.Timeout;
}

/** The error spawn gives for a program it cannot start (ENOENT, EACCES), before anything is forked. */
function spawnError(code: 'ENOENT' | 'EACCES', file: string): { message: string; code: string; errno: number; syscall: string; path: string } {
  const errno = code === 'ENOENT' ? -osConstants.errno.ENOENT : -osConstants.errno.EACCES;
  return { message: `spawn ${file} ${code}`, code, errno, syscall: `spawn ${file}`, path: file };
}

/** Checks what spawn would refuse: a program that is not there, not a file or not executable. */
function checkProgram(file: string, env: NodeJS.ProcessEnv): 'ENOENT' | 'EACCES' | undefined {
  const candidates = file.includes('/') ? [file] : (env.PATH ?? '/usr/bin:/bin').split(delimiter).map((dir) => join(dir || '.', file));
  let seen: 'ENOENT' | 'EACCES' = 'ENOENT';
  for (const path of candidates) {
    try {
      if (!statSync(path).isFile()) continue;
      accessSync(path, fsConstants.X_OK);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') seen = 'EACCES';
    }
  }
  return seen;
}

const NAME_OK = /^[^=\0]+$/;

export class Launcher {
  private child?: ChildProcessWithoutNullStreams;
  private dir = '';
  private ready = false;
  /** Jobs written before the shell said ready. */
  private waiting: Array<{ job: RunJob; post: Post }> = [];
  private readonly pending = new Map<number, Pending>();
  private out = '';
  private err = '';
  /** False once the shell said it cannot launch here: spawn does everything after that. */
  private usable = SH_PATH !== undefined && ENV_PATH !== undefined && RM_PATH !== undefined;

  constructor(private readonly fallback: (job: RunJob, post: Post) => void) {}

  /** Runs one job through the shell, or through `fallback` when the shell cannot take it. */
  run(job: RunJob, post: Post): void {
    if (!this.usable || !this.accepts(job)) return this.fallback(job, post);
    const env = job.env ?? process.env;
    const refused = checkProgram(job.file, env);
    if (refused) return post({ id: job.id, error: spawnError(refused, job.file) });
    if (job.cwd !== undefined && !isDirectory(job.cwd)) return post({ id: job.id, error: spawnError('ENOENT', job.file) });
    this.start();
    if (!this.ready) {
      this.waiting.push({ job, post });
      this.hold();
      return;
    }
    this.send(job, post);
  }

  /** Whether the shell can run `job` exactly as spawn would. */
  private accepts(job: RunJob): boolean {
    if (job.fds.length > 0 || job.file.includes('=') || job.file.includes('\0') || job.args.some((a) => a.includes('\0'))) return false;
    const env = job.env ?? process.env;
    for (const [k, v] of Object.entries(env)) if (v !== undefined && (!NAME_OK.test(k) || v.includes('\0'))) return false;
    return true;
  }

  private start(): void {
    if (this.child) return;
    const base = existsSync('/dev/shm') && isWritableDir('/dev/shm') ? '/dev/shm' : tmpdir();
    this.dir = mkdtempSync(join(base, 'berth-exec-'));
    this.ready = false;
    this.out = '';
    this.err = '';
    // An empty environment: each job sets its program's whole environment through env -i.
    const child = spawn(SH_PATH!, ['-c', LAUNCHER_SCRIPT, 'berth-exec-launcher', this.dir, ENV_PATH!, RM_PATH!], { stdio: ['pipe', 'pipe', 'pipe'], env: {} });
    this.child = child;
    const dir = this.dir;
    child.stdin.on('error', () => undefined); // EPIPE after the shell died: its stdout's close tells.
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (s: string) => this.onData(s));
    child.stderr.on('data', (b: Buffer) => {
      if (this.err.length < 4096) this.err += b.toString();
    });
    child.on('error', (err) => this.onGone(child, dir, `exec launcher: ${err.message}`));
    // The stdout pipe closes when the shell and every job subshell (which write to it) are gone,
    // so a job whose program outlived a killed shell still reports.
    child.stdout.on('close', () => this.onGone(child, dir, `exec launcher exited${this.err ? `: ${this.err.trim()}` : ''}`));
  }

  private send(job: RunJob, post: Post): void {
    const p: Pending = { job, post, timedOut: false, killOnPid: false };
    try {
      writeFileSync(join(this.dir, `${job.id}.sh`), this.script(job));
      if (job.input !== undefined) writeFileSync(join(this.dir, `${job.id}.in`), job.input);
    } catch {
      this.cleanup(job.id);
      return this.fallback(job, post);
    }
    this.pending.set(job.id, p);
    if (job.timeoutMs !== undefined) {
      p.timer = setTimeout(() => {
        p.timedOut = true;
        if (p.pid !== undefined) kill(p.pid);
        else p.killOnPid = true;
      }, job.timeoutMs);
    }
    this.hold();
    this.child!.stdin.write(`${job.id}\n`);
  }

  private script(job: RunJob): string {
    const f = (name: string) => shellWord(join(this.dir, `${job.id}.${name}`));
    const env = job.env ?? process.env;
    const words = [ENV_PATH!, '--default-signal', '-i', '-C', job.cwd ?? process.cwd(), '--'];
    for (const [k, v] of Object.entries(env)) if (v !== undefined) words.push(`${k}=${v}`);
    words.push(job.file, ...job.args);
    const stdin = job.input === undefined ? '/dev/null' : join(this.dir, `${job.id}.in`);
    const stdout = job.stdout ? join(this.dir, `${job.id}.out`) : '/dev/null';
    return [
      `${words.map(shellWord).join(' ')} <${shellWord(stdin)} >${shellWord(stdout)} 2>${f('err')} &`,
      'p=$!',
      `echo "p ${job.id} $p"`,
      'wait "$p"',
      's=$?',
      `[ "$s" -gt 128 ] && jobs >${f('st')}`,
      `echo "x ${job.id} $s"`,
      '',
    ].join('\n');
  }

  private onData(s: string): void {
    this.out += s;
    let nl: number;
    while ((nl = this.out.indexOf('\n')) >= 0) {
      const line = this.out.slice(0, nl);
      this.out = this.out.slice(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (line === 'ready') {
      this.ready = true;
      const waiting = this.waiting;
      this.waiting = [];
      for (const w of waiting) this.send(w.job, w.post);
      return;
    }
    if (line === 'unsupported') {
      this.usable = false;
      const waiting = this.waiting;
      this.waiting = [];
      for (const w of waiting) this.fallback(w.job, w.post);
      return;
    }
    const [kind, idText, value] = line.split(' ');
    const p = this.pending.get(Number(idText));
    if (!p) return;
    if (kind === 'p') {
      p.pid = Number(value);
      if (p.killOnPid) kill(p.pid);
    } else if (kind === 'x') {
      this.finish(p, Number(value));
    }
  }

  private finish(p: Pending, status: number): void {
    const { id } = p.job;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    const read = (name: string) => {
      try {
        return readFileSync(join(this.dir, `${id}.${name}`));
      } catch {
        return undefined;
      }
    };
    const stdout = p.job.stdout ? (read('out') ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const stderr = read('err') ?? Buffer.alloc(0);
    const { code, signal } = decodeStatus(status, status > 128 ? read('st')?.toString() : undefined);
    this.cleanup(id);
    this.idle();
    p.post({ id, code, signal, stdout, stderr, timedOut: p.timedOut });
  }

  private cleanup(id: number): void {
    for (const name of ['sh', 'in', 'out', 'err', 'st']) {
      try {
        unlinkSync(join(this.dir, `${id}.${name}`));
      } catch {
        // not made for this job
      }
    }
  }

  /** The shell's process and pipes, which keep the thread alive only while a job is out. */
  private handles(): Array<{ ref(): void; unref(): void }> {
    const c = this.child;
    return c ? [c, c.stdin, c.stdout, c.stderr] as unknown as Array<{ ref(): void; unref(): void }> : [];
  }

  private hold(): void {
    for (const h of this.handles()) h.ref();
  }

  /** Lets the thread end while no job runs: the shell is not a reason to stay alive. */
  private idle(): void {
    if (this.pending.size > 0 || this.waiting.length > 0) return;
    for (const h of this.handles()) h.unref();
  }

  private onGone(child: ChildProcessWithoutNullStreams, dir: string, message: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    const jobs = [...this.pending.values()];
    this.pending.clear();
    const waiting = this.waiting;
    this.waiting = [];
    for (const p of jobs) {
      if (p.timer) clearTimeout(p.timer);
      // No pid reported: the shell died before it read the job. (A job's subshell reports the pid
      // right after it forks the program, and the pipe has closed, so no report is on its way.)
      // It is spawned instead, unless its time ran out meanwhile; a job that ran is lost with it.
      if (p.pid === undefined && !p.timedOut) this.fallback(p.job, p.post);
      else p.post({ id: p.job.id, error: { message } });
    }
    rmSync(dir, { recursive: true, force: true });
    // Jobs not yet handed to the shell are spawned (a shell that cannot start would otherwise be
    // retried for them without end); the next job starts a new shell.
    for (const w of waiting) this.fallback(w.job, w.post);
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isWritableDir(path: string): boolean {
  try {
    accessSync(path, fsConstants.W_OK);
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
