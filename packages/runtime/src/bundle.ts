import { promises as fsp, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AlreadyExistsError, wrap } from '@berth/errdefs';
import { validate } from '@berth/identifiers';
import { unmountAll } from '@berth/mount';

/**
 * A task's bundle: `<state>/<ns>/<id>` with config.json, rootfs/ (the shim mounts the rootfs
 * there), and `work`, a symlink to `<root>/<ns>/<id>` (the runtime's persistent work dir), laid
 * out as containerd's runtime v2 does. The shim adds address, init.pid, log.json and the rest.
 */
export class Bundle {
  private constructor(
    readonly id: string,
    readonly namespace: string,
    readonly path: string,
  ) {}

  get rootfs(): string {
    return join(this.path, 'rootfs');
  }

  /**
   * Creates the bundle dirs and writes the spec; AlreadyExists when the bundle exists. Every step
   * is asynchronous (on a loaded disk a directory operation can take milliseconds, and a task
   * start must not hold the event loop for them), and the independent ones run side by side: each
   * trip through libuv's thread pool costs a wakeup of the event loop, 0.3 to 1 ms when busy.
   */
  static async create(state: string, root: string, namespace: string, id: string, spec: Buffer): Promise<Bundle> {
    try {
      validate(id);
    } catch (err) {
      throw wrap(err, 'invalid task id');
    }
    const path = join(state, namespace, id);
    const work = join(root, namespace, id);
    await Promise.all([fsp.mkdir(dirname(path), { recursive: true, mode: 0o711 }), fsp.mkdir(dirname(work), { recursive: true, mode: 0o711 })]);
    try {
      await fsp.mkdir(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`bundle ${path}`);
      throw err;
    }
    const bundle = new Bundle(id, namespace, path);
    const steps = await Promise.allSettled([
      fsp.mkdir(bundle.rootfs, { mode: 0o711 }),
      // A stale work dir from an earlier task of the same id is replaced.
      fsp.rm(work, { recursive: true, force: true }).then(() => fsp.mkdir(work, { mode: 0o711 })),
      fsp.symlink(work, join(path, 'work')),
      fsp.writeFile(join(path, 'config.json'), spec, { mode: 0o666 }),
    ]);
    const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await fsp.rm(path, { recursive: true, force: true });
      await fsp.rm(work, { recursive: true, force: true });
      throw failed.reason;
    }
    return bundle;
  }

  /** Opens an existing bundle (after a restart). */
  static load(state: string, namespace: string, id: string): Bundle {
    return new Bundle(id, namespace, join(state, namespace, id));
  }

  /** Reads a file of the bundle; undefined when it is absent. */
  read(name: string): string | undefined {
    try {
      return readFileSync(join(this.path, name), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Writes files of the bundle side by side, off the event loop (a file's creation can wait on the disk's journal). */
  async writeAll(files: Record<string, string>): Promise<void> {
    await Promise.all(Object.entries(files).map(([name, data]) => fsp.writeFile(join(this.path, name), data)));
  }

  /** Unmounts the rootfs, then removes the bundle and its work dir. Idempotent. */
  async delete(): Promise<void> {
    const work = await fsp.readlink(join(this.path, 'work')).catch(() => undefined);
    if (await exists(this.rootfs)) await unmountAll(this.rootfs, { lazyFallback: true });
    // Both trees move aside to names no bundle has (startup removes dot names and work dirs
    // without a bundle), the work dir first: until the bundle's own rename a new task of the
    // same id cannot be created, so the removals below never touch what a new one made. The
    // removals are asynchronous: a synchronous one held the event loop 5 ms per task on average.
    const tag = `.${this.id}.${process.pid}.${++deletions}`;
    let doomedWork: string | undefined;
    if (work) doomedWork = (await moveAside(work, join(dirname(work), tag))) ?? work;
    // A crash half-way never leaves a bundle that looks loadable.
    const doomed = (await moveAside(this.path, join(dirname(this.path), tag))) ?? this.path;
    await fsp.rm(doomed, { recursive: true, force: true });
    if (doomedWork) await fsp.rm(doomedWork, { recursive: true, force: true });
  }
}

let deletions = 0;

/** Renames `from` to `to`; undefined when it could not (gone already, or refused: removed in place). */
function moveAside(from: string, to: string): Promise<string | undefined> {
  return fsp.rename(from, to).then(
    () => to,
    () => undefined,
  );
}

const exists = (path: string) => fsp.access(path).then(() => true, () => false);
