import * as fs from 'node:fs';
import { InvalidArgumentError } from '@berth/errdefs';
import { fsPath, readlinkName } from './byte-names';

/** Symlinks followed while resolving one path before giving up (as containerd: 255). */
export const MAX_SYMLINKS = 255;

/**
 * The components of an archive path (a tar entry name or a hard-link target) that must name
 * something inside the layer: an absolute path, or `..` climbing above the root, is refused with
 * InvalidArgument instead of being clamped. `what` names the path in the error.
 */
export function confinedComponents(path: string, what: string): string[] {
  if (path.startsWith('/')) throw new InvalidArgumentError(`${what} "${path}" is absolute: a layer may only name paths inside its root`);
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') out.push(part);
    else if (out.pop() === undefined) throw new InvalidArgumentError(`${what} "${path}" climbs out of the layer root`);
  }
  return out;
}

/** Options of {@link resolveInRoot}. */
export interface ResolveOptions {
  /**
   * Refuse, with InvalidArgument, to follow a symlink that leads out of the root (an absolute
   * target, or `..` above the root) instead of clamping it there. Default: clamp.
   */
  confine?: boolean;
}

/**
 * Resolves `path` inside `root` the way containerd's root-path resolution does (a securejoin):
 * every component that is a symlink is followed, absolute targets restart at `root`, and `..`
 * never climbs above `root` (or, with `confine`, such a symlink is refused). Components that
 * do not exist are taken literally. The result is an absolute host path that is `root` or lies
 * under it, so writing there cannot escape.
 *
 * Only `root` is looked at: applied straight into an overlay upper directory, a layer does not
 * see the symlinks of the layers below (neither does containerd's nor Docker's overlay apply).
 *
 * The last component is resolved too; callers that must not follow it (extraction replaces a
 * symlink rather than writing through it) resolve the parent and append the base name.
 */
export function resolveInRoot(root: string, path: string, options: ResolveOptions = {}): string {
  const base = root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
  const todo = path.split('/').reverse(); // a stack: next component on top
  const done: string[] = [];
  let links = 0;
  let via: { link: string; target: string } | undefined;
  let missing = false; // once a component is missing, nothing below it can be a symlink
  while (todo.length > 0) {
    const part = todo.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      // At the root only a symlink's target can get here: callers clean the path itself.
      if (done.length === 0 && options.confine && via) throw escapeError(path, via);
      done.pop();
      missing = false;
      continue;
    }
    done.push(part);
    if (missing) continue;
    const full = `${base}/${done.join('/')}`;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(fsPath(full), { throwIfNoEntry: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    }
    if (!st) {
      missing = true;
      continue;
    }
    if (!st.isSymbolicLink()) continue;
    if (++links > MAX_SYMLINKS) throw new InvalidArgumentError(`too many symlinks resolving "${path}" inside "${root}"`);
    const target = readlinkName(full);
    via = { link: done.join('/'), target };
    done.pop();
    if (target.startsWith('/')) {
      if (options.confine) throw escapeError(path, via);
      done.length = 0;
    }
    const parts = target.split('/');
    for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]);
  }
  return done.length === 0 ? base : `${base}/${done.join('/')}`;
}

function escapeError(path: string, via: { link: string; target: string }): InvalidArgumentError {
  return new InvalidArgumentError(`"${path}" leads out of the layer root through symlink "${via.link}" -> "${via.target}"`);
}

/**
 * Resolves clean relative paths (components joined by '/', no '.', '..' or empty ones) inside
 * one root as {@link resolveInRoot} does, remembering every directory it resolved: a path whose
 * parent is known costs one lstat, so a layer of n entries at depth d costs O(n·d) instead of
 * O(n·d²). A symlink met on the way falls back to {@link resolveInRoot} for that path (its
 * target may restart at the root or climb). Call {@link invalidate} whenever a symlink may have
 * appeared or something was removed under the root: what was remembered may no longer hold.
 */
export class RootResolver {
  private readonly base: string;
  private readonly known = new Map<string, string>();

  constructor(private readonly root: string, private readonly options: ResolveOptions = {}) {
    this.base = root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
  }

  resolve(rel: string): string {
    if (rel === '') return this.base;
    const hit = this.known.get(rel);
    if (hit !== undefined) return hit;
    // The nearest remembered ancestor, then one component at a time from there.
    let end = rel.lastIndexOf('/');
    let host = this.base;
    while (end > 0) {
      const h = this.known.get(rel.slice(0, end));
      if (h !== undefined) {
        host = h;
        break;
      }
      end = rel.lastIndexOf('/', end - 1);
    }
    let missing = false;
    for (let start = end < 0 ? 0 : end + 1; start <= rel.length;) {
      let next = rel.indexOf('/', start);
      if (next < 0) next = rel.length;
      const candidate = `${host}/${rel.slice(start, next)}`;
      if (!missing) {
        const st = lstatNoFollow(candidate);
        if (st === undefined) missing = true; // nothing below a missing name can be a symlink
        else if (st.isSymbolicLink()) {
          const resolved = resolveInRoot(this.root, rel, this.options);
          this.known.set(rel, resolved);
          return resolved;
        }
      }
      host = candidate;
      this.known.set(rel.slice(0, next), host);
      start = next + 1;
    }
    return host;
  }

  /** Forgets everything resolved so far. */
  invalidate(): void {
    this.known.clear();
  }
}

function lstatNoFollow(path: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(fsPath(path), { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}
