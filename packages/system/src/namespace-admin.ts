import { task as taskTypes } from '@berth/api';
import type { ContainersService } from '@berth/containers';
import type { ContentService } from '@berth/content';
import { type Context, context } from '@berth/context';
import { DeadlineExceededError, NotFoundError, isNotFound, wrap } from '@berth/errdefs';
import { validate } from '@berth/identifiers';
import type { ImagesService } from '@berth/images';
import type { LeasesService } from '@berth/leases';
import { type Logger, nullLogger } from '@berth/log';
import type { NamespacesService } from '@berth/namespaces';
import { token } from '@berth/plugin';
import type { Info as SnapshotInfo, SnapshotsService } from '@berth/snapshots';
import type { TasksService } from '@berth/tasks';

/** What a cascading delete removed, by kind. */
export interface CascadeRemoved {
  tasks: number;
  containers: number;
  images: number;
  leases: number;
  snapshots: number;
  ingests: number;
  blobs: number;
}

/** A count of objects and the bytes they take on disk. */
export interface Size {
  count: number;
  bytes: number;
}

/** Objects of a namespace, split by whether another namespace also references them. */
export interface SharedSize {
  total: Size;
  shared: Size;
  exclusive: Size;
}

/** The disk usage of one namespace. */
export interface NamespaceUsage {
  name: string;
  images: number;
  containers: number;
  /** All snapshotters together; bytes as each snapshotter's Usage reports them. */
  snapshots: SharedSize;
  snapshotters: Array<{ snapshotter: string; snapshots: SharedSize }>;
  /** Committed blobs; bytes allocated on disk (the size when the store cannot tell). */
  content: SharedSize;
  /** Ingests in progress: bytes written so far. */
  ingests: Size;
}

/** The usage of the namespaces asked for, and their totals with each shared object counted once. */
export interface UsageReport {
  namespaces: NamespaceUsage[];
  snapshots: Size;
  content: Size;
  ingests: Size;
}

/** Berth's namespace operations beyond containerd's (berth.services.namespaces.v1). */
export interface NamespaceAdmin {
  /**
   * Deletes a namespace; with `cascade`, everything in it first (see {@link NamespaceAdminService.delete}).
   * Returns what the cascade removed.
   */
  delete(ctx: Context, name: string, options?: { cascade?: boolean }): Promise<CascadeRemoved>;
  /** Reports the disk usage of one namespace, or of all when `name` is empty. */
  usage(ctx: Context, name?: string): Promise<UsageReport>;
}

/** The services a namespace's objects are removed and measured through (their tokens' instances). */
export interface NamespaceAdminDeps {
  namespaces: NamespacesService;
  tasks: TasksService;
  containers: ContainersService;
  images: ImagesService;
  leases: LeasesService;
  snapshots: SnapshotsService;
  content: ContentService;
  logger?: Logger;
  /** How long a task killed with SIGKILL may take to exit before the cascade gives up. Default 10 s. */
  killTimeoutMs?: number;
}

const size = (): Size => ({ count: 0, bytes: 0 });
const sharedSize = (): SharedSize => ({ total: size(), shared: size(), exclusive: size() });
const add = (s: Size, bytes: number) => {
  s.count++;
  s.bytes += bytes;
};

/**
 * Berth's namespace operations beyond containerd's: delete with cascade, and usage. Every object
 * is read and removed through its own subsystem's service, so each removal publishes the event
 * containerd would (/tasks/delete, /containers/delete, /images/delete, /snapshot/remove,
 * /content/delete, /namespaces/delete) and obeys that subsystem's rules.
 */
export class NamespaceAdminService implements NamespaceAdmin {
  private readonly logger: Logger;
  private readonly killTimeoutMs: number;

  constructor(private readonly deps: NamespaceAdminDeps) {
    this.logger = deps.logger ?? nullLogger;
    this.killTimeoutMs = deps.killTimeoutMs ?? 10_000;
  }

  /** NotFound `namespace "x"` unless the namespace exists; InvalidArgument for a malformed name. */
  private async mustExist(name: string): Promise<void> {
    validate(name);
    if (!(await this.deps.namespaces.list()).some((ns) => ns.name === name)) throw new NotFoundError(`namespace "${name}"`);
  }

