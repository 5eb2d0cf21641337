import { task as taskTypes, types } from '@berth/api';
import type { ContainersService } from '@berth/containers';
import { Context, context } from '@berth/context';
import { isNotFound } from '@berth/errdefs';
import type { Logger } from '@berth/log';
import type { Container } from '@berth/metadata';
import type { TasksService } from '@berth/tasks';
import { COUNT_LABEL, LOG_PATH_LABEL, LOG_URI_LABEL, STATUS_LABEL, shouldRestart } from './policy';

const { Status } = taskTypes;

/** containerd's status names, as the status label holds them. */
const STATUS_NAMES: Record<number, string> = {
  [Status.UNKNOWN]: 'unknown',
  [Status.CREATED]: 'created',
  [Status.RUNNING]: 'running',
  [Status.STOPPED]: 'stopped',
  [Status.PAUSED]: 'paused',
  [Status.PAUSING]: 'pausing',
};

const SIGKILL = 9;

export interface RestartMonitorOptions {
  /** The namespaces to look in, on every pass. */
  namespaces: () => Promise<string[]>;
  containers: Pick<ContainersService, 'list' | 'update'>;
  tasks: Pick<TasksService, 'get' | 'create' | 'start' | 'delete' | 'kill' | 'wait'>;
  /** The mounts of a container's snapshot, its task's rootfs. */
  mounts: (ctx: Context, snapshotter: string, key: string) => Promise<Array<{ type: string; source: string; target?: string; options: string[] }>>;
  /** Time between passes (ms); containerd's `interval`. */
  intervalMs: number;
  logger: Logger;
}

/** A change a pass decided on: start a container's task again, or stop it. */
type Change = { kind: 'start'; container: Container; count: number } | { kind: 'stop'; container: Container };

/**
 * containerd's restart monitor: every interval, in every namespace, each container with the
 * status label (`containerd.io/restart.status`) whose task is not in that status is brought
 * there. A task that should run is started again (with a fresh task, its IO the log URI label's
 * or none) when its restart policy says so; one that should be stopped is killed and deleted.
 * Passes start at once, so containers come back right after a daemon restart.
 */
export class RestartMonitor {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly abort = new AbortController();

  constructor(private readonly opts: RestartMonitorOptions) {}

