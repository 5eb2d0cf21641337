import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Resident set size of a process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Number of open file descriptors of a process, from /proc/<pid>/fd. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What a program run to its end said: its exit code (128 when killed by a signal) and its output. */
export interface ProgramResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bin` with `argv` (never through a shell) to its end, with `input` on its stdin, and
 * kills it with SIGKILL after `timeoutMs`. Resolves with its code and output whatever the code;
 * rejects only when it cannot start.
 */
export function runProgram(bin: string, argv: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs: number }): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, argv, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    // A program may exit before reading its stdin; that is its business, not a test failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}
