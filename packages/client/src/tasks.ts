import { RUNTIME_SPEC_TYPE_URLS, cgroupsV1, cgroupsV2, containers, packJsonAny, tasks, task as taskTypes, unpackAny, unpackJsonAny } from '@berth/api';
import type { protobuf } from '@berth/api';
import { InvalidArgumentError } from '@berth/errdefs';
import { ProcessIO, type StdioOptions } from './cio';
import { type Connection, type RequestOptions, type Scope, callOptions } from './connection';
import type { Spec } from '@berth/oci-spec';

/** How a process ended. */
export interface ExitStatus {
  /** The exit code, or 128 + the signal number for a process killed by a signal. */
  code: number;
  exitedAt?: Date;
}

/** A process's state as the daemon reports it. */
export type ProcessStatus = 'unknown' | 'created' | 'running' | 'stopped' | 'paused' | 'pausing';

const STATUS: Record<number, ProcessStatus> = {
  [taskTypes.Status.UNKNOWN]: 'unknown',
  [taskTypes.Status.CREATED]: 'created',
  [taskTypes.Status.RUNNING]: 'running',
  [taskTypes.Status.STOPPED]: 'stopped',
  [taskTypes.Status.PAUSED]: 'paused',
  [taskTypes.Status.PAUSING]: 'pausing',
};

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15, SIGCONT: 18, SIGSTOP: 19, SIGWINCH: 28 };

