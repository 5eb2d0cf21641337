import { openSync, rmSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import { join } from 'node:path';
import { Any, shim, task } from '@berth/api';
import type { Context } from '@berth/context';
import { UnavailableError, UnknownError, kindOf, wrap } from '@berth/errdefs';
import { type FifoPool, run } from '@berth/exec';
import { validate } from '@berth/identifiers';
import type { Logger } from '@berth/log';
import { TtrpcClient, TtrpcServiceClient, createTtrpcClient } from '@berth/ttrpc';
import type { Bundle } from './bundle';
import type { Exit, Process, ProcessIO, Task } from './types';

type ShimClient = TtrpcServiceClient<typeof shim.TaskService>;

/** Strips `unix://` from a shim address; ttrpc shims only listen on unix sockets. */
export function socketPathOf(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

/** The options of every shim call: the task's namespace (ttrpc metadata) and the caller's signal. */
const callOptions = (namespace: string, ctx: Context) => ({ namespace, signal: ctx.signal });

/**
 * Opens the bundle's `log` FIFO (creating it, from `fifos` when given: a FIFO made ahead costs no
 * fork on the way to the shim's start) and copies what the shim writes to the logger.
 */
export async function openShimLog(bundle: Bundle, logger: Logger, fifos?: FifoPool): Promise<Socket | undefined> {
  const path = join(bundle.path, 'log');
  try {
    // Fails when the FIFO exists already (reconnect); the open below reports real trouble.
    await (fifos ? fifos.make([path]) : run('mkfifo', ['-m', '0700', path], { stdout: false })).catch(() => undefined);
    // Read-write, so that the FIFO always has a writer and never reports end of file between
    // shim processes; the shim's own writes then never block on a missing reader.
    const fd = openSync(path, 'r+');
    const sock = new Socket({ fd, readable: true, writable: false });
    let buffered = '';
    sock.on('data', (b: Buffer) => {
      buffered += b.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line) logger.debug(line, { id: bundle.id, namespace: bundle.namespace, source: 'shim' });
    });
    sock.on('error', () => undefined);
    return sock;
  } catch (err) {
    logger.warn('failed to open shim log', { id: bundle.id, error: (err as Error).message });
    return undefined;
  }
}

/** Connects to a shim's ttrpc socket. */
export function connectShim(address: string): Promise<{ socket: Socket; client: TtrpcClient }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPathOf(address));
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({ socket, client: new TtrpcClient(socket) });
    });
    socket.once('error', reject);
  });
}

/**
 * Makes a shim's UNKNOWN errors read as containerd relays them: its client turns the status into
 * errdefs' ErrUnknown ("<message>: unknown"), which the daemon then sends on as is.
 */
function relayErrors(client: ShimClient): ShimClient {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(client) as Array<[string, (...a: unknown[]) => Promise<unknown>]>) {
    out[name] = (...args: unknown[]) =>
      fn(...args).catch((err: unknown) => {
        if (kindOf(err) === 'unknown' && err instanceof Error) throw new UnknownError(`${err.message}: unknown`, { cause: err });
        throw err;
      });
  }
  return out as ShimClient;
}

/** Removes a unix socket nothing serves any more. */
export async function removeStaleSocket(path: string): Promise<void> {
  try {
    const { socket } = await connectShim(path);
    socket.destroy();
  } catch {
    rmSync(path, { force: true });
  }
}

const toExit = (r: { pid: number; exitStatus: number; exitedAt?: Date }): Exit => ({ pid: r.pid, status: r.exitStatus, timestamp: r.exitedAt });

class ShimProcess implements Process {
  constructor(
    private readonly parent: ShimTask | undefined,
    readonly id: string,
    private readonly execId: string,
  ) {}

  /** The task this process belongs to (itself for the init process). */
  protected get owner(): ShimTask {
    return this.parent ?? (this as unknown as ShimTask);
  }

  protected get c(): ShimClient {
    return this.owner.client;
  }
  protected o(ctx: Context) {
    return callOptions(this.owner.namespace, ctx);
  }