  /** Starts the passes: the first now, then one an interval after each. */
  start(): void {
    const tick = () => {
      this.running = this.reconcile()
        .catch((err) => this.opts.logger.error('reconcile', { error: (err as Error).message }))
        .finally(() => {
          if (!this.abort.signal.aborted) this.timer = setTimeout(tick, this.opts.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops the passes; a pass under way is cancelled and waited for (5 s at most). */
  async close(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.timer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
  }

  /** One pass over every namespace. */
  async reconcile(): Promise<void> {
    await Promise.all(
      (await this.opts.namespaces()).map(async (namespace) => {
        const ctx = context({ namespace, signal: this.abort.signal });
        let changes: Change[];
        try {
          changes = await this.changes(ctx);
        } catch (err) {
          this.opts.logger.error('monitor for changes', { namespace, error: (err as Error).message });
          return;
        }
        await Promise.all(
          changes.map((c) =>
            this.apply(ctx, c).catch((err) => {
              if (!this.abort.signal.aborted) this.opts.logger.error('apply change', { namespace, id: c.container.id, change: c.kind, error: (err as Error).message });
            }),
          ),
        );
      }),
    );
  }

  private async status(ctx: Context, id: string): Promise<{ status?: string; exitStatus: number; err?: unknown }> {
    try {
      const { process } = await this.opts.tasks.get(ctx, { containerId: id, execId: '' });
      return { status: STATUS_NAMES[process?.status ?? Status.UNKNOWN] ?? 'unknown', exitStatus: process?.exitStatus ?? 0 };
    } catch (err) {
      return { exitStatus: 0, err };
    }
  }

  private async changes(ctx: Context): Promise<Change[]> {
    const changes: Change[] = [];
    for (const container of await this.opts.containers.list(ctx, [`labels."${STATUS_LABEL}"`])) {
      const labels = container.labels;
      const desired = labels[STATUS_LABEL];
      const { status, exitStatus, err } = await this.status(ctx, container.id);
      if (status === desired) continue;
      if (err !== undefined) {
        if (!isNotFound(err)) this.opts.logger.error('monitor', { namespace: ctx.namespace, id: container.id, error: (err as Error).message });
        if (desired === 'stopped') continue;
      }
      if (desired === 'running') {
        if (status === 'paused' || status === 'pausing' || status === 'created') continue;
        const ok = shouldRestart(exitStatus, labels, (e) => this.opts.logger.error('policy reconcile', { namespace: ctx.namespace, id: container.id, error: e.message }));
        if (!ok) continue;
        const count = Number(labels[COUNT_LABEL] ?? '0');
        changes.push({ kind: 'start', container, count: (Number.isSafeInteger(count) ? count : 0) + 1 });
      } else if (desired === 'stopped') {
        changes.push({ kind: 'stop', container });
      }
    }
    return changes;
  }

  private apply(ctx: Context, change: Change): Promise<void> {
    return change.kind === 'start' ? this.startTask(ctx, change.container, change.count) : this.stopTask(ctx, change.container);
  }

  /** Replaces a stopped (or missing) task with a new, started one. */
  private async startTask(ctx: Context, container: Container, count: number): Promise<void> {
    const id = container.id;
    const { status, err } = await this.status(ctx, id);
    if (err === undefined) {
      if (status !== 'stopped' && status !== 'unknown') return;
      await this.opts.tasks.delete(ctx, { containerId: id }).catch(() => undefined);
    }
    await this.opts.containers.update(ctx, { ...container, labels: { ...container.labels, [COUNT_LABEL]: String(count) } }, [`labels.${COUNT_LABEL}`]);
    const uri = this.logURI(container);
    const rootfs: types.Mount[] = container.snapshotKey
      ? (await this.opts.mounts(ctx, container.snapshotter, container.snapshotKey)).map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options }))
      : [];
    await this.opts.tasks.create(ctx, { containerId: id, rootfs, stdin: '', stdout: uri, stderr: uri, terminal: false, runtimePath: '' });
    await this.opts.tasks.start(ctx, { containerId: id, execId: '' });
    this.opts.logger.info('restarted task', { namespace: ctx.namespace, id, count });
  }

  /** The log URI of a restarted task: the log URI label, else the (deprecated) log path as a file URI, else none. */
  private logURI(container: Container): string {
    const uri = container.labels[LOG_URI_LABEL] ?? '';
    const path = container.labels[LOG_PATH_LABEL] ?? '';
    if (uri !== '' && path !== '') this.opts.logger.warn(`LogPathLabel=${path} has been deprecated, using LogURILabel=${uri}`);
    if (uri !== '') return uri;
    return path !== '' ? `file://${path}` : '';
  }

  /** Kills a task that should be stopped (all its processes), waits for it and deletes it. */
  private async stopTask(ctx: Context, container: Container): Promise<void> {
    const id = container.id;
    const { err } = await this.status(ctx, id);
    if (err !== undefined) return;
    const wait = this.opts.tasks.wait(ctx, { containerId: id, execId: '' });
    try {
      await this.opts.tasks.kill(ctx, { containerId: id, execId: '', signal: SIGKILL, all: true });
    } catch (killErr) {
      wait.catch(() => undefined);
      await this.opts.tasks.delete(ctx, { containerId: id }).catch(() => {
        throw killErr;
      });
      return;
    }
    await wait;
    await this.opts.tasks.delete(ctx, { containerId: id });
    this.opts.logger.info('stopped task', { namespace: ctx.namespace, id });
  }
}
