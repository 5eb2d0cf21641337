import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Any, GO_ZERO_TIME, tasks as api, shim, task as taskTypes, types } from '@berth/api';
import { Context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, NotImplementedError, isNotFound } from '@berth/errdefs';
import { parseAll } from '@berth/filters';
import type { Logger } from '@berth/log';
import type { Container, ContainerStore } from '@berth/metadata';
import { token } from '@berth/plugin';
import type { PrestartOpts, Process, Task, TaskManager } from '@berth/runtime';

const { Status } = taskTypes;

/** Go's zero time: what containerd sends for the exit time of a process still running. */
const ZERO_TIME = GO_ZERO_TIME;

/**
 * The in-process tasks service: containerd's `services/tasks` over the runtime v2 task manager.
 * Every call starts from the container record (NotFound `container "x" in namespace "ns"`); a
 * container without a task answers NotFound `task x not found`, which ctr relies on. Events come
 * from the shims (through Forward) and from the task manager when a shim dies.
 */
export class TasksService {
  constructor(
    private readonly containers: ContainerStore,
    private readonly runtime: TaskManager,
    private readonly logger: Logger,
  ) {}

  private async task(ctx: Context, id: string): Promise<{ container: Container; task: Task }> {
    const container = await this.containers.get(ctx, id);
    try {
      return { container, task: this.runtime.get(ctx, id) };
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`task ${id} not found`, { bare: true, cause: err });
      throw err;
    }
  }

  private async process(ctx: Context, id: string, execId: string): Promise<Process> {
    const { task } = await this.task(ctx, id);
    return execId === '' ? task : task.process(ctx, execId);
  }

  async create(ctx: Context, req: api.CreateTaskRequest): Promise<api.CreateTaskResponse> {
    const container = await this.containers.get(ctx, req.containerId);
    if (req.checkpoint) throw new NotImplementedError('restoring a task from a checkpoint');
    let existing: Task | undefined;
    try {
      existing = this.runtime.get(ctx, req.containerId);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (existing) throw new AlreadyExistsError(`task ${req.containerId}`);
    const t = await this.runtime.create(ctx, req.containerId, {
      spec: container.spec?.value ?? Buffer.from('{}'),
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      runtime: req.runtimePath !== '' ? req.runtimePath : container.runtime.name,
      runtimeOptions: container.runtime.options,
      taskOptions: req.options,
    });
    return { containerId: req.containerId, pid: t.pid };
  }

  /**
   * Starts the shim for the task `containerId` will get, before the container exists (its spec
   * and runtime as its record will hold them): the CRI's RunPodSandbox overlaps it with making
   * the pause container. `create` takes the shim when the record matches; `abandonPrestart` shuts
   * it down otherwise. Nothing happens when the runtime cannot start shims ahead.
   */
  async prestart(ctx: Context, containerId: string, opts: PrestartOpts): Promise<void> {
    await this.runtime.prestart?.(ctx, containerId, opts);
  }

  /** Shuts down a shim `prestart` started that no `create` took. */
  async abandonPrestart(ctx: Context, containerId: string): Promise<void> {
    await this.runtime.abandon?.(ctx, containerId);
  }

  async start(ctx: Context, req: api.StartRequest): Promise<api.StartResponse> {
    const p = await this.process(ctx, req.containerId, req.execId);
    return { pid: await p.start(ctx) };
  }

  async delete(ctx: Context, req: api.DeleteTaskRequest): Promise<api.DeleteResponse> {
    await this.task(ctx, req.containerId);
    const exit = await this.runtime.delete(ctx, req.containerId);
    return { id: '', pid: exit.pid, exitStatus: exit.status, exitedAt: exit.timestamp ?? ZERO_TIME };
  }

  async deleteProcess(ctx: Context, req: api.DeleteProcessRequest): Promise<api.DeleteResponse> {
    const { task } = await this.task(ctx, req.containerId);
    const p = await task.process(ctx, req.execId);
    const exit = await p.delete(ctx);
    return { id: req.execId, pid: exit.pid, exitStatus: exit.status, exitedAt: exit.timestamp ?? ZERO_TIME };
  }

  private async processState(ctx: Context, p: Process): Promise<taskTypes.Process> {
    let state: shim.StateResponse | undefined;
    try {
      state = await p.state(ctx);
    } catch (err) {
      if (isNotFound(err)) throw err;
      this.logger.error(`get state for ${p.id}`, { error: (err as Error).message });
    }
    return {
      containerId: '',
      id: p.id,
      pid: state?.pid ?? 0,
      status: state?.status ?? Status.UNKNOWN,
      stdin: state?.stdin ?? '',
      stdout: state?.stdout ?? '',
      stderr: state?.stderr ?? '',
      terminal: state?.terminal ?? false,
      exitStatus: state?.exitStatus ?? 0,
      exitedAt: state?.exitedAt ?? ZERO_TIME,
    };
  }

  async get(ctx: Context, req: api.GetRequest): Promise<api.GetResponse> {
    const p = await this.process(ctx, req.containerId, req.execId);
    return { process: await this.processState(ctx, p) };
  }

  async list(ctx: Context): Promise<api.ListTasksResponse> {
    namespaceRequired(ctx);
    const out: taskTypes.Process[] = [];
    for (const t of this.runtime.list(ctx)) {
      try {
        out.push(await this.processState(ctx, t));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return { tasks: out };
  }

  async kill(ctx: Context, req: api.KillRequest): Promise<void> {
    const p = await this.process(ctx, req.containerId, req.execId);
    await p.kill(ctx, req.signal, req.all);
  }

  async exec(ctx: Context, req: api.ExecProcessRequest): Promise<void> {
    if (req.execId === '') throw new InvalidArgumentError('exec id cannot be empty', { bare: true });
    const { task } = await this.task(ctx, req.containerId);
    await task.exec(ctx, req.execId, { spec: req.spec, io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal } });
  }

  async resizePty(ctx: Context, req: api.ResizePtyRequest): Promise<void> {
    const p = await this.process(ctx, req.containerId, req.execId);
    await p.resizePty(ctx, req.width, req.height);
  }

  async closeIO(ctx: Context, req: api.CloseIORequest): Promise<void> {
    const p = await this.process(ctx, req.containerId, req.execId);
    if (req.stdin) await p.closeIO(ctx);
  }

  async pause(ctx: Context, req: api.PauseTaskRequest): Promise<void> {
    const { task } = await this.task(ctx, req.containerId);
    await task.pause(ctx);
  }

  async resume(ctx: Context, req: api.ResumeTaskRequest): Promise<void> {
    const { task } = await this.task(ctx, req.containerId);
    await task.resume(ctx);
  }

  async listPids(ctx: Context, req: api.ListPidsRequest): Promise<api.ListPidsResponse> {
    const { task } = await this.task(ctx, req.containerId);
    return { processes: await task.pids(ctx) };
  }

  /**
   * Checkpoints through the shim (runc and criu) into a temp dir. Writing the image into the
   * content store is not done yet; see the report in packages/tasks/README.md.
   */
  async checkpoint(ctx: Context, req: api.CheckpointTaskRequest): Promise<api.CheckpointTaskResponse> {
    const { task } = await this.task(ctx, req.containerId);
    const dir = mkdtempSync(join(process.env.XDG_RUNTIME_DIR || tmpdir(), 'ctd-checkpoint'));
    try {
      await task.checkpoint(ctx, dir, req.options);
      throw new NotImplementedError('storing a checkpoint image in the content store');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async update(ctx: Context, req: api.UpdateTaskRequest): Promise<void> {
    const { task } = await this.task(ctx, req.containerId);
    await task.update(ctx, req.resources, req.annotations);
  }

  async metrics(ctx: Context, req: api.MetricsRequest): Promise<api.MetricsResponse> {
    const filter = parseAll(req.filters);
    const metrics: types.Metric[] = [];
    for (const t of this.runtime.list(ctx)) {
      const match = filter.match({
        field: (path) => (path[0] === 'id' ? t.id : path[0] === 'namespace' ? t.namespace : undefined),
      });
      if (!match) continue;
      const collected = new Date();
      let stats: Any | undefined;
      try {
        stats = await t.stats(ctx);
      } catch (err) {
        if (!isNotFound(err)) this.logger.error(`collecting metrics for ${t.id}`, { error: (err as Error).message });
        continue;
      }
      metrics.push({ timestamp: collected, id: t.id, data: stats });
    }
    return { metrics };
  }

  async wait(ctx: Context, req: api.WaitRequest): Promise<api.WaitResponse> {
    const p = await this.process(ctx, req.containerId, req.execId);
    const exit = await p.wait(ctx);
    return { exitStatus: exit.status, exitedAt: exit.timestamp ?? ZERO_TIME };
  }
}

export const TasksServiceToken = token<TasksService>('io.containerd.service.v1/tasks');
