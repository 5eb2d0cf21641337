import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Mount } from '@berth/mount';
import { LocalSnapshotter } from './local';
import { MetaStore, SnapshotRecord } from './metastore';
import type { Kind } from './types';

/** Reports whether the kernel has overlayfs (loaded, or built in). */
export function overlaySupported(): boolean {
  try {
    return /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

export interface OverlaySnapshotterOptions {
  /**
   * Add `index=off` to overlay mounts (default: when the overlay module has an `index`
   * parameter, as containerd decides), so that a lower dir can be shared by many mounts.
   */
  indexOff?: boolean;
}

/**
 * The overlayfs snapshotter: each snapshot is `<root>/snapshots/<id>/{fs,work}`; a committed
 * snapshot's `fs` becomes a lower dir of its children. Mounts are containerd's: a bind mount for
 * a parentless snapshot or a view of one layer, otherwise an overlay with the lower dirs listed
 * closest parent first (views get no upper and work dirs, so they are read-only).
 */
export class OverlaySnapshotter extends LocalSnapshotter {
  private readonly indexOff: boolean;

  private constructor(root: string, store: MetaStore, options: OverlaySnapshotterOptions) {
    super(root, store);
    this.indexOff = options.indexOff ?? existsSync('/sys/module/overlay/parameters/index');
  }

  /** Opens (creating if needed) an overlayfs snapshotter in `root`. */
  static open(root: string, options: OverlaySnapshotterOptions = {}): OverlaySnapshotter {
    return new OverlaySnapshotter(root, MetaStore.open(join(root, 'metadata.lmdb')), options);
  }

  upperPath(id: number): string {
    return join(this.snapshotDir(id), 'fs');
  }

  workPath(id: number): string {
    return join(this.snapshotDir(id), 'work');
  }

  protected ownsDirectory(): boolean {
    return true;
  }

  protected async populate(dir: string, kind: Kind, parentIds: readonly number[]): Promise<void> {
    const fs = join(dir, 'fs');
    // Side by side, each a trip through the thread pool: a container's creation waits for them.
    const [parent] = await Promise.all([
      parentIds.length > 0 ? fsp.stat(this.upperPath(parentIds[0])) : undefined,
      fsp.mkdir(fs, { mode: 0o755 }),
      kind === 'active' ? fsp.mkdir(join(dir, 'work'), { mode: 0o711 }) : undefined,
    ]);
    if (parent) {
      // The upper dir takes the owner of the parent's root, as containerd does, so that a
      // layer's root directory keeps its owner when the overlay is mounted.
      const mine = await fsp.stat(fs);
      if (parent.uid !== mine.uid || parent.gid !== mine.gid) await fsp.chown(fs, parent.uid, parent.gid);
    }
  }

  protected layerDir(id: number): string {
    return this.upperPath(id);
  }

  protected mountsOf(rec: SnapshotRecord): Mount[] {
    const parents = rec.parentIds;
    if (parents.length === 0) {
      return [{ type: 'bind', source: this.upperPath(rec.id), target: '', options: [rec.kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
    }
    const options: string[] = [];
    if (this.indexOff) options.push('index=off');
    if (rec.kind === 'active') {
      options.push(`workdir=${this.workPath(rec.id)}`, `upperdir=${this.upperPath(rec.id)}`);
    } else if (parents.length === 1) {
      return [{ type: 'bind', source: this.upperPath(parents[0]), target: '', options: ['ro', 'rbind'] }];
    }
    options.push(`lowerdir=${parents.map((id) => this.upperPath(id)).join(':')}`);
    return [{ type: 'overlay', source: 'overlay', target: '', options }];
  }
}