  state(ctx: Context): Promise<shim.StateResponse> {
    return this.c.state({ id: this.owner.id, execId: this.execId }, this.o(ctx));
  }
  async kill(ctx: Context, signal: number, all: boolean): Promise<void> {
    await this.c.kill({ id: this.owner.id, execId: this.execId, signal, all }, this.o(ctx));
  }
  async resizePty(ctx: Context, width: number, height: number): Promise<void> {
    await this.c.resizePty({ id: this.owner.id, execId: this.execId, width, height }, this.o(ctx));
  }
  async closeIO(ctx: Context): Promise<void> {
    await this.c.closeIo({ id: this.owner.id, execId: this.execId, stdin: true }, this.o(ctx));
  }
  async start(ctx: Context): Promise<number> {
    const res = await this.c.start({ id: this.owner.id, execId: this.execId }, this.o(ctx));
    return res.pid;
  }
  async wait(ctx: Context): Promise<Exit> {
    const res = await this.c.wait({ id: this.owner.id, execId: this.execId }, this.o(ctx));
    return { pid: 0, status: res.exitStatus, timestamp: res.exitedAt };
  }
  async delete(ctx: Context): Promise<Exit> {
    return toExit(await this.c.delete({ id: this.owner.id, execId: this.execId }, this.o(ctx)));
  }
}

/**
 * A task served by one shim over ttrpc: the init process (process id = container id) and the
 * calls on the whole task. The connection's end is how a dead shim is noticed (`closed`).
 */
export class ShimTask extends ShimProcess implements Task {
  readonly client: ShimClient;
  /** Resolves when the ttrpc connection to the shim ends. */
  readonly closed: Promise<void>;
  pid = 0;
  shimPid = 0;

  constructor(
    id: string,
    readonly namespace: string,
    readonly bundle: string,
    readonly bundleRef: Bundle,
    readonly address: string,
    /** The shim binary, for `delete` after the shim died. */
    readonly binary: string,
    private readonly conn: { socket: Socket; client: TtrpcClient },
    private readonly log?: Socket,
  ) {
    super(undefined, id, '');
    this.client = relayErrors(createTtrpcClient(shim.TaskService, conn.client, { namespace }));
    this.closed = new Promise((resolve) => {
      if (conn.socket.destroyed) resolve();
      else conn.socket.once('close', () => resolve());
    });
  }

  /** Asks the shim for its pid and the task's; fails when the shim does not answer. */
  async connect(ctx: Context, timeoutMs = 5_000): Promise<void> {
    const res = await this.c.connect({ id: this.id }, { ...this.o(ctx), timeoutMs });
    this.shimPid = res.shimPid;
    // 0 before the task is created; a Connect that overlapped Create must not undo its pid.
    if (res.taskPid !== 0) this.pid = res.taskPid;
  }

  async create(ctx: Context, req: Omit<shim.CreateTaskRequest, 'id' | 'bundle'>): Promise<number> {
    const res = await this.c.create({ ...req, id: this.id, bundle: this.bundle }, this.o(ctx));
    this.pid = res.pid;
    return res.pid;
  }

  async process(ctx: Context, execId: string): Promise<Process> {
    // The shim answers NotFound for an unknown exec id.
    await this.c.state({ id: this.id, execId }, this.o(ctx));
    return new ShimProcess(this, execId, execId);
  }

  async exec(ctx: Context, execId: string, opts: { spec?: Any; io: ProcessIO }): Promise<Process> {
    try {
      validate(execId);
    } catch (err) {
      throw wrap(err, `invalid exec id ${execId}`);
    }
    await this.c.exec({ id: this.id, execId, terminal: opts.io.terminal, stdin: opts.io.stdin, stdout: opts.io.stdout, stderr: opts.io.stderr, spec: opts.spec }, this.o(ctx));
    return new ShimProcess(this, execId, execId);
  }

  async pids(ctx: Context): Promise<task.ProcessInfo[]> {
    return (await this.c.pids({ id: this.id }, this.o(ctx))).processes;
  }
  async pause(ctx: Context): Promise<void> {
    await this.c.pause({ id: this.id }, this.o(ctx));
  }
  async resume(ctx: Context): Promise<void> {
    await this.c.resume({ id: this.id }, this.o(ctx));
  }
  async checkpoint(ctx: Context, path: string, options?: Any): Promise<void> {
    await this.c.checkpoint({ id: this.id, path, options }, this.o(ctx));
  }
  async update(ctx: Context, resources: Any | undefined, annotations: Record<string, string>): Promise<void> {
    await this.c.update({ id: this.id, resources, annotations }, this.o(ctx));
  }
  async stats(ctx: Context): Promise<Any | undefined> {
    return (await this.c.stats({ id: this.id }, this.o(ctx))).stats;
  }

  /** Asks the shim to exit; its connection then closes (which is the answer). */
  async shutdown(ctx: Context): Promise<void> {
    try {
      await this.c.shutdown({ id: this.id, now: false }, { ...this.o(ctx), timeoutMs: 5_000 });
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
    }
  }

  /** Waits (bounded) for the shim to close the connection. */
  async waitClosed(timeoutMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Closes the connection and the log without touching the shim. */
  close(): void {
    this.conn.client.close();
    this.log?.destroy();
  }
}
