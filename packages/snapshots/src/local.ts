import { existsSync, mkdirSync, promises as fsp, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '@berth/context';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, wrap, goQuote } from '@berth/errdefs';
import { adaptorFromFields, parseAll } from '@berth/filters';
import type { Mount } from '@berth/mount';
import { Mutex, diskUsage } from './fs-util';
import { applyLabelUpdate, cleanLabels } from './labels';
import { MetaStore, SnapshotRecord } from './metastore';
import type { CleanupResult, Info, Kind, SnapshotOptions, Snapshotter, Usage } from './types';

/** Returns the filter adaptor of a snapshot, with containerd's fields. */
export function snapshotAdaptor(info: Info) {
  return adaptorFromFields((path) => {
    switch (path[0]) {
      case 'kind':
        return info.kind;
      case 'name':
        return info.name;
      case 'parent':
        return info.parent;
      case 'labels':
        if (Object.keys(info.labels).length === 0) return undefined;
        return Object.prototype.hasOwnProperty.call(info.labels, path.slice(1).join('.')) ? info.labels[path.slice(1).join('.')] : undefined;
      default:
        return undefined;
    }
  });
}

/** Directory entries of the snapshots dir that are in-flight work, not snapshots. */
const TEMP_PREFIXES = ['new-', 'rm-'];

/**
 * What overlayfs and native share: the metastore, directories named by id under
 * `<root>/snapshots`, crash-safe create and remove, usage, walk and cleanup. Subclasses decide a
 * snapshot's directory layout and mounts.
 *
 * Crash safety: a new snapshot is built in a `new-*` temp dir and renamed to its id inside the
 * metastore transaction that records it; a removed one is unrecorded first and then renamed to
 * `rm-<id>` and deleted. So a record never points at a missing directory, and what a crash can
 * leave behind is an unrecorded directory, which `cleanup` removes.
 */
export abstract class LocalSnapshotter implements Snapshotter {
  protected readonly lock = new Mutex();
  readonly snapshotsDir: string;
  /** The context of Mounts errors (containerd's overlayfs and native word it differently). */
  protected readonly mountsErrorContext: string = 'failed to get active mount';

  protected constructor(
    readonly root: string,
    protected readonly store: MetaStore,
  ) {
    this.snapshotsDir = join(root, 'snapshots');
    mkdirSync(this.snapshotsDir, { recursive: true, mode: 0o700 });
  }

  /** The directory of a snapshot. */
  snapshotDir(id: number): string {
    return join(this.snapshotsDir, String(id));
  }

  /** Whether a snapshot of this kind and parentage gets a directory of its own. */
  protected abstract ownsDirectory(kind: Kind, parentIds: readonly number[]): boolean;
  /** Fills a new snapshot's temp directory. */
  protected abstract populate(dir: string, kind: Kind, parentIds: readonly number[]): Promise<void>;
  /** The directory whose usage is the snapshot's own layer. */
  protected abstract layerDir(id: number): string;
  /** The mounts of an active snapshot or view. */
  protected abstract mountsOf(rec: SnapshotRecord): Mount[];

  private info(rec: SnapshotRecord): Info {
    return { name: rec.key, parent: rec.parent, kind: rec.kind, labels: { ...rec.labels }, created: new Date(rec.created), updated: new Date(rec.updated) };
  }

  private record(key: string): SnapshotRecord {
    const rec = this.store.get(key);
    if (!rec) throw new NotFoundError(`snapshot ${key} does not exist`);
    return rec;
  }

  async stat(_ctx: Context, key: string): Promise<Info> {
    return this.info(this.record(key));
  }

  async update(_ctx: Context, info: Pick<Info, 'name' | 'labels'>, fieldpaths?: readonly string[]): Promise<Info> {
    return this.lock.run(async () => {
      const rec = this.record(info.name);
      const next: SnapshotRecord = { ...rec, labels: applyLabelUpdate(rec.labels, info.labels, fieldpaths, info.name), updated: Date.now() };
      this.store.transaction((w) => w.put(next));
      return this.info(next);
    }).then(this.whenDurable);
  }

  async usage(_ctx: Context, key: string): Promise<Usage> {
    const rec = this.record(key);
    if (rec.kind === 'committed') return { size: rec.size, inodes: rec.inodes };
    if (rec.kind === 'view') return { size: 0, inodes: 0 };
    return diskUsage(this.layerDir(rec.id));
  }

  async mounts(_ctx: Context, key: string): Promise<Mount[]> {
    let rec: SnapshotRecord;
    try {
      rec = this.record(key);
      if (rec.kind !== 'active' && rec.kind !== 'view') throw new FailedPreconditionError(`requested snapshot ${key} not active or view`);
    } catch (err) {
      throw wrap(err, this.mountsErrorContext);
    }
    return this.mountsOf(rec);
  }

  prepare(_ctx: Context, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create('active', key, parent, opts);
  }

