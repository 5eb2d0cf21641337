import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Context, context } from '@berth/context';
import { LocalContentStore, MetadataContentStore, contentGcKinds } from '@berth/content';
import { GcHooks, LmdbContainerStore, LmdbImageStore, LmdbLeaseManager, MetadataDb } from '@berth/metadata';
import { MetadataSnapshotter, NativeSnapshotter, snapshotsGcKind } from '@berth/snapshots';
import { tempDir } from '@berth/testing';
import { MetadataCollector, type MetadataCollectorOptions } from './collector';

export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** A real metadata database, content store and native snapshotter in a temp dir, with a collector. */
export class GcWorld {
  readonly hooks = new GcHooks();
  readonly images: LmdbImageStore;
  readonly containers: LmdbContainerStore;
  readonly leases: LmdbLeaseManager;
  readonly content: MetadataContentStore;
  readonly snapshots: MetadataSnapshotter;
  readonly gc: MetadataCollector;

  private constructor(
    readonly dir: { path: string; remove(): void },
    readonly db: MetadataDb,
    readonly backend: LocalContentStore,
    readonly native: NativeSnapshotter,
    options: MetadataCollectorOptions,
  ) {
    this.images = new LmdbImageStore(db);
    this.containers = new LmdbContainerStore(db);
    this.leases = new LmdbLeaseManager(db);
    this.content = new MetadataContentStore(db, backend);
    this.snapshots = new MetadataSnapshotter(db, 'native', native);
    for (const kind of [...contentGcKinds, snapshotsGcKind]) this.hooks.registerKind(kind);
    this.hooks.registerBackend('content', () => this.content.collectBackend());
    this.hooks.registerBackend('snapshotter/native', async (c) => (await this.snapshots.cleanup(c)).snapshots.length);
    this.gc = new MetadataCollector(db, this.hooks, options);
  }

  static async open(options: MetadataCollectorOptions = {}): Promise<GcWorld> {
    const dir = tempDir('berth-gc-');
    const db = MetadataDb.open(join(dir.path, 'meta'));
    const backend = await LocalContentStore.open(join(dir.path, 'content'));
    const native = NativeSnapshotter.open(join(dir.path, 'native'));
    return new GcWorld(dir, db, backend, native, options);
  }

  async close(): Promise<void> {
    await this.native.close();
    await this.db.close();
    this.dir.remove();
  }

  /** Writes a blob through the namespaced store (under `ctx`'s lease, if any); returns its digest. */
  async blob(ctx: Context, data: string | Buffer, labels: Record<string, string> = {}): Promise<string> {
    const bytes = Buffer.from(data);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const w = await this.content.writer(ctx, { ref: `ref-${digest.slice(7, 19)}-${Math.random().toString(36).slice(2)}`, total: bytes.length });
    await w.write(bytes);
    await w.commit(bytes.length, digest, labels);
    return digest;
  }

  /** Reports whether the namespace has a record of the blob. */
  has(ns: string, digest: string): boolean {
    return this.content.has(context({ namespace: ns }), digest);
  }

  /** Reports whether the blob's file exists in the backend. */
  file(digest: string): boolean {
    return existsSync(join(this.dir.path, 'content', 'blobs', 'sha256', digest.slice(7)));
  }

  async image(ctx: Context, name: string, digest: string, labels: Record<string, string> = {}): Promise<void> {
    await this.images.create(ctx, { name, labels, target: { mediaType: MANIFEST, digest, size: 1, annotations: {} } });
  }

  /** Prepares and commits a snapshot `name` on `parent`; returns its name. */
  async layer(ctx: Context, name: string, parent = '', labels: Record<string, string> = {}): Promise<string> {
    await this.snapshots.prepare(ctx, `extract-${name}`, parent);
    await this.snapshots.commit(ctx, name, `extract-${name}`, { labels });
    return name;
  }

  async snapshotNames(ns: string): Promise<string[]> {
    const out: string[] = [];
    await this.snapshots.walk(context({ namespace: ns }), (i) => void out.push(i.name));
    return out.sort();
  }
}
