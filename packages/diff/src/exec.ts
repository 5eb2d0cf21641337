import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

/** What a finished helper process left behind. */
export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a helper binary (mknod, setfattr, getfattr) to completion, feeding `input` on stdin.
 * Node has no mknod or xattr API, so these small tools are the system-call boundary. `fds` are
 * handed to the child as its fds 3, 4, ... (a path that is not UTF-8 cannot be an argument, but
 * `/proc/self/fd/3` can name it).
 */
export function execFile(cmd: string, args: string[], input?: Buffer | string, fds: number[] = []): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe', ...fds] }) as ChildProcessWithoutNullStreams;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.stdin.on('error', () => undefined); // EPIPE when the tool exits early: its exit code tells
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(input ?? '');
  });
}
