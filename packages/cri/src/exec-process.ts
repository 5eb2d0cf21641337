/**
 * An exec in a running task with its stdio on Node streams, through FIFOs as containerd's cio
 * makes them: what ExecSync uses, and what the streaming server's Exec is wired to.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Context } from '@berth/context';
import { isNotFound, wrap } from '@berth/errdefs';
import type { FifoPool } from '@berth/exec';
import { newFifos, openFifoReader, openFifoWriter } from './container-io';

/** The tasks service calls an exec needs (berthd's in-process tasks service has them). */
export interface ExecTasks {
  exec(ctx: Context, req: { containerId: string; execId: string; stdin: string; stdout: string; stderr: string; terminal: boolean; spec: { typeUrl: string; value: Buffer } }): Promise<void>;
  start(ctx: Context, req: { containerId: string; execId: string }): Promise<{ pid: number }>;
  wait(ctx: Context, req: { containerId: string; execId: string }): Promise<{ exitStatus: number; exitedAt?: Date }>;
  kill(ctx: Context, req: { containerId: string; execId: string; signal: number; all: boolean }): Promise<void>;
  deleteProcess(ctx: Context, req: { containerId: string; execId: string }): Promise<unknown>;
  resizePty(ctx: Context, req: { containerId: string; execId: string; width: number; height: number }): Promise<void>;
  closeIO(ctx: Context, req: { containerId: string; execId: string; stdin: boolean }): Promise<void>;
}

/** What to run and where its stdio goes. */
export interface ExecOptions {
  containerId: string;
  /** The process spec (the container's, with the exec's args, terminal and env). */
  process: Record<string, unknown>;
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  tty: boolean;
  /** Where the FIFOs are made (a directory of the daemon's state). */
  fifoDir: string;
  /** Where the FIFOs come from (made ahead). */
  fifos: FifoPool;
  /** The exec id; default 64 random hex characters. */
  execId?: string;
}

/** A started exec. */
export interface ExecHandle {
  execId: string;
  pid: number;
  /** Resolves with the exit code once the process exited and its output was copied; the process is deleted by then. */
  exited: Promise<number>;
  resize(width: number, height: number): Promise<void>;
  kill(signal: number): Promise<void>;
}

const PROCESS_SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';

/**
 * Creates and starts an exec in a running task: FIFOs for its stdio, copied to and from the
 * given streams; stdin's end closes the process's stdin. When the process exits, its output is
 * drained, the exec deleted and the FIFOs removed.
 */
export async function execInTask(tasks: ExecTasks, ctx: Context, o: ExecOptions): Promise<ExecHandle> {
  const execId = o.execId ?? randomBytes(32).toString('hex');
  const paths = await newFifos(o.fifos, o.fifoDir, execId.slice(0, 16), { stdin: !!o.stdin, terminal: o.tty });
  const dir = dirname(paths.stdout);
  const readers = [openFifoReader(paths.stdout), ...(paths.stderr ? [openFifoReader(paths.stderr)] : [])];
  const writer = paths.stdin ? openFifoWriter(paths.stdin) : undefined;
  const sinks = [o.stdout, o.stderr];
  const copies = readers.map(
    (r, i) =>
      new Promise<void>((resolve) => {
        r.on('data', (chunk: Buffer) => sinks[i]?.write(chunk));
        r.once('end', () => resolve());
        r.once('close', () => resolve());
      }),
  );
  const cleanup = () => {
    for (const r of readers) r.destroy();
    writer?.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  const id = { containerId: o.containerId, execId };
  try {
    await tasks.exec(ctx, { ...id, stdin: paths.stdin, stdout: paths.stdout, stderr: paths.stderr, terminal: o.tty, spec: { typeUrl: PROCESS_SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(o.process)) } });
  } catch (err) {
    cleanup();
    throw err;
  }
  const waited = tasks.wait(ctx, id);
  waited.catch(() => undefined);
  let pid: number;
  try {
    pid = (await tasks.start(ctx, id)).pid;
  } catch (err) {
    await tasks.deleteProcess(ctx, id).catch(() => undefined);
    cleanup();
    throw wrap(err, `failed to start exec ${JSON.stringify(execId)}`);
  }
  if (o.stdin && writer) {
    const input = o.stdin;
    input.on('data', (chunk: Buffer) => writer.write(chunk));
    // Our end of the FIFO closes first (the shim then reads EOF), then the shim is asked to close
    // the process's stdin, as containerd's client does.
    const end = () => writer.end(() => void tasks.closeIO(ctx, { ...id, stdin: true }).catch(() => undefined));
    input.once('end', end);
  }
  const exited = (async () => {
    let code: number;
    try {
      code = (await waited).exitStatus;
    } finally {
      // Output written before the exit is still in the FIFOs: let it through (bounded: a child
      // that inherited the FIFOs may hold them open).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(copies), new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
      clearTimeout(timer);
      await tasks.deleteProcess(ctx, id).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
      cleanup();
    }
    return code;
  })();
  exited.catch(() => undefined);
  return {
    execId,
    pid,
    exited,
    resize: (width, height) => tasks.resizePty(ctx, { ...id, width, height }),
    kill: (signal) => tasks.kill(ctx, { ...id, signal, all: false }),
  };
}
