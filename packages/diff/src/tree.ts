import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { compareNames, fsPath, readdirNames, readlinkName } from './byte-names';
import { readXattrs } from './xattr';

/** One entry of {@link describeTree}: what a layer round trip must preserve. */
export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  /** mtime in whole seconds (directories and files; symlinks too). */
  mtime?: number;
  /** Hard-link group: the first path (in walk order) sharing this inode. */
  linkedTo?: string;
  xattrs?: Record<string, string>;
}

/** Options of {@link describeTree}. */
export interface DescribeOptions {
  /** Include mtimes (default true). */
  mtimes?: boolean;
  /** Skip xattrs whose name matches (default: overlayfs' private `trusted.overlay.*`). */
  ignoreXattr?: (name: string) => boolean;
}

/**
 * Describes every entry under `root` (not the root itself), sorted by path: type, mode, owner,
 * size and content digest, link targets, devices, hard-link groups and xattrs. Two trees are
 * equal for layer purposes when their descriptions are.
 */
export async function describeTree(root: string, options: DescribeOptions = {}): Promise<TreeEntry[]> {
  const real = fs.realpathSync(root);
  const ignore = options.ignoreXattr ?? ((n: string) => n.startsWith('trusted.overlay.'));
  const xattrs = await readXattrs(real, true);
  const out: TreeEntry[] = [];
  const inodes = new Map<string, string>();
  const walk = (rel: string) => {
    const dir = rel === '' ? real : `${real}/${rel}`;
    for (const name of readdirNames(dir).sort(compareNames)) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const p = `${real}/${r}`;
      const st = fs.lstatSync(fsPath(p));
      const e: TreeEntry = {
        path: r,
        type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char'
          : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'socket',
        mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
        uid: st.uid,
        gid: st.gid,
      };
      if (options.mtimes !== false) e.mtime = Math.floor(st.mtimeMs / 1000);
      if (st.isFile()) {
        e.size = st.size;
        const h = createHash('sha256');
        const fd = fs.openSync(fsPath(p), 'r');
        try {
          const buf = Buffer.allocUnsafe(256 * 1024);
          for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
        } finally {
          fs.closeSync(fd);
        }
        e.sha256 = h.digest('hex');
      }
      if (st.isSymbolicLink()) e.target = readlinkName(p);
      if (st.isCharacterDevice() || st.isBlockDevice()) e.rdev = st.rdev;
      if (!st.isDirectory() && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = inodes.get(key);
        if (first) e.linkedTo = first;
        else inodes.set(key, r);
      }
      const xa = xattrs.get(p);
      if (xa) {
        const rec: Record<string, string> = {};
        for (const [k, v] of [...xa].sort(([a], [b]) => (a < b ? -1 : 1))) if (!ignore(k)) rec[k] = v.toString('base64');
        if (Object.keys(rec).length > 0) e.xattrs = rec;
      }
      out.push(e);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}
