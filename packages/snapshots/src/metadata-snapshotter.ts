import { Context, context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, goQuote } from '@berth/errdefs';
import { parseAll } from '@berth/filters';
import { Logger, nullLogger } from '@berth/log';
import {
  MetadataDb,
  NamespaceRecord,
  ReadTx,
  WriteTx,
  addLeaseResource,
  namespacesPrefix,
  nextSequence,
  objectKey,
  objectsPrefix,
  parseNamespaceKey,
  removeLeasedEverywhere,
  holdExisting,
  leaseExists,
  leaseHolds,
} from '@berth/metadata';
import type { Mount } from '@berth/mount';
import { applyLabelUpdate, cleanLabels, inheritedLabels, validateSnapshotLabels } from './labels';
import { compareKeys, storedKey } from './keys';
import { Mutex } from './fs-util';
import { snapshotAdaptor } from './local';
import type { CleanupResult, Info, Kind, SnapshotOptions, Snapshotter, Usage } from './types';

/**
 * A snapshot as a namespace sees it, stored at `objectKey(ns, 'snapshots', snapshotter, key)`
 * in the metadata database.
 */
export interface SnapshotMetaRecord {
  /** The full key (the lmdb key may hold a shortened form, see storedKey). */
  key: string;
  /** The backend snapshotter's key: `<ns>/<seq>/<key>`, unique across namespaces. */
  backendKey: string;
  parent: string;
  kind: Kind;
  /** All labels, `containerd.io/gc.*` included (the backend only keeps inherited ones). */
  labels: Record<string, string>;
  createdAt: number;
  updatedAt: number;
  /** Keys of the snapshots whose parent this is. */
  children: string[];
  /**
   * Set while a commit of this active snapshot is in flight: the name and backend key it will
   * have. A restart finishes or forgets the commit depending on what the backend holds.
   */
  committing?: { name: string; backendKey: string; labels: Record<string, string> };
}

/** The backend operations the metadata layer needs beyond the interface. */
export interface BackendSnapshotter extends Snapshotter {
  /** Every backend key, for cleanup (a proxied snapshotter asks its server). */
  keys(): string[] | Promise<string[]>;
}

const recordKey = (ns: string, snapshotter: string, key: string) => objectKey(ns, 'snapshots', snapshotter, storedKey(key));

/**
 * The namespaced snapshot layer (containerd's metadata snapshotter): keys are per namespace, the
 * backend sees `<ns>/<seq>/<key>`, labels and parent links live in the metadata database, and
 * created snapshots join the caller's lease.
 *
 * Mutations of one snapshotter run one at a time (containerd runs them inside its single bolt
 * write transaction); each is: checks, backend work, then one metadata transaction. A crash
 * between the backend and the metadata step leaves a backend snapshot no namespace references
 * (removed by `cleanup`), or a commit in flight (settled by `recover`), never a record pointing at
 * nothing.
 */