  /**
   * Deletes a namespace. Without `cascade`, exactly containerd's Namespaces.Delete
   * (FailedPrecondition naming what is left). With it, first: tasks killed (SIGKILL to every
   * process, waited for, deleted, so their shims exit), containers, images, leases, snapshots
   * (children before parents, on every snapshotter), ingests and the namespace's blob
   * references (blobs other namespaces have stay), then the namespace.
   *
   * Not atomic across subsystems: an error names the object that blocked the cascade and what
   * was removed before it, which stays removed; calling again finishes the job.
   */
  async delete(ctx: Context, name: string, options: { cascade?: boolean } = {}): Promise<CascadeRemoved> {
    const removed: CascadeRemoved = { tasks: 0, containers: 0, images: 0, leases: 0, snapshots: 0, ingests: 0, blobs: 0 };
    if (!options.cascade) {
      await this.deps.namespaces.delete(ctx, name);
      return removed;
    }
    await this.mustExist(name);
    // No lease of the caller's: nothing the cascade does should join one.
    const nsCtx = context({ namespace: name, signal: ctx.signal });
    try {
      await this.cascade(nsCtx, removed);
      // FailedPrecondition here when a client created something in the namespace meanwhile.
      await this.deps.namespaces.delete(ctx, name);
    } catch (err) {
      const done = Object.entries(removed)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ');
      throw wrap(err, `cascade delete of namespace "${name}" stopped (removed before: ${done || 'nothing'}; removals are not undone, delete again to finish)`);
    }
    return removed;
  }

  private async cascade(ctx: Context, removed: CascadeRemoved): Promise<void> {
    const { tasks, containers, images, leases, snapshots, content } = this.deps;
    for (const t of (await tasks.list(ctx)).tasks) {
      if (await this.step(`task ${t.id}`, () => this.killTask(ctx, t.id, t.status))) removed.tasks++;
      // Its container at once: a restart monitor (containerd.io/restart.status) must not find
      // it without a task and start one again.
      if (await this.step(`container ${t.id}`, () => containers.delete(ctx, t.id))) removed.containers++;
    }
    for (const c of await containers.list(ctx)) {
      if (await this.step(`container ${c.id}`, () => containers.delete(ctx, c.id))) removed.containers++;
    }
    for (const image of await images.list(ctx)) {
      if (await this.step(`image ${image.name}`, () => images.delete(ctx, image.name))) removed.images++;
    }
    for (const lease of await leases.list(ctx)) {
      if (await this.step(`lease ${lease.id}`, () => leases.delete(ctx, lease.id))) removed.leases++;
    }
    for (const snapshotter of snapshots.names().sort()) {
      for (const info of childrenFirst(await snapshots.list(ctx, snapshotter))) {
        if (await this.step(`snapshot ${info.name} on snapshotter ${snapshotter}`, () => snapshots.remove(ctx, snapshotter, info.name))) removed.snapshots++;
      }
    }
    for (const status of await content.listStatuses(ctx)) {
      if (await this.step(`ingest ${status.ref}`, () => content.abort(ctx, status.ref))) removed.ingests++;
    }
    for (const blob of await content.list(ctx)) {
      if (await this.step(`content ${blob.digest}`, () => content.delete(ctx, blob.digest))) removed.blobs++;
    }
  }

