import { existsSync, promises as fsp } from 'node:fs';
import { UnknownError } from '@berth/errdefs';
import { run } from '@berth/exec';
import type { Usage } from './types';

/**
 * Returns the disk usage of a tree as containerd computes it: every distinct inode (hard links
 * once) at or under `root`, its allocated blocks in bytes (st_blocks * 512), the root included.
 *
 * GNU du counts exactly that (`-B1` for bytes, `--inodes` for the count), in C and off the
 * event loop: a commit of a 400-file layer walked it in 25 ms of one-at-a-time lstat calls
 * through the libuv pool, and a 100,000-file layer took seconds. Where du is missing or fails,
 * the tree is walked here.
 */
export async function diskUsage(root: string): Promise<Usage> {
  const [bytes, inodes] = await Promise.all([du(['-s', '-B1', '--', root]), du(['-s', '--inodes', '--', root])]);
  if (bytes !== undefined && inodes !== undefined) return { size: bytes, inodes };
  return walkUsage(root);
}

const DU_PATH = ['/usr/bin/du', '/bin/du'].find((p) => existsSync(p));

/** The number du prints first, or undefined when it cannot run or fails. */
async function du(args: string[]): Promise<number | undefined> {
  if (!DU_PATH) return undefined;
  const r = await run(DU_PATH, args).catch(() => undefined);
  if (!r || r.code !== 0) return undefined;
  const n = Number(/^(\d+)\t/.exec(r.stdout.toString('latin1'))?.[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** {@link diskUsage} computed here, one lstat at a time. */
export async function walkUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  // Paths as bytes: a layer's file names need not be UTF-8.
  const visit = async (path: Buffer): Promise<void> => {
    const st = await fsp.lstat(path, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) {
      const names = await fsp.readdir(path, { encoding: 'buffer' });
      for (const name of names) await visit(Buffer.concat([path, SLASH, name]));
    }
  };
  await visit(Buffer.from(root));
  return { size, inodes: seen.size };
}

const SLASH = Buffer.from('/');

const CP_PATH = ['/bin/cp', '/usr/bin/cp'].find((p) => existsSync(p)) ?? 'cp';

/**
 * Copies the contents of `src` into the existing directory `dst`, keeping ownership, modes,
 * times, xattrs, hard links, devices and sockets (`cp -a`, reflinks where the filesystem has
 * them). An argument array, never a shell.
 */
export async function copyDir(src: string, dst: string): Promise<void> {
  const r = await run(CP_PATH, ['-a', '--reflink=auto', '--', `${src}/.`, dst], { stdout: false });
  if (r.code !== 0) throw new UnknownError(`copy ${src} to ${dst}: ${r.stderr.toString().trim() || `exit status ${r.code}`}`);
}

/** Serializes async critical sections, in arrival order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