export class MetadataSnapshotter implements Snapshotter {
  private readonly lock = new Mutex();
  /** The backend removals that follow removed records (see `remove`), one after another. */
  private removals: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: MetadataDb,
    /** The snapshotter's name (plugin id), part of every key. */
    readonly name: string,
    private readonly backend: BackendSnapshotter,
    private readonly logger: Logger = nullLogger,
  ) {}

  private get(tx: ReadTx, ns: string, key: string): SnapshotMetaRecord | undefined {
    const rec = tx.get<SnapshotMetaRecord>(recordKey(ns, this.name, key));
    return rec && rec.key === key ? rec : undefined;
  }

  private must(tx: ReadTx, ns: string, key: string): SnapshotMetaRecord {
    const rec = this.get(tx, ns, key);
    if (!rec) throw new NotFoundError(`snapshot ${key} does not exist`);
    return rec;
  }

  private put(tx: WriteTx, ns: string, rec: SnapshotMetaRecord): void {
    tx.put(recordKey(ns, this.name, rec.key), rec);
  }

  private info(rec: SnapshotMetaRecord): Info {
    return { name: rec.key, parent: rec.parent, kind: rec.kind, labels: { ...rec.labels }, created: new Date(rec.createdAt), updated: new Date(rec.updatedAt) };
  }

  private sequenceName(ns: string): string {
    return `snapshots/${this.name}/${ns}`;
  }

  private leaseType(): string {
    return `snapshots/${this.name}`;
  }

  /**
   * Returns a snapshot's info. Inside a lease, the snapshot also joins the lease (in the
   * transaction that found it), because a caller that finds a snapshot goes on building on it:
   * an unpack that finds a layer present prepares the next one on it, or labels the image with
   * it. A lease that does not exist is ignored here, as containerd's Stat ignores it.
   */
  async stat(ctx: Context, key: string): Promise<Info> {
    const ns = namespaceRequired(ctx);
    const resource = { type: this.leaseType(), id: key };
    const { rec, held } = this.db.view((tx) => ({ rec: this.must(tx, ns, key), held: !ctx.lease || leaseHolds(tx, ns, ctx.lease, resource) }));
    if (held) return this.info(rec);
    return this.info(
      this.db.update((tx) => {
        const current = this.must(tx, ns, key);
        if (leaseExists(tx, ns, ctx.lease!)) holdExisting(tx, ns, ctx.lease, resource);
        return current;
      }),
    );
  }

  /** Throws AlreadyExists for `key`, which the caller found present, after it joins the caller's lease. */
  private existing(ctx: Context, ns: string, key: string): never {
    this.db.update((tx) => {
      if (this.get(tx, ns, key)) holdExisting(tx, ns, ctx.lease, { type: this.leaseType(), id: key });
    });
    throw new AlreadyExistsError(`snapshot ${goQuote(key)}`);
  }

  async update(ctx: Context, info: Pick<Info, 'name' | 'labels'>, fieldpaths?: readonly string[]): Promise<Info> {
    const ns = namespaceRequired(ctx);
    // containerd answers a bare "invalid argument" here (checked side by side).
    if (info.name === '') throw new InvalidArgumentError('');
    return this.lock.run(async () => {
      const { rec, backendChanged } = this.db.update((tx) => {
        const cur = this.must(tx, ns, info.name);
        const labels = applyLabelUpdate(cur.labels, info.labels, fieldpaths, info.name);
        validateSnapshotLabels(labels);
        const next: SnapshotMetaRecord = { ...cur, labels, updatedAt: Date.now() };
        this.put(tx, ns, next);
        const before = JSON.stringify(inheritedLabels(cur.labels));
        return { rec: next, backendChanged: before !== JSON.stringify(inheritedLabels(labels)) };
      });
      if (backendChanged) {
        await this.backend.update(ctx, { name: rec.backendKey, labels: inheritedLabels(rec.labels) }, ['labels']);
      }
      return this.info(rec);
    });
  }

  async usage(ctx: Context, key: string): Promise<Usage> {
    const ns = namespaceRequired(ctx);
    const rec = this.db.view((tx) => this.must(tx, ns, key));
    return this.backend.usage(ctx, rec.backendKey);
  }

  async mounts(ctx: Context, key: string): Promise<Mount[]> {
    const ns = namespaceRequired(ctx);
    const rec = this.db.view((tx) => this.must(tx, ns, key));
    return this.backend.mounts(ctx, rec.backendKey);
  }

  prepare(ctx: Context, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create(ctx, 'active', key, parent, opts);
  }

  view(ctx: Context, key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create(ctx, 'view', key, parent, opts);
  }

  private async create(ctx: Context, kind: 'active' | 'view', key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    const ns = namespaceRequired(ctx);
    const labels = cleanLabels(opts?.labels);
    validateSnapshotLabels(labels);
    return this.lock.run(async () => {
      const backendParent = this.db.view((tx) => {
        if (this.get(tx, ns, key)) return undefined;
        if (parent === '') return '';
        const p = this.get(tx, ns, parent);
        if (!p) throw new NotFoundError(`parent snapshot ${parent} does not exist`);
        return p.backendKey;
      });
      if (backendParent === undefined) this.existing(ctx, ns, key);
      // The sequence is taken before the backend call, so a crash cannot hand the same backend
      // key out twice; a failed create leaves a gap, which is harmless.
      const seq = this.db.update((tx) => nextSequence(tx, this.sequenceName(ns)));
      const backendKey = `${ns}/${seq}/${key}`;
      const backendOpts = { labels: inheritedLabels(labels) };
      const mounts =
        kind === 'active'
          ? await this.backend.prepare(ctx, backendKey, backendParent, backendOpts)
          : await this.backend.view(ctx, backendKey, backendParent, backendOpts);
      try {
        this.db.update((tx) => {
          tx.ensureNamespace(ns);
          const now = Date.now();
          this.put(tx, ns, { key, backendKey, parent, kind, labels, createdAt: now, updatedAt: now, children: [] });
          if (parent !== '') {
            const p = this.must(tx, ns, parent);
            this.put(tx, ns, { ...p, children: [...p.children, key] });
          }
          addLeaseResource(tx, ns, ctx.lease, { type: this.leaseType(), id: key });
        });
      } catch (err) {
        await this.backend.remove(ctx, backendKey).catch((e: Error) => this.logger.warn('failed to remove backend snapshot', { key: backendKey, error: e.message }));
        throw err;
      }
      return mounts;
    });
  }

  async commit(ctx: Context, name: string, key: string, opts?: SnapshotOptions): Promise<void> {
    const ns = namespaceRequired(ctx);
    const labels = cleanLabels(opts?.labels);
    validateSnapshotLabels(labels);
    return this.lock.run(async () => {
      const { backendKey, nameKey } = this.db.update((tx) => {
        if (this.get(tx, ns, name)) {
          // Another commit won (two unpacks of one layer): the caller builds on the winner.
          holdExisting(tx, ns, ctx.lease, { type: this.leaseType(), id: name });
          return { backendKey: undefined, nameKey: '' };
        }
        const rec = this.must(tx, ns, key);
        const seq = nextSequence(tx, this.sequenceName(ns));
        const nameKey = `${ns}/${seq}/${name}`;
        if (rec.kind === 'active') this.put(tx, ns, { ...rec, committing: { name, backendKey: nameKey, labels } });
        return { backendKey: rec.backendKey, nameKey };
      });
      if (backendKey === undefined) throw new AlreadyExistsError(`snapshot ${goQuote(name)}`);
      try {
        await this.backend.commit(ctx, nameKey, backendKey, { labels: inheritedLabels(labels) });
      } catch (err) {
        this.db.update((tx) => {
          const rec = this.get(tx, ns, key);
          if (rec?.committing) this.put(tx, ns, withoutCommitting(rec));
        });
        throw err;
      }
      this.db.update((tx) => {
        const rec = this.must(tx, ns, key);
        this.finishCommit(tx, ns, rec, { name, backendKey: nameKey, labels });
        addLeaseResource(tx, ns, ctx.lease, { type: this.leaseType(), id: name });
      });
    });
  }

  /** Replaces active `rec` by its committed form (inside a metadata transaction). */
  private finishCommit(tx: WriteTx, ns: string, rec: SnapshotMetaRecord, to: { name: string; backendKey: string; labels: Record<string, string> }): void {
    tx.ensureNamespace(ns);
    tx.remove(recordKey(ns, this.name, rec.key));
    const now = Date.now();
    this.put(tx, ns, { key: to.name, backendKey: to.backendKey, parent: rec.parent, kind: 'committed', labels: to.labels, createdAt: now, updatedAt: now, children: [] });
    if (rec.parent !== '') {
      const p = this.get(tx, ns, rec.parent);
      if (p) this.put(tx, ns, { ...p, children: p.children.map((c) => (c === rec.key ? to.name : c)) });
    }
    removeLeasedEverywhere(tx, ns, { type: this.leaseType(), id: rec.key });
  }

  async remove(ctx: Context, key: string): Promise<void> {
    const ns = namespaceRequired(ctx);
    return this.lock.run(async () => {
      const rec = this.db.update((tx) => {
        const rec = this.must(tx, ns, key);
        if (rec.children.length > 0) throw new FailedPreconditionError('cannot remove snapshot with child');
        tx.remove(recordKey(ns, this.name, key));
        if (rec.parent !== '') {
          const p = this.get(tx, ns, rec.parent);
          if (p) this.put(tx, ns, { ...p, children: p.children.filter((c) => c !== key) });
        }
        removeLeasedEverywhere(tx, ns, { type: this.leaseType(), id: key });
        tx.markDeletion();
        return rec;
      });
      // Nothing else references a backend snapshot (one backend key per record), so it goes now
      // rather than at the next garbage collection, once the record's removal is on disk (a power
      // loss must not bring back a record without its snapshot); but after the answer, as
      // containerd's collector removes it after its Remove has answered. Removals run in the order
      // of their records' (a parent's after its children's); `cleanup` and `close` wait for them.
      // If one fails or the daemon dies first, the backend snapshot is an orphan that cleanup removes.
      await this.db.durable();
      const backendKey = rec.backendKey;
      this.removals = this.removals.then(() =>
        this.backend.remove(context({ namespace: ns }), backendKey).catch((e: Error) =>
          this.logger.warn('failed to remove backend snapshot; cleanup will retry', { key: backendKey, error: e.message }),
        ),
      );
    });
  }

  async walk(ctx: Context, fn: (info: Info) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    const ns = namespaceRequired(ctx);
    const filter = parseAll(filters);
    const infos = this.db.view((tx) => {
      const out: Info[] = [];
      let long = false;
      for (const { value } of tx.range<SnapshotMetaRecord>(objectsPrefix(ns, 'snapshots', this.name))) {
        if (storedKey(value.key) !== value.key) long = true;
        out.push(this.info(value));
      }
      // Keys over 1 KiB are stored shortened; put them back in exact byte order.
      if (long) out.sort((a, b) => compareKeys(a.name, b.name));
      return out;
    });
    for (const info of infos) if (filter.match(snapshotAdaptor(info))) await fn(info);
  }

  /** Every backend key some namespace references (commits in flight included). */
  private referenced(): Set<string> {
    return this.db.view((tx) => {
      const out = new Set<string>();
      for (const { key } of tx.range<NamespaceRecord>(namespacesPrefix())) {
        const ns = parseNamespaceKey(key);
        if (ns === undefined) continue;
        for (const { value } of tx.range<SnapshotMetaRecord>(objectsPrefix(ns, 'snapshots', this.name))) {
          out.add(value.backendKey);
          if (value.committing) out.add(value.committing.backendKey);
        }
      }
      return out;
    });
  }

  /**
   * Removes backend snapshots no namespace references (children before parents), then the
   * backend's own orphaned directories.
   */
  async cleanup(ctx: Context): Promise<CleanupResult> {
    return this.lock.run(async () => {
      // Removals in flight are not orphans to remove a second time.
      await this.removals;
      const referenced = this.referenced();
      // What was read is on disk before anything goes (see remove).
      await this.db.durable();
      let orphans = (await this.backend.keys()).filter((k) => !referenced.has(k));
      const removed: string[] = [];
      // An orphan's children are orphans too (a record's parent is always recorded), so
      // removing the childless ones round by round removes them all.
      while (orphans.length > 0) {
        const left: string[] = [];
        for (const k of orphans) {
          try {
            await this.backend.remove(ctx, k);
            removed.push(k);
          } catch {
            left.push(k);
          }
        }
        if (left.length === orphans.length) {
          this.logger.warn('cannot remove orphaned backend snapshots', { keys: left.join(',') });
          break;
        }
        orphans = left;
      }
      const backend = await this.backend.cleanup(ctx);
      return { snapshots: removed, directories: backend.directories };
    });
  }

  /**
   * Settles what a crash interrupted: a commit in flight is finished if the backend committed
   * it, and forgotten if not. Run once at startup, before serving.
   */
  async recover(ctx: Context): Promise<void> {
    return this.lock.run(async () => {
      const pending = this.db.view((tx) => {
        const out: Array<{ ns: string; rec: SnapshotMetaRecord }> = [];
        for (const { key } of tx.range<NamespaceRecord>(namespacesPrefix())) {
          const ns = parseNamespaceKey(key);
        if (ns === undefined) continue;
          for (const { value } of tx.range<SnapshotMetaRecord>(objectsPrefix(ns, 'snapshots', this.name))) {
            if (value.committing) out.push({ ns, rec: value });
          }
        }
        return out;
      });
      const exists = async (k: string) => this.backend.stat(ctx, k).then(() => true, () => false);
      for (const { ns, rec } of pending) {
        const to = rec.committing!;
        if (await exists(rec.backendKey)) {
          this.db.update((tx) => this.put(tx, ns, withoutCommitting(rec)));
        } else if (await exists(to.backendKey)) {
          this.db.update((tx) => this.finishCommit(tx, ns, rec, to));
          this.logger.info('finished a commit interrupted by a restart', { namespace: ns, key: rec.key, name: to.name });
        } else {
          this.logger.warn('snapshot lost by an interrupted commit', { namespace: ns, key: rec.key });
        }
      }
    });
  }

  /** Waits for the backend removals in flight; the backend belongs to its plugin, which closes it. */
  async close(): Promise<void> {
    await this.removals;
  }
}

function withoutCommitting(rec: SnapshotMetaRecord): SnapshotMetaRecord {
  const { committing: _, ...rest } = rec;
  return rest;
}
