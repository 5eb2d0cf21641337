import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Any, shim } from '@berth/api';
import { TaskDelete, TaskExit } from '@berth/api/events';
import { Context, context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, NotFoundError, UnavailableError, isNotFound, wrap } from '@berth/errdefs';
import { FifoPool } from '@berth/exec';
import type { Publisher } from '@berth/events';
import type { Logger } from '@berth/log';
import type { ContainerStore } from '@berth/metadata';
import { Bundle } from './bundle';
import { resolveShimBinary, runShimCommand } from './shim-binary';
import { ShimTask, connectShim, openShimLog, removeStaleSocket, socketPathOf } from './shim-task';
import type { CreateOpts, Exit, PrestartOpts, Task, TaskManager } from './types';

export interface ShimTaskManagerOptions {
  /** `<state>/io.containerd.runtime.v2.task`: bundles, by namespace and id. */
  state: string;
  /** `<root>/io.containerd.runtime.v2.task`: the bundles' work dirs. */
  root: string;
  /** The daemon's gRPC socket and its ttrpc sibling, given to shims. */
  address: string;
  ttrpcAddress: string;
  /** What shims run to publish events when ttrpc is not available (`<binary> publish`). */
  publishBinary: string;
  publisher: Publisher;
  /** Containers, to find the runtime of a bundle without `shim-binary-path` on restart. */
  containers?: ContainerStore;
  logger: Logger;
  /** Pass `-debug` to shims. */
  debug?: boolean;
}

/** How long a shim's `start` may take before it is considered failed. */
const START_TIMEOUT_MS = 30_000;

/**
 * containerd's runtime v2 task manager: one shim process per task, started with the shim's
 * `start` command in the task's bundle and driven over ttrpc. A shim that goes away without a
 * Delete (it crashed or was killed) is cleaned up with the shim's `delete` command, and the task
 * is reported as exited and deleted (TaskExit, TaskDelete), as containerd does. Shims outlive the
 * daemon; `load` reconnects to them on startup.
 */
/** The annotation by which runc-v2 runs a task in another task's shim (its sandbox's). */
const SANDBOX_ID_ANNOTATION = 'io.kubernetes.cri.sandbox-id';

/** Under the state dir: FIFOs made ahead for the shims' logs (emptied at each start). */
const FIFO_POOL_DIR = '.fifo-pool';

export class ShimTaskManager implements TaskManager {
  private readonly tasks = new Map<string, ShimTask>();
  private readonly reserved = new Set<string>();
  /** Shims started ahead of their task's Create (`prestart`), by namespace/id: undefined when the start failed. */
  private readonly prestarted = new Map<string, { opts: PrestartOpts; ready: Promise<ShimTask | undefined> }>();
  private closing = false;

  constructor(private readonly opts: ShimTaskManagerOptions) {}

  /** The shims' log FIFOs, made ahead (first used at the first task). */
  private fifoPool: FifoPool | undefined;
  private get fifos(): FifoPool {
    this.fifoPool ??= new FifoPool(join(this.opts.state, FIFO_POOL_DIR));
    return this.fifoPool;
  }

  private key(ns: string, id: string): string {
    return `${ns}/${id}`;
  }

  private commandConfig(binary: string, namespace: string, cwd: string) {
    const o = this.opts;
    return { binary, namespace, address: o.address, ttrpcAddress: o.ttrpcAddress, publishBinary: o.publishBinary, cwd, debug: o.debug };
  }

  async create(ctx: Context, id: string, opts: CreateOpts): Promise<Task> {
    const ns = namespaceRequired(ctx);
    const key = this.key(ns, id);
    if (this.tasks.has(key) || this.reserved.has(key)) throw new AlreadyExistsError(`task ${id}`);
    this.reserved.add(key);
    try {
      const topts = opts.taskOptions ?? opts.runtimeOptions;
      const task = (await this.takePrestarted(key, opts)) ?? (await this.launch(ctx, ns, id, opts));
      const connected = task.connect(ctx).catch(() => undefined);
      try {
        await task.create(ctx, {
          rootfs: opts.rootfs,
          terminal: opts.io.terminal,
          stdin: opts.io.stdin,
          stdout: opts.io.stdout,
          stderr: opts.io.stderr,
          checkpoint: opts.checkpoint ?? '',
          parentCheckpoint: '',
          options: topts,
        });
      } catch (err) {
        await connected;
        await this.discard(task);
        throw wrap(err, 'failed to create shim task');
      }
      await connected;
      this.tasks.set(key, task);
      void task.closed.then(() => this.onShimClosed(task));
      return task;
    } finally {
      this.reserved.delete(key);
    }
  }

