import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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

  /** Creates the bundle dirs and writes the spec; AlreadyExists when the bundle exists. */
  static create(state: string, root: string, namespace: string, id: string, spec: Buffer): Bundle {
    try {
      validate(id);
    } catch (err) {
      throw wrap(err, 'invalid task id');
    }
    const path = join(state, namespace, id);
    const work = join(root, namespace, id);
    mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
    mkdirSync(dirname(work), { recursive: true, mode: 0o711 });
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`bundle ${path}`);
      throw err;
    }
    const bundle = new Bundle(id, namespace, path);
    try {
      mkdirSync(bundle.rootfs, { mode: 0o711 });
      // A stale work dir from an earlier task of the same id is replaced.
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work, { mode: 0o711 });
      symlinkSync(work, join(path, 'work'));
      writeFileSync(join(path, 'config.json'), spec, { mode: 0o666 });
    } catch (err) {
      rmSync(path, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      throw err;
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

  write(name: string, data: string): void {
    writeFileSync(join(this.path, name), data);
  }

  /** Unmounts the rootfs, then removes the bundle and its work dir. Idempotent. */
  async delete(): Promise<void> {
    let work: string | undefined;
    try {
      work = readlinkSync(join(this.path, 'work'));
    } catch {
      work = undefined;
    }
    if (existsSync(this.rootfs)) await unmountAll(this.rootfs, { lazyFallback: true });
    // Rename first so that a crash half-way never leaves a bundle that looks loadable.
    const doomed = join(dirname(this.path), `.${this.id}`);
    try {
      renameSync(this.path, doomed);
    } catch {
      /* already gone, or rename refused: remove in place */
    }
    rmSync(doomed, { recursive: true, force: true });
    rmSync(this.path, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  }
}
