import type { Any, shim, task, types } from '@berth/api';
import type { Context } from '@berth/context';
import { token } from '@berth/plugin';

/** The plugin type of runtime v2 task managers (containerd's `io.containerd.runtime.v2`). */
export const RUNTIME_V2_PLUGIN_TYPE = 'io.containerd.runtime.v2';

/** How a process ended: its pid, exit status and time (Go's zero time when unknown). */
export interface Exit {
  pid: number;
  status: number;
  timestamp?: Date;
}

/** The stdio of a process, passed to the shim unchanged (FIFO paths or URIs, made by the client). */
export interface ProcessIO {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** What a task is created from. */
export interface CreateOpts {
  /** The OCI runtime spec, JSON (the container's spec Any value). */
  spec: Buffer;
  /** The rootfs mounts; the shim mounts them on `<bundle>/rootfs` itself. */
  rootfs: types.Mount[];
  io: ProcessIO;
  /** A checkpoint directory to restore from. */
  checkpoint?: string;
  /** The runtime name (`io.containerd.runc.v2`) or an absolute shim binary path. */
  runtime: string;
  /** The container's runtime options (sent to the shim's `start` on stdin). */
  runtimeOptions?: Any;
  /** Task options; they take priority over the runtime options in the shim's Create. */
  taskOptions?: Any;
}

/** One process of a task (its init process or an exec), as the shim reports it. */
export interface Process {
  /** The container id for init, the exec id for an exec. */
  readonly id: string;
  state(ctx: Context): Promise<shim.StateResponse>;
  kill(ctx: Context, signal: number, all: boolean): Promise<void>;
  resizePty(ctx: Context, width: number, height: number): Promise<void>;
  closeIO(ctx: Context): Promise<void>;
  start(ctx: Context): Promise<number>;
  wait(ctx: Context): Promise<Exit>;
  delete(ctx: Context): Promise<Exit>;
}

/** A running task: the init process plus execs, stats and control. */
export interface Task extends Process {
  readonly namespace: string;
  readonly bundle: string;
  /** The pid of the init process (0 before it is known). */
  readonly pid: number;
  /** Returns a process of the task; NotFound from the shim when `execId` is unknown. */
  process(ctx: Context, execId: string): Promise<Process>;
  exec(ctx: Context, execId: string, opts: { spec?: Any; io: ProcessIO }): Promise<Process>;
  pids(ctx: Context): Promise<task.ProcessInfo[]>;
  pause(ctx: Context): Promise<void>;
  resume(ctx: Context): Promise<void>;
  checkpoint(ctx: Context, path: string, options?: Any): Promise<void>;
  update(ctx: Context, resources: Any | undefined, annotations: Record<string, string>): Promise<void>;
  /** Returns the shim's Stats Any (runc: `io.containerd.cgroups.v1.Metrics` on cgroup v1). */
  stats(ctx: Context): Promise<Any | undefined>;
}

/** Runs tasks through shims, one per container, by namespace. */
export interface TaskManager {
  /** Creates a task; AlreadyExists `task <id>` when the container already has one. */
  create(ctx: Context, id: string, opts: CreateOpts): Promise<Task>;
  /** Returns a task; NotFound when the container has none. */
  get(ctx: Context, id: string): Task;
  /** Returns the namespace's tasks (all namespaces when `all`), by id. */
  list(ctx: Context, all?: boolean): Task[];
  /** Deletes a stopped task's init process, shuts its shim down and removes its bundle. */
  delete(ctx: Context, id: string): Promise<Exit>;
  /**
   * Starts the shim of a task about to be created, while the caller still makes its rootfs and
   * container record. The next `create` of `id` with the same spec, runtime and options uses it;
   * one that differs shuts it down first and starts its own. Resolves when the shim is ready
   * (never rejects: a shim that failed to start is started again, and fails, in `create`).
   * Optional: a runtime without it starts the shim in `create`.
   */
  prestart?(ctx: Context, id: string, opts: PrestartOpts): Promise<void>;
  /** Shuts down a prestarted shim that `create` will not use (the caller failed on the way). */
  abandon?(ctx: Context, id: string): Promise<void>;
}

/** What a shim needs before its task's Create: the spec, the runtime and its options. */
export type PrestartOpts = Pick<CreateOpts, 'spec' | 'runtime' | 'runtimeOptions' | 'taskOptions'>;

export const TaskManagerToken = token<TaskManager>(`${RUNTIME_V2_PLUGIN_TYPE}/task`);