  /**
   * Makes the bundle and starts the shim of a task about to be created, as `create` would (the
   * CRI's RunPodSandbox does this while it prepares the pause container's snapshot and record).
   * A failure is only logged: `create` then starts the shim itself and reports what fails.
   */
  async prestart(ctx: Context, id: string, opts: PrestartOpts): Promise<void> {
    const ns = namespaceRequired(ctx);
    const key = this.key(ns, id);
    if (this.tasks.has(key) || this.reserved.has(key) || this.prestarted.has(key)) return; // create says AlreadyExists
    const ready = this.launch(ctx, ns, id, opts).catch((err: Error) => {
      this.opts.logger.debug('prestarting shim failed; create starts it', { id, namespace: ns, error: err.message });
      return undefined;
    });
    this.prestarted.set(key, { opts, ready });
    await ready;
  }

  /**
   * Makes the task's bundle and gets it a shim: its group's running one, or a new one through the
   * shim's `start`. A failure removes the bundle again.
   */
  private async launch(ctx: Context, ns: string, id: string, opts: PrestartOpts): Promise<ShimTask> {
    let binary: string;
    try {
      binary = resolveShimBinary(opts.runtime);
    } catch (err) {
      throw wrap(err, 'failed to start shim');
    }
    const bundle = await Bundle.create(this.opts.state, this.opts.root, ns, id, opts.spec);
    try {
      return (await this.joinGroup(ctx, bundle, binary, opts.spec)) ?? (await this.startShim(ctx, bundle, binary, opts.taskOptions ?? opts.runtimeOptions));
    } catch (err) {
      await bundle.delete().catch((e) => this.opts.logger.warn('failed to remove bundle', { id, error: (e as Error).message }));
      throw wrap(err, 'failed to start shim');
    }
  }

  /** Shuts down the shim `prestart` started for `id`, if `create` has not taken it. */
  async abandon(ctx: Context, id: string): Promise<void> {
    const key = this.key(namespaceRequired(ctx), id);
    const pre = this.prestarted.get(key);
    if (!pre) return;
    this.prestarted.delete(key);
    const task = await pre.ready;
    if (task) await this.discard(task);
  }

  /** The prestarted shim of `key` if it was started for these options; one started for others is discarded. */
  private async takePrestarted(key: string, opts: CreateOpts): Promise<ShimTask | undefined> {
    const pre = this.prestarted.get(key);
    if (!pre) return undefined;
    this.prestarted.delete(key);
    const task = await pre.ready;
    if (!task) return undefined;
    const same = (a?: Any, b?: Any) => a === b || (a !== undefined && b !== undefined && a.typeUrl === b.typeUrl && Buffer.compare(a.value, b.value) === 0);
    if (pre.opts.spec.equals(opts.spec) && pre.opts.runtime === opts.runtime && same(pre.opts.taskOptions ?? pre.opts.runtimeOptions, opts.taskOptions ?? opts.runtimeOptions)) return task;
    await this.discard(task);
    return undefined;
  }

  /**
   * A task whose spec names a group (runc-v2's `io.kubernetes.cri.sandbox-id` annotation: a pod's
   * containers share its sandbox's shim) joins the group's running shim directly, as that shim's
   * `start` would have it do: the bundle records the shim's address, and no shim process is
   * forked just to print it. Undefined when there is no such group or its shim is not running
   * here with the same binary; the shim's `start` then decides, as before.
   */
  private async joinGroup(ctx: Context, bundle: Bundle, binary: string, spec: Buffer): Promise<ShimTask | undefined> {
    if (!binary.endsWith('containerd-shim-runc-v2')) return undefined;
    let group: unknown;
    try {
      group = (JSON.parse(spec.toString()) as { annotations?: Record<string, unknown> }).annotations?.[SANDBOX_ID_ANNOTATION];
    } catch {
      return undefined;
    }
    if (typeof group !== 'string' || group === bundle.id) return undefined;
    const leader = this.tasks.get(this.key(bundle.namespace, group));
    if (!leader || leader.binary !== binary) return undefined;
    let conn: Awaited<ReturnType<typeof connectShim>>;
    try {
      conn = await connectShim(leader.address);
    } catch {
      return undefined; // the shim is going away: its `start` will say what to do
    }
    await bundle.writeAll({ address: leader.address, 'shim-binary-path': binary });
    // The shim writes its log to the group leader's bundle; this one gets none. Connect (the
    // shim's pid, for the log) goes on beside Create.
    return new ShimTask(bundle.id, bundle.namespace, bundle.path, bundle, leader.address, binary, conn, undefined);
  }

