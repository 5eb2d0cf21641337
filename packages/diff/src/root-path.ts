import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { InvalidArgumentError } from '@berth/errdefs';

/** Symlinks followed while resolving one path before giving up (as containerd: 255). */
export const MAX_SYMLINKS = 255;

/**
 * Normalises an archive path to a list of components relative to the root: `.` and empty parts
 * dropped, `..` applied lexically and clamped at the root, a leading '/' ignored. This is the
 * lexical clean that precedes symlink resolution, so `../../etc/x` and `/etc/x` both mean
 * `<root>/etc/x`.
 */
export function cleanComponents(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out;
}

/**
 * Resolves `path` inside `root` the way containerd's root-path resolution does (a securejoin):
 * every component that is a symlink is followed, absolute targets restart at `root`, and `..`
 * never climbs above `root`. Components that do not exist are taken literally. The result is
 * an absolute host path that is `root` or lies under it, so writing there cannot escape.
 *
 * The last component is resolved too; callers that must not follow it (extraction replaces a
 * symlink rather than writing through it) resolve the parent and append the base name.
 */
export function resolveInRoot(root: string, path: string): string {
  const base = root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
  const todo = cleanComponentsRaw(path).reverse(); // a stack: next component on top
  const done: string[] = [];
  let links = 0;
  let missing = false; // once a component is missing, nothing below it can be a symlink
  while (todo.length > 0) {
    const part = todo.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done.pop();
      missing = false;
      continue;
    }
    done.push(part);
    if (missing) continue;
    const full = `${base}/${done.join('/')}`;
    let isLink = false;
    try {
      const st = lstatSync(full, { throwIfNoEntry: false });
      if (!st) {
        missing = true;
        continue;
      }
      isLink = st.isSymbolicLink();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      missing = true;
      continue;
    }
    if (!isLink) continue;
    if (++links > MAX_SYMLINKS) throw new InvalidArgumentError(`too many symlinks resolving "${path}" inside "${root}"`);
    const target = readlinkSync(full);
    done.pop();
    if (target.startsWith('/')) done.length = 0;
    const parts = target.split('/');
    for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]);
  }
  return done.length === 0 ? base : `${base}/${done.join('/')}`;
}

function cleanComponentsRaw(path: string): string[] {
  // `..` must be resolved after the symlinks before it (a/.. where a -> x/y is x), so keep it.
  return path.split('/');
}

/** Joins a cleaned relative path under root without touching the filesystem. */
export function lexicalJoin(root: string, path: string): string {
  const parts = cleanComponents(path);
  return parts.length === 0 ? root : posix.join(root, ...parts);
}
