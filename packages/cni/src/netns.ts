import { randomUUID } from 'node:crypto';
import { existsSync, promises as fsp, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, UnknownError } from '@berth/errdefs';
import { run } from '@berth/exec';

/** Where containerd (and `ip netns`) keep named network namespaces. */
export const DEFAULT_NETNS_ROOT = '/var/run/netns';

/** statfs(2) f_type of nsfs, the file system of /proc/<pid>/ns/* and their bind mounts. */
const NSFS_MAGIC = 0x6e736673;

/** How {@link createNetns} names and places a namespace. */
export interface CreateNetnsOptions {
  /** Directory holding the bind mount; created when missing. Default: `/var/run/netns`. */
  root?: string;
  /** File name under `root`. Default: `cni-<uuid>`, as containerd names them. */
  name?: string;
}

/**
 * Creates a new, empty network namespace that outlives every process: the namespace of a
 * short-lived `unshare --net=<file>` bound onto `<root>/<name>`, which is what containerd does
 * from a thread (Node cannot unshare a thread). Returns the path, which is what CNI_NETNS and an
 * OCI spec's network namespace take. Needs root. With the default root, `ip netns exec <name>`
 * finds it too. A failure removes the half-made file.
 */
export async function createNetns(options: CreateNetnsOptions = {}): Promise<string> {
  const root = options.root ?? DEFAULT_NETNS_ROOT;
  const name = options.name ?? `cni-${randomUUID()}`;
  if (name === '' || name.includes('/') || name === '.' || name === '..') throw new InvalidArgumentError(`network namespace name ${JSON.stringify(name)}`);
  await fsp.mkdir(root, { recursive: true, mode: 0o755 });
  const path = join(root, name);
  // O_EXCL: two pods must never share a name; mode 0 as containerd creates it (root reads anyway).
  try {
    await (await fsp.open(path, 'wx', 0o000)).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`network namespace ${path}`, { cause: err });
    throw err;
  }
  try {
    const res = await run('/usr/bin/unshare', [`--net=${path}`, '/bin/true']);
    if (res.code !== 0) throw new UnknownError(`create network namespace ${path}: unshare: ${res.stderr.toString().trim() || `exit status ${res.code}`}`);
  } catch (err) {
    await removeNetns(path).catch(() => undefined);
    throw err;
  }
  return path;
}

/** Reports whether `path` is a mounted network namespace (an nsfs bind mount), not a plain file. */
export function isNetns(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Removes a namespace made by {@link createNetns}: detaches the bind mount (processes still in
 * the namespace keep it; the kernel frees it with the last of them) and deletes the file.
 * Idempotent: a missing path, or a file that was never mounted (a creation cut short), is fine.
 */
export async function removeNetns(path: string): Promise<void> {
  if (path === '') return;
  // More than one mount may be stacked on the file after a racing create; detach them all.
  for (let i = 0; i < 8 && isNetns(path); i++) {
    const res = await run('/usr/bin/umount', ['--lazy', path]);
    if (res.code !== 0 && isNetns(path)) throw new UnknownError(`remove network namespace ${path}: umount: ${res.stderr.toString().trim() || `exit status ${res.code}`}`);
  }
  if (existsSync(path)) rmSync(path, { force: true });
}