  /**
   * Runs one removal; returns false when the object was already gone (the collector, or a
   * client, removed it meanwhile), and throws the error naming the object otherwise.
   */
  private async step(what: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw wrap(err, `removing ${what}`);
    }
  }

  /**
   * Kills a task's processes with SIGKILL, waits for its exit, and deletes it (its shim exits).
   * DeadlineExceeded when the task has not exited `killTimeoutMs` after the cascade started on
   * it (resuming a paused one included): its processes may be frozen or stuck in the kernel.
   */
  private async killTask(ctx: Context, id: string, status: taskTypes.Status): Promise<void> {
    const { tasks } = this.deps;
    const timeout = AbortSignal.timeout(this.killTimeoutMs);
    const stepCtx = context({ namespace: ctx.namespace, signal: AbortSignal.any([ctx.signal, timeout]) });
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceededError(`task did not exit within ${this.killTimeoutMs} ms of SIGKILL`)), this.killTimeoutMs);
    });
    const exited = async () => {
      // A frozen task cannot act on SIGKILL until it is thawed.
      if (status === taskTypes.Status.PAUSED || status === taskTypes.Status.PAUSING) await tasks.resume(stepCtx, { containerId: id });
      if (status === taskTypes.Status.STOPPED) return;
      try {
        await tasks.kill(stepCtx, { containerId: id, execId: '', signal: 9, all: true });
      } catch (err) {
        // It may have exited between the list and the kill.
        this.logger.debug('kill of a task being deleted failed', { id, error: (err as Error).message });
      }
      await tasks.wait(stepCtx, { containerId: id, execId: '' });
    };
    const run = exited();
    // Once the deadline won, what the task still does is nobody's to await: never unhandled.
    run.catch(() => undefined);
    try {
      await Promise.race([run, expired]);
    } catch (err) {
      if (timeout.aborted) throw new DeadlineExceededError(`task did not exit within ${this.killTimeoutMs} ms of SIGKILL`, { cause: err });
      throw err;
    } finally {
      clearTimeout(timer);
    }
    await tasks.delete(ctx, { containerId: id });
  }

  /**
   * Reports the disk usage of namespace `name` (NotFound when absent), or of every namespace
   * when `name` is empty. A blob is shared when another namespace (any, reported or not) has
   * it too; blobs are stored once, so the totals count each once. Snapshots are never shared:
   * every namespace's snapshot is a backend snapshot of its own.
   */
  async usage(ctx: Context, name = ''): Promise<UsageReport> {
    const all = (await this.deps.namespaces.list()).map((ns) => ns.name);
    if (name !== '') await this.mustExist(name);
    const names = name === '' ? all : [name];
    const { content } = this.deps;
    // Which namespaces have each blob: all of them, so that a blob shared with a namespace not
    // reported still counts as shared.
    const holders = new Map<string, number>();
    const blobsOf = new Map<string, Array<{ digest: string; size: number }>>();
    for (const ns of all) {
      const blobs = await content.list(context({ namespace: ns, signal: ctx.signal }));
      blobsOf.set(ns, blobs);
      for (const b of blobs) holders.set(b.digest, (holders.get(b.digest) ?? 0) + 1);
    }
    const report: UsageReport = { namespaces: [], snapshots: size(), content: size(), ingests: size() };
    const counted = new Set<string>();
    for (const ns of names) {
      const nsCtx = context({ namespace: ns, signal: ctx.signal });
      const usage: NamespaceUsage = {
        name: ns,
        images: (await this.deps.images.list(nsCtx)).length,
        containers: (await this.deps.containers.list(nsCtx)).length,
        snapshots: sharedSize(),
        snapshotters: [],
        content: sharedSize(),
        ingests: size(),
      };
      for (const blob of blobsOf.get(ns) ?? []) {
        let bytes: number;
        try {
          bytes = (await content.diskUsage(nsCtx, blob.digest)) ?? blob.size;
        } catch (err) {
          if (isNotFound(err)) continue; // collected meanwhile
          throw err;
        }
        add(usage.content.total, bytes);
        add((holders.get(blob.digest) ?? 0) > 1 ? usage.content.shared : usage.content.exclusive, bytes);
        if (!counted.has(blob.digest)) {
          counted.add(blob.digest);
          add(report.content, bytes);
        }
      }
      for (const status of await content.listStatuses(nsCtx)) {
        add(usage.ingests, status.offset);
        add(report.ingests, status.offset);
      }
      for (const snapshotter of this.deps.snapshots.names().sort()) {
        const per = sharedSize();
        for (const info of await this.deps.snapshots.list(nsCtx, snapshotter)) {
          let bytes: number;
          try {
            bytes = (await this.deps.snapshots.usage(nsCtx, snapshotter, info.name)).size;
          } catch (err) {
            if (isNotFound(err)) continue;
            throw err;
          }
          add(per.total, bytes);
          add(per.exclusive, bytes);
          add(report.snapshots, bytes);
        }
        usage.snapshotters.push({ snapshotter, snapshots: per });
        for (const part of ['total', 'shared', 'exclusive'] as const) {
          usage.snapshots[part].count += per[part].count;
          usage.snapshots[part].bytes += per[part].bytes;
        }
      }
      report.namespaces.push(usage);
    }
    return report;
  }
}

/** Orders snapshots so that every snapshot comes before its parent (leaves first). */
export function childrenFirst(infos: readonly SnapshotInfo[]): SnapshotInfo[] {
  const byName = new Map(infos.map((i) => [i.name, i]));
  const children = new Map<string, number>();
  for (const i of infos) if (byName.has(i.parent)) children.set(i.parent, (children.get(i.parent) ?? 0) + 1);
  const ready = infos.filter((i) => !children.get(i.name));
  const out: SnapshotInfo[] = [];
  for (let next = ready.shift(); next; next = ready.shift()) {
    out.push(next);
    const parent = byName.get(next.parent);
    if (!parent) continue;
    const left = children.get(parent.name)! - 1;
    children.set(parent.name, left);
    if (left === 0) ready.push(parent);
  }
  return out;
}

/** The in-process service behind berth.services.namespaces.v1. */
export const NamespaceAdminServiceToken = token<NamespaceAdmin>('io.containerd.service.v1/berth-namespaces');