  /** Runs the shim's `start`, records its binary, and connects to the address it prints. */
  private async startShim(ctx: Context, bundle: Bundle, binary: string, options: Any | undefined): Promise<ShimTask> {
    const log = await openShimLog(bundle, this.opts.logger, this.fifos);
    try {
      const stdin = options ? Any.encode(options).finish() : new Uint8Array();
      const run = runShimCommand(this.commandConfig(binary, bundle.namespace, bundle.path), ['-id', bundle.id, 'start'], stdin);
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        run,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new UnavailableError(`shim start timed out after ${START_TIMEOUT_MS}ms`)), START_TIMEOUT_MS))),
      ]).finally(() => clearTimeout(timer));
      const out = Buffer.concat([res.stdout, res.stderr]).toString();
      if (res.code !== 0) throw new Error(`${out.trim()}: ${res.signal ? `signal: ${res.signal}` : `exit status ${res.code}`}`);
      const address = res.stdout.toString().trim();
      await bundle.writeAll({ 'shim-binary-path': binary });
      const conn = await connectShim(address);
      // Connect (the shim's pid, for the log) goes on beside Create.
      return new ShimTask(bundle.id, bundle.namespace, bundle.path, bundle, address, binary, conn, log);
    } catch (err) {
      log?.destroy();
      throw err;
    }
  }

  /** Tears down a shim whose task never became visible (Create failed). */
  private async discard(task: ShimTask): Promise<void> {
    const ctx = context({ namespace: task.namespace });
    let deleted = false;
    try {
      await task.delete(ctx);
      deleted = true;
    } catch {
      /* nothing created, or the shim is gone */
    }
    await task.shutdown(ctx).catch(() => undefined);
    if (!this.shimShared(task)) await task.waitClosed();
    task.close();
    if (!deleted) await this.shimDelete(task.bundleRef, task.binary);
    await task.bundleRef.delete().catch((e) => this.opts.logger.warn('failed to remove bundle', { id: task.id, error: (e as Error).message }));
  }

  get(ctx: Context, id: string): Task {
    const ns = namespaceRequired(ctx);
    const task = this.tasks.get(this.key(ns, id));
    if (!task) throw new NotFoundError(`task ${id}`);
    return task;
  }

  list(ctx: Context, all = false): Task[] {
    const ns = all ? undefined : namespaceRequired(ctx);
    return [...this.tasks.values()].filter((t) => ns === undefined || t.namespace === ns).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async delete(ctx: Context, id: string): Promise<Exit> {
    const ns = namespaceRequired(ctx);
    const key = this.key(ns, id);
    const task = this.tasks.get(key);
    if (!task) throw new NotFoundError(`task ${id}`);
    let res: Exit | undefined;
    let shimErr: unknown;
    try {
      res = await task.delete(ctx);
    } catch (err) {
      if (!(err instanceof UnavailableError) && !isNotFound(err)) throw err;
      shimErr = err;
    }
    // The shim reported the exit and delete itself: drop the task so that its connection
    // closing is not taken for a crash. Otherwise the crash path reports them.
    if (shimErr === undefined && this.tasks.get(key) === task) this.tasks.delete(key);
    await task.shutdown(ctx).catch((err) => this.opts.logger.warn('failed to shut down shim', { id, error: (err as Error).message }));
    // A shim that serves other tasks too (runc-v2 groups a pod's containers into its sandbox's
    // shim) stays after Shutdown, and its connection with it: only a shim of our own is waited for.
    if (!this.shimShared(task)) await task.waitClosed();
    task.close();
    await task.bundleRef.delete().catch((err) => this.opts.logger.warn('failed to remove bundle', { id, error: (err as Error).message }));
    if (shimErr !== undefined) throw shimErr;
    return res!;
  }

  /** Whether another live task is served by the same shim (the same address). */
  private shimShared(task: ShimTask): boolean {
    for (const other of this.tasks.values()) if (other !== task && other.address === task.address) return true;
    return false;
  }

  /** Runs the shim's `delete` command, which kills what is left of the task and unmounts its rootfs. */
  private async shimDelete(bundle: Bundle, binary: string): Promise<Exit | undefined> {
    if (!existsSync(bundle.path)) return undefined;
    try {
      const res = await runShimCommand(this.commandConfig(binary, bundle.namespace, bundle.path), ['-id', bundle.id, '-bundle', bundle.path, 'delete']);
      if (res.code !== 0) {
        this.opts.logger.warn('shim delete failed', { id: bundle.id, output: Buffer.concat([res.stdout, res.stderr]).toString().trim() });
        return undefined;
      }
      const d = shim.DeleteResponse.decode(res.stdout);
      return { pid: d.pid, status: d.exitStatus, timestamp: d.exitedAt };
    } catch (err) {
      this.opts.logger.warn('shim delete failed', { id: bundle.id, error: (err as Error).message });
      return undefined;
    }
  }

  /** A shim's connection ended: unless the task was deleted (or the daemon stops), the shim died. */
  private async onShimClosed(task: ShimTask): Promise<void> {
    const key = this.key(task.namespace, task.id);
    if (this.closing || this.tasks.get(key) !== task) return;
    this.opts.logger.warn('cleaning up after shim disconnected', { id: task.id, namespace: task.namespace });
    task.close();
    await this.cleanupAfterDeadShim(task.bundleRef, task.binary, task);
  }

  private async cleanupAfterDeadShim(bundle: Bundle, binary: string, task?: ShimTask): Promise<void> {
    const address = bundle.read('address')?.trim();
    const exit = await this.shimDelete(bundle, binary);
    // A killed shim leaves its socket behind; it is ours (the path hashes our address), and dead.
    if (address) await removeStaleSocket(socketPathOf(address));
    await bundle.delete().catch((err) => this.opts.logger.warn('failed to remove bundle', { id: bundle.id, error: (err as Error).message }));
    const key = this.key(bundle.namespace, bundle.id);
    if (!task || this.tasks.get(key) !== task) return;
    this.tasks.delete(key);
    const { pid, status, timestamp } = exit ?? { pid: 0, status: 255, timestamp: new Date() };
    const ctx = context({ namespace: bundle.namespace });
    try {
      await this.opts.publisher.publish(ctx, '/tasks/exit', TaskExit, { containerId: bundle.id, id: bundle.id, pid, exitStatus: status, exitedAt: timestamp });
      await this.opts.publisher.publish(ctx, '/tasks/delete', TaskDelete, { containerId: bundle.id, pid, exitStatus: status, exitedAt: timestamp, id: '' });
    } catch (err) {
      this.opts.logger.warn('failed to publish task events', { id: bundle.id, error: (err as Error).message });
    }
  }

  private dirs(path: string): string[] {
    try {
      return readdirSync(path, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
  }

  /**
   * Reconnects to the shims of the bundles in the state dir (after a restart); cleans up those
   * whose shim is gone, half-deleted bundles, and work dirs whose bundle is gone.
   */
  async load(): Promise<void> {
    const { state, root, logger } = this.opts;
    for (const ns of this.dirs(state)) {
      if (ns === FIFO_POOL_DIR) continue; // not a namespace (no namespace starts with a dot)
      for (const id of this.dirs(join(state, ns))) {
        if (id.startsWith('.')) {
          rmSync(join(state, ns, id), { recursive: true, force: true });
          continue;
        }
        const bundle = Bundle.load(state, ns, id);
        if (readdirSync(bundle.path).length === 0) {
          await bundle.delete();
          continue;
        }
        let binary = bundle.read('shim-binary-path') ?? '';
        const ctx = context({ namespace: ns });
        if (binary === '') {
          try {
            const c = await this.opts.containers?.get(ctx, id);
            binary = c ? resolveShimBinary(c.runtime.name) : '';
          } catch (err) {
            logger.warn('loading container of bundle', { id, namespace: ns, error: (err as Error).message });
          }
        }
        const address = bundle.read('address')?.trim() ?? '';
        let log;
        try {
          if (address === '') throw new Error('no shim address');
          const conn = await connectShim(address);
          log = await openShimLog(bundle, logger);
          const task = new ShimTask(id, ns, bundle.path, bundle, address, binary, conn, log);
          await task.connect(ctx);
          if (task.pid === 0) {
            // The daemon died between the shim's start and the task's Create: the shim runs no
            // task and nobody would ever stop it. Shut it down and remove its bundle, as
            // containerd does since containerd/containerd#6860.
            logger.info('cleaning leaked shim process', { id, namespace: ns, pid: task.shimPid });
            await this.discard(task);
            continue;
          }
          this.tasks.set(this.key(ns, id), task);
          void task.closed.then(() => this.onShimClosed(task));
          logger.info('reconnected to shim', { id, namespace: ns, pid: task.shimPid });
        } catch (err) {
          log?.destroy();
          logger.warn('cleaning up after dead shim', { id, namespace: ns, error: (err as Error).message });
          if (binary !== '') await this.cleanupAfterDeadShim(bundle, binary);
          else await bundle.delete().catch(() => undefined);
        }
      }
    }
    for (const ns of this.dirs(root)) {
      for (const id of this.dirs(join(root, ns))) {
        if (!existsSync(join(state, ns, id))) rmSync(join(root, ns, id), { recursive: true, force: true });
      }
    }
  }

  /** Lets go of the shims (they keep running) without treating the disconnect as a crash. */
  close(): void {
    this.closing = true;
    for (const task of this.tasks.values()) task.close();
    // A prestarted shim no create took is let go as well: the next load shuts it down (it runs no task).
    for (const pre of this.prestarted.values()) void pre.ready.then((task) => task?.close());
  }
}
