import { readFileSync } from 'node:fs';
import type { MountInfo } from './types';

/** Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash) in mountinfo fields. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses the text of a mountinfo file (see proc(5)). */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      mountPoint: unescape(fields[4]),
      options: fields[5],
      fsType: fields[sep + 1],
      source: unescape(fields[sep + 2]),
      superOptions: fields.slice(sep + 3).join(' '),
    });
  }
  return out;
}

/** Returns what is mounted in this process's mount namespace, in mount order. */
export function readMountInfo(path = '/proc/self/mountinfo'): MountInfo[] {
  return parseMountInfo(readFileSync(path, 'utf8'));
}

/**
 * Returns the mounts at `dir` or below it, deepest (and, on one mount point, latest) first: the
 * order in which they can be unmounted.
 */
export function mountsUnder(dir: string, infos: readonly MountInfo[] = readMountInfo()): MountInfo[] {
  const root = dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
  const prefix = root === '/' ? '/' : `${root}/`;
  const picked = infos.map((m, order) => ({ m, order })).filter(({ m }) => m.mountPoint === root || m.mountPoint.startsWith(prefix));
  picked.sort((a, b) => b.m.mountPoint.length - a.m.mountPoint.length || b.order - a.order);
  return picked.map(({ m }) => m);
}

/** Reports whether something is mounted exactly at `dir`. */
export function isMountPoint(dir: string, infos: readonly MountInfo[] = readMountInfo()): boolean {
  const root = dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
  return infos.some((m) => m.mountPoint === root);
}
