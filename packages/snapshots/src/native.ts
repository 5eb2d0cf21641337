import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Mount } from '@berth/mount';
import { copyDir } from './fs-util';
import { LocalSnapshotter } from './local';
import { MetaStore, SnapshotRecord } from './metastore';
import type { Kind } from './types';

/**
 * The native snapshotter: each snapshot is a plain directory `<root>/snapshots/<id>`; preparing
 * over a parent copies the parent's tree (copy-on-prepare). A view of a parent binds the parent's
 * directory read-only and owns no directory. Mounts are bind mounts, as containerd's.
 */
export class NativeSnapshotter extends LocalSnapshotter {
  protected override readonly mountsErrorContext = 'failed to get snapshot mount';

  private constructor(root: string, store: MetaStore) {
    super(root, store);
  }

  /** Opens (creating if needed) a native snapshotter in `root`. */
  static open(root: string): NativeSnapshotter {
    return new NativeSnapshotter(root, MetaStore.open(join(root, 'metadata.lmdb')));
  }

  protected ownsDirectory(kind: Kind, parentIds: readonly number[]): boolean {
    return kind === 'active' || parentIds.length === 0;
  }

  protected async populate(dir: string, _kind: Kind, parentIds: readonly number[]): Promise<void> {
    await fsp.chmod(dir, 0o755);
    if (parentIds.length > 0) await copyDir(this.snapshotDir(parentIds[0]), dir);
  }

  protected layerDir(id: number): string {
    return this.snapshotDir(id);
  }

  protected mountsOf(rec: SnapshotRecord): Mount[] {
    const source = rec.parentIds.length === 0 || rec.kind === 'active' ? this.snapshotDir(rec.id) : this.snapshotDir(rec.parentIds[0]);
    return [{ type: 'bind', source, target: '', options: ['rbind', rec.kind === 'view' ? 'ro' : 'rw'] }];
  }
}
