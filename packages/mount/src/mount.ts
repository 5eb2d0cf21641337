import { existsSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, UnknownError } from '@berth/errdefs';
import { run as exec } from '@berth/exec';
import { mountsUnder, readMountInfo } from './mountinfo';
import type { Mount } from './types';

/** util-linux mount(8) and umount(8); Debian has them in /bin (= /usr/bin). */
export const MOUNT_PATH = ['/bin/mount', '/usr/bin/mount', '/sbin/mount'].find((p) => existsSync(p)) ?? 'mount';
export const UMOUNT_PATH = ['/bin/umount', '/usr/bin/umount', '/sbin/umount'].find((p) => existsSync(p)) ?? 'umount';

/**
 * The most bytes mount(2) accepts for the option string: one page, including the final NUL.
 * Longer overlay lowerdir lists are compacted (see `compactLowerdir`).
 */
export const MOUNT_DATA_LIMIT = 4096;

interface RunResult {
  code: number;
  stderr: string;
}

async function run(file: string, args: readonly string[], cwd?: string): Promise<RunResult> {
  // Argument arrays only, never a shell: paths and snapshot keys reach mount(8) verbatim. Forked
  // from @berth/exec's worker thread, never the event loop.
  const r = await exec(file, args, { cwd, stdout: false });
  return { code: r.code ?? (r.signal ? 128 : 1), stderr: r.stderr.toString().trim() };
}

const optionBytes = (options: readonly string[]) => Buffer.byteLength(options.join(','));

/**
 * Rewrites an overlay mount whose options do not fit in one page: the lowerdir entries become
 * paths relative to their longest common directory, and mount(8) runs with that directory as its
 * working directory (the kernel resolves relative lowerdirs against the caller's cwd). This is
 * what containerd's mount package does with a chdir'd helper; a spawned process with `cwd` is the
 * Node equivalent. Returns undefined when nothing can be compacted.
 */
export function compactLowerdir(options: readonly string[]): { cwd: string; options: string[] } | undefined {
  const at = options.findIndex((o) => o.startsWith('lowerdir='));
  if (at < 0) return undefined;
  const dirs = options[at].slice('lowerdir='.length).split(':');
  if (dirs.length < 2 || dirs.some((d) => !d.startsWith('/'))) return undefined;
  let common = dirs[0].slice(0, dirs[0].lastIndexOf('/') + 1);
  for (const d of dirs) {
    while (common.length > 1 && !d.startsWith(common)) common = common.slice(0, common.lastIndexOf('/', common.length - 2) + 1);
  }
  if (common.length <= 1) return undefined;
  const out = [...options];
  out[at] = `lowerdir=${dirs.map((d) => d.slice(common.length)).join(':')}`;
  return { cwd: common.length > 1 ? common.slice(0, -1) : common, options: out };
}

/** Mounts one Mount at `target` (which must exist). */
export async function mount(m: Mount, target: string): Promise<void> {
  let options = [...m.options];
  let cwd: string | undefined;
  if (optionBytes(options) >= MOUNT_DATA_LIMIT && m.type === 'overlay') {
    const compact = compactLowerdir(options);
    if (compact) ({ options, cwd } = compact);
  }
  if (optionBytes(options) >= MOUNT_DATA_LIMIT) {
    throw new InvalidArgumentError(`mount options of ${target} are ${optionBytes(options)} bytes, more than mount(2) accepts (${MOUNT_DATA_LIMIT - 1})`);
  }
  const args: string[] = [];
  // A bind mount is described by its options (bind/rbind); libmount then remounts it read-only
  // when `ro` is among them. Any other type is passed as is.
  if (m.type !== 'bind') args.push('-t', m.type);
  if (options.length > 0) args.push('-o', options.join(','));
  args.push('--', m.source, target);
  const res = await run(MOUNT_PATH, args, cwd);
  if (res.code !== 0) throw new UnknownError(`mount ${m.type} ${m.source} on ${target}: ${res.stderr || `exit status ${res.code}`}`);
}

/**
 * Mounts a list of mounts on `target`, in order (each over the previous, as containerd's
 * mount.All). On failure, what this call mounted is unmounted again.
 */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  let done = 0;
  try {
    for (const m of mounts) {
      await mount(m, target);
      done++;
    }
  } catch (err) {
    for (; done > 0; done--) await unmount(target).catch(() => undefined);
    throw err;
  }
}

export interface UnmountOptions {
  /** Detach lazily (`umount -l`) if the mount stays busy after the retries. Default false. */
  lazyFallback?: boolean;
}

/**
 * Unmounts the topmost mount at `target`. EBUSY is retried for about a second, as containerd
 * does; a target that is not mounted is an error.
 */
export async function unmount(target: string, options: UnmountOptions = {}): Promise<void> {
  let res: RunResult = { code: 0, stderr: '' };
  for (let attempt = 0; attempt < 50; attempt++) {
    res = await run(UMOUNT_PATH, ['--', target]);
    if (res.code === 0) return;
    if (!/busy/i.test(res.stderr)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (options.lazyFallback && /busy/i.test(res.stderr)) {
    const lazy = await run(UMOUNT_PATH, ['-l', '--', target]);
    if (lazy.code === 0) return;
  }
  throw new UnknownError(`unmount ${target}: ${res.stderr || `exit status ${res.code}`}`);
}

/**
 * Unmounts everything mounted at `dir` or below it, deepest first, until mountinfo shows none.
 * For cleanup paths: it never fails because nothing was mounted.
 */
export async function unmountAll(dir: string, options: UnmountOptions = {}): Promise<void> {
  for (let round = 0; round < 64; round++) {
    const mounted = mountsUnder(dir, readMountInfo());
    if (mounted.length === 0) return;
    await unmount(mounted[0].mountPoint, options);
  }
  throw new UnknownError(`unmount ${dir}: mounts remain after 64 unmounts`);
}

/**
 * Mounts `mounts` on a new temp directory, runs `fn` with its path, then always unmounts
 * everything there and removes the directory, whether `fn` succeeded or threw.
 */
export async function withTempMount<T>(mounts: readonly Mount[], fn: (dir: string) => Promise<T> | T, options: { parent?: string } = {}): Promise<T> {
  const dir = mkdtempSync(join(options.parent ?? tmpdir(), 'berth-mount-'));
  try {
    await mountAll(mounts, dir);
    return await fn(dir);
  } finally {
    await unmountAll(dir, { lazyFallback: true });
    rmdirSync(dir);
  }
}