  view(_ctx: Context, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, opts);
  }

  private async create(kind: Kind, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.lock.run(async () => {
      let parentIds: number[] = [];
      try {
        if (key === '') throw new InvalidArgumentError('snapshot key must not be empty');
        if (this.store.get(key)) throw new AlreadyExistsError(`snapshot ${key}`);
        if (parent !== '') {
          const p = this.store.get(parent);
          if (!p) throw new NotFoundError(`missing parent ${goQuote(parent)} bucket`);
          if (p.kind !== 'committed') throw new InvalidArgumentError(`parent ${goQuote(parent)} is not committed snapshot`);
          parentIds = [p.id, ...p.parentIds];
        }
      } catch (err) {
        throw wrap(err, 'failed to create snapshot');
      }
      let temp: string | undefined;
      if (this.ownsDirectory(kind, parentIds)) {
        temp = await fsp.mkdtemp(join(this.snapshotsDir, 'new-'));
        try {
          await this.populate(temp, kind, parentIds);
        } catch (err) {
          await fsp.rm(temp, { recursive: true, force: true });
          throw wrap(err, 'failed to create snapshot');
        }
      }
      const now = Date.now();
      let rec: SnapshotRecord;
      try {
        rec = this.store.transaction((w) => {
          const id = w.allocateId();
          const r: SnapshotRecord = { id, key, kind, parent, parentIds, labels: cleanLabels(opts?.labels), created: now, updated: now, size: 0, inodes: 0 };
          w.put(r);
          if (temp) {
            // An unrecorded directory with this id is left from a crash inside an earlier
            // transaction (renamed, never committed): it is nobody's.
            const dir = this.snapshotDir(id);
            if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
            renameSync(temp, dir);
          }
          return r;
        });
      } catch (err) {
        if (temp) await fsp.rm(temp, { recursive: true, force: true });
        throw wrap(err, 'failed to create snapshot');
      }
      return this.mountsOf(rec);
    }).then(this.whenDurable);
  }

  async commit(_ctx: Context, name: string, key: string, opts?: SnapshotOptions): Promise<void> {
    return this.lock.run(async () => {
      try {
        const rec = this.record(key);
        if (rec.kind !== 'active') throw new FailedPreconditionError(`snapshot ${goQuote(key)} is not active`);
        if (this.store.get(name)) throw new AlreadyExistsError(`snapshot ${name}`);
        const usage = await diskUsage(this.layerDir(rec.id));
        const now = Date.now();
        const next: SnapshotRecord = { ...rec, key: name, kind: 'committed', labels: cleanLabels(opts?.labels), created: now, updated: now, size: usage.size, inodes: usage.inodes };
        this.store.transaction((w) => w.rename(next, key));
      } catch (err) {
        throw wrap(err, 'failed to commit snapshot');
      }
    }).then(this.whenDurable);
  }

  async remove(_ctx: Context, key: string): Promise<void> {
    return this.lock.run(async () => {
      let rec: SnapshotRecord;
      try {
        rec = this.record(key);
        if (this.store.hasChildren(rec.id)) throw new FailedPreconditionError('cannot remove snapshot with child');
        this.store.transaction((w) => w.delete(rec));
      } catch (err) {
        throw wrap(err, 'failed to remove snapshot');
      }
      await this.removeDir(rec.id);
    }).then(this.whenDurable);
  }

  /**
   * Passes a result on once the metastore's commits are on disk: every operation that wrote
   * answers only then, the sync running off the event loop and after the lock is released.
   */
  private readonly whenDurable = <T>(result: T): Promise<T> => this.store.durable().then(() => result);

  /**
   * Renames a directory out of the way (one atomic step, before the call returns) and deletes
   * it in the background: the caller does not wait for a large tree to go. A crash leaves an
   * `rm-*` directory, which cleanup removes; close waits for deletions in flight.
   */
  private async removeDir(id: number | string): Promise<void> {
    const dir = join(this.snapshotsDir, String(id));
    if (!existsSync(dir)) return;
    const doomed = join(this.snapshotsDir, `rm-${id}`);
    await fsp.rename(dir, doomed);
    const deletion = fsp.rm(doomed, { recursive: true, force: true }).catch(() => undefined);
    this.deletions.add(deletion);
    void deletion.finally(() => this.deletions.delete(deletion));
  }

  private readonly deletions = new Set<Promise<void>>();

  async walk(_ctx: Context, fn: (info: Info) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    const filter = parseAll(filters);
    for (const rec of [...this.store.records()]) {
      const info = this.info(rec);
      if (filter.match(snapshotAdaptor(info))) await fn(info);
    }
  }

  async cleanup(_ctx: Context): Promise<CleanupResult> {
    return this.lock.run(async () => {
      await Promise.all([...this.deletions]);
      const ids = this.store.ids();
      const directories: string[] = [];
      for (const name of await fsp.readdir(this.snapshotsDir)) {
        const owned = /^[1-9][0-9]*$/.test(name) && ids.has(Number(name));
        if (owned) continue;
        if (!/^[1-9][0-9]*$/.test(name) && !TEMP_PREFIXES.some((p) => name.startsWith(p))) continue; // not ours
        await fsp.rm(join(this.snapshotsDir, name), { recursive: true, force: true });
        directories.push(name);
      }
      return { snapshots: [], directories };
    });
  }

  /** Keys of every backend snapshot, for the metadata layer's cleanup. */
  keys(): string[] {
    return [...this.store.records()].map((r) => r.key);
  }

  async close(): Promise<void> {
    await Promise.all([...this.deletions]);
    await this.lock.run(() => this.store.close());
  }
}