/** A signal's number from its name (`SIGTERM`, `TERM`) or number. */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') return signal;
  if (/^\d+$/.test(signal)) return Number(signal);
  const n = SIGNALS[signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`];
  if (n === undefined) throw new InvalidArgumentError(`unknown signal ${signal}`);
  return n;
}

/**
 * A process in a task: the task's init process (`execId` empty) or an exec. Its stdio is
 * attached when it was created through this client.
 */
export class Process {
  constructor(
    protected readonly conn: Connection,
    protected readonly scope: Scope,
    readonly containerId: string,
    readonly execId: string,
    /** The process id on the host (0 until started, for an exec). */
    public pid: number,
    readonly io?: ProcessIO,
  ) {}

  protected get tasks() {
    return this.conn.service(tasks.TasksService);
  }
  protected opts(o?: RequestOptions) {
    return callOptions(this.scope, o);
  }
  /** The stdin FIFO's writing end, when created with `stdin: 'pipe'`. */
  get stdin() {
    return this.io?.stdin;
  }

  /** Starts the process; returns its pid. */
  async start(o?: RequestOptions): Promise<number> {
    const r = await this.tasks.start({ containerId: this.containerId, execId: this.execId }, this.opts(o));
    this.pid = r.pid;
    this.io?.started(async () => void (await this.tasks.closeIo({ containerId: this.containerId, execId: this.execId, stdin: true }, this.opts())));
    return r.pid;
  }

  /**
   * Waits for the process to exit, then for its stdout and stderr to reach EOF (at most
   * `ioGraceMs`, 5 s by default: a child that kept them open would hold them).
   */
  async wait(o: RequestOptions & { ioGraceMs?: number } = {}): Promise<ExitStatus> {
    const r = await this.tasks.wait({ containerId: this.containerId, execId: this.execId }, this.opts(o));
    await this.io?.drained(o.ioGraceMs);
    return { code: r.exitStatus, ...(r.exitedAt ? { exitedAt: r.exitedAt } : {}) };
  }

  /** Sends a signal (a name or number); `all` signals every process of the task. */
  async kill(signal: string | number = 'SIGTERM', o: RequestOptions & { all?: boolean } = {}): Promise<void> {
    await this.tasks.kill({ containerId: this.containerId, execId: this.execId, signal: signalNumber(signal), all: !!o.all }, this.opts(o));
  }

  /** Resizes the process's terminal. */
  async resize(width: number, height: number, o?: RequestOptions): Promise<void> {
    await this.tasks.resizePty({ containerId: this.containerId, execId: this.execId, width, height }, this.opts(o));
  }

  /** Ends stdin: closes the FIFO's writing end and asks the shim to close the process's stdin. */
  async closeStdin(o?: RequestOptions): Promise<void> {
    await this.io?.closeStdin();
    await this.tasks.closeIo({ containerId: this.containerId, execId: this.execId, stdin: true }, this.opts(o));
  }

  /** The process's state. */
  async status(o?: RequestOptions): Promise<{ status: ProcessStatus; pid: number; exitStatus: number; exitedAt?: Date }> {
    const r = await this.tasks.get({ containerId: this.containerId, execId: this.execId }, this.opts(o));
    const p = r.process!;
    return { status: STATUS[p.status] ?? 'unknown', pid: p.pid, exitStatus: p.exitStatus, ...(p.exitedAt ? { exitedAt: p.exitedAt } : {}) };
  }

  /** Deletes the (exited) exec process and closes its stdio. */
  async delete(o?: RequestOptions): Promise<ExitStatus> {
    try {
      const r = await this.tasks.deleteProcess({ containerId: this.containerId, execId: this.execId }, this.opts(o));
      return { code: r.exitStatus, ...(r.exitedAt ? { exitedAt: r.exitedAt } : {}) };
    } finally {
      this.io?.close();
    }
  }
}

/** Options of an exec: its process (args at least) and stdio. */
export interface ExecOptions extends StdioOptions, RequestOptions {
  args: string[];
  /** `KEY=value` entries; the task's environment by default. */
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
}

/** A container's task: its init process, plus what only a task does. */
export class Task extends Process {
  /** Pauses every process of the task (freezes its cgroup). */
  async pause(o?: RequestOptions): Promise<void> {
    await this.tasks.pause({ containerId: this.containerId }, this.opts(o));
  }

  async resume(o?: RequestOptions): Promise<void> {
    await this.tasks.resume({ containerId: this.containerId }, this.opts(o));
  }

  /** The host pids of the task's processes. */
  async pids(o?: RequestOptions): Promise<number[]> {
    const r = await this.tasks.listPids({ containerId: this.containerId }, this.opts(o));
    return r.processes.map((p) => p.pid);
  }

  /** The task's cgroup metrics, as the daemon packs them (an Any of the cgroups Metrics type). */
  async metrics(o?: RequestOptions): Promise<{ timestamp?: Date; typeUrl: string; data: Buffer }> {
    const r = await this.tasks.metrics({ filters: [`id==${this.containerId}`] }, this.opts(o));
    const m = r.metrics[0];
    return { ...(m?.timestamp ? { timestamp: m.timestamp } : {}), typeUrl: m?.data?.typeUrl ?? '', data: Buffer.from(m?.data?.value ?? []) };
  }

  /**
   * The task's resource use, read from its cgroup statistics (v1 or v2, as the shim reports them):
   * CPU time, memory in use and its limit (undefined when unlimited), processes, block I/O and
   * network bytes.
   */
  async stats(o?: RequestOptions): Promise<TaskStats> {
    const m = await this.metrics(o);
    if (m.typeUrl === '') throw new InvalidArgumentError(`task ${this.containerId} reported no metrics`);
    return taskStats(unpackAny({ typeUrl: m.typeUrl, value: m.data }) as cgroupsV1.Metrics | cgroupsV2.Metrics, m.typeUrl, m.timestamp);
  }

  /**
   * Creates an exec process in the running task (not started): the container's process spec
   * (or `o.base`) with the given args, env, cwd and user, with a terminal when `terminal` is set.
   */
  async exec(execId: string, o: ExecOptions & { base?: Spec['process'] }): Promise<Process> {
    let base = o.base;
    if (!base) {
      const c = (await this.conn.service(containers.ContainersService).get({ id: this.containerId }, this.opts(o))).container!;
      base = c.spec ? unpackJsonAny<Spec>(c.spec).process : undefined;
    }
    const io = await ProcessIO.create(`${this.containerId}-${execId}`, o);
    try {
      const spec = { ...base, args: o.args, terminal: !!o.terminal, ...(o.env ? { env: o.env } : {}), ...(o.cwd ? { cwd: o.cwd } : {}), ...(o.user ? { user: o.user } : {}) };
      await this.tasks.exec(
        { containerId: this.containerId, execId, stdin: io.paths.stdin, stdout: io.paths.stdout, stderr: io.paths.stderr, terminal: io.paths.terminal, spec: packJsonAny(RUNTIME_SPEC_TYPE_URLS.process, spec) as protobuf.Any },
        this.opts(o),
      );
      return new Process(this.conn, this.scope, this.containerId, execId, 0, io);
    } catch (err) {
      io.close();
      throw err;
    }
  }

  /** Deletes the (stopped) task, closes its stdio, and returns how it exited. */
  override async delete(o?: RequestOptions): Promise<ExitStatus> {
    try {
      const r = await this.tasks.delete({ containerId: this.containerId }, this.opts(o));
      return { code: r.exitStatus, ...(r.exitedAt ? { exitedAt: r.exitedAt } : {}) };
    } finally {
      this.io?.close();
    }
  }
}

/** A task's resource use at one moment (see {@link Task.stats}). */
export interface TaskStats {
  timestamp?: Date;
  /** CPU time used, in nanoseconds. */
  cpuNs: number;
  /** Memory in use (without the page cache on cgroup v1, as Docker counts it), in bytes. */
  memoryBytes: number;
  /** The memory limit in bytes; undefined when there is none. */
  memoryLimit?: number;
  pids: number;
  blockRead: number;
  blockWrite: number;
  netRx: number;
  netTx: number;
}

/** The unlimited memory limit as cgroup v1 reports it (a page-rounded 2^63 - 1), and above. */
const UNLIMITED = 2 ** 62;

/** A cgroup counter (a decimal string: they reach 2^63 - 1) as a number. */
const n = (v: string | undefined): number => Number(v ?? 0);
const sum = <T>(list: readonly T[] | undefined, pick: (e: T) => string): number => (list ?? []).reduce((a, e) => a + n(pick(e)), 0);

function taskStats(m: cgroupsV1.Metrics | cgroupsV2.Metrics, typeUrl: string, timestamp?: Date): TaskStats {
  const net = { netRx: sum(m.network, (e) => e.rxBytes), netTx: sum(m.network, (e) => e.txBytes) };
  const at = timestamp ? { timestamp } : {};
  if (typeUrl.endsWith('cgroups.v2.Metrics')) {
    const v2 = m as cgroupsV2.Metrics;
    const limit = n(v2.memory?.usageLimit);
    return {
      ...at,
      cpuNs: n(v2.cpu?.usageUsec) * 1000,
      memoryBytes: Math.max(0, n(v2.memory?.usage) - n(v2.memory?.inactiveFile)),
      ...(limit > 0 && limit < UNLIMITED ? { memoryLimit: limit } : {}),
      pids: n(v2.pids?.current),
      blockRead: sum(v2.io?.usage, (e) => e.rbytes),
      blockWrite: sum(v2.io?.usage, (e) => e.wbytes),
      ...net,
    };
  }
  const v1 = m as cgroupsV1.Metrics;
  const limit = n(v1.memory?.usage?.limit);
  const io = (op: string) => sum((v1.blkio?.ioServiceBytesRecursive ?? []).filter((e) => e.op.toLowerCase() === op), (e) => e.value);
  return {
    ...at,
    cpuNs: n(v1.cpu?.usage?.total),
    memoryBytes: Math.max(0, n(v1.memory?.usage?.usage) - n(v1.memory?.totalInactiveFile)),
    ...(limit > 0 && limit < UNLIMITED ? { memoryLimit: limit } : {}),
    pids: n(v1.pids?.current),
    blockRead: io('read'),
    blockWrite: io('write'),
    ...net,
  };
}
