import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import { NotImplementedError } from '@berth/errdefs';
import { compareNames, fsPath, readdirNames, readlinkName } from './byte-names';
import { TarHeader, TarType, TarWriter, drained, makeHeader } from './tar';
import { Xattrs, isOverlayPrivateXattr, readXattrs } from './xattr';

/** Options of {@link writeDiff} and {@link writeOverlayDiff}. */
export interface DiffOptions {
  /**
   * Modification time of whiteout entries, in seconds since the epoch. Default 0, so the same
   * change set always gives the same bytes (containerd stamps them with the current time).
   */
  whiteoutTime?: number;
  signal?: AbortSignal;
}

/** What a diff wrote: digest and size of the uncompressed tar (the diff ID of the layer). */
export interface DiffResult {
  digest: string;
  size: number;
}

/** Where a diff goes: a Writable (backpressure honoured, not ended) or a function per chunk. */
export type DiffSink = Writable | ((chunk: Buffer) => void | Promise<void>);

type Stat = fs.BigIntStats;
type ChangeKind = 'add' | 'modify' | 'unmodified';

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const NS_PER_SEC = 1_000_000_000n;

function sortedNames(dir: string): string[] {
  return readdirNames(dir).sort(compareNames);
}

function lstat(p: string): Stat {
  return fs.lstatSync(fsPath(p), { bigint: true });
}

function lstatOrNull(p: string): Stat | null {
  try {
    return lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}

function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

function typeOf(st: Stat): string | undefined {
  if (st.isFile()) return TarType.File;
  if (st.isDirectory()) return TarType.Directory;
  if (st.isSymbolicLink()) return TarType.Symlink;
  if (st.isCharacterDevice()) return TarType.Char;
  if (st.isBlockDevice()) return TarType.Block;
  if (st.isFIFO()) return TarType.Fifo;
  return undefined; // sockets have no tar representation
}

function layerXattrs(all: Xattrs | undefined): Xattrs {
  const out: Xattrs = new Map();
  if (all) for (const [k, v] of all) if (!isOverlayPrivateXattr(k)) out.set(k, v);
  return out;
}

function sameXattrs(a: Xattrs, b: Xattrs): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || !w.equals(v)) return false;
  }
  return true;
}

function sameContent(a: string, b: string): boolean {
  const fa = fs.openSync(fsPath(a), 'r');
  const fb = fs.openSync(fsPath(b), 'r');
  try {
    const ba = Buffer.allocUnsafe(64 * 1024);
    const bb = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const na = fs.readSync(fa, ba, 0, ba.length, null);
      const nb = fs.readSync(fb, bb, 0, bb.length, null);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** Writes tar entries for changes; the bookkeeping (parents, hard links) of containerd's ChangeWriter. */
class ChangeWriter {
  private readonly emittedDirs = new Set<string>();
  private readonly inodeSrc = new Map<string, string>();
  private readonly inodeRefs = new Map<string, string[]>();

  constructor(
    private readonly tw: TarWriter,
    private readonly root: string,
    private readonly xattrs: Map<string, Xattrs>,
    private readonly whiteoutTime: number,
  ) {}

  private header(rel: string, st: Stat): TarHeader | undefined {
    const type = typeOf(st);
    if (type === undefined) return undefined;
    const path = `${this.root}/${rel}`;
    return makeHeader({
      name: type === TarType.Directory ? `${rel}/` : rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === TarType.File ? Number(st.size) : 0,
      // Whole seconds, as containerd writes them (sub-second times would need a PAX header per file).
      mtime: { sec: Number(st.mtimeNs / NS_PER_SEC), nsec: 0 },
      linkname: type === TarType.Symlink ? readlinkName(path) : '',
      devmajor: type === TarType.Char || type === TarType.Block ? devMajor(st.rdev) : 0,
      devminor: type === TarType.Char || type === TarType.Block ? devMinor(st.rdev) : 0,
      xattrs: layerXattrs(this.xattrs.get(path)),
    });
  }

  async change(kind: ChangeKind, rel: string, st: Stat): Promise<void> {
    const hdr = this.header(rel, st);
    if (!hdr) return;
    let additional: string[] = [];
    if (!st.isDirectory() && st.nlink > 1n) {
      const inode = `${st.dev}:${st.ino}`;
      const source = this.inodeSrc.get(inode);
      if (source !== undefined) {
        hdr.type = TarType.HardLink;
        hdr.linkname = source;
        hdr.size = 0;
      } else {
        if (kind === 'unmodified') {
          // Remember it: if another name of this inode changed, this name must link to the new data.
          const refs = this.inodeRefs.get(inode) ?? [];
          refs.push(rel);
          this.inodeRefs.set(inode, refs);
          return;
        }
        this.inodeSrc.set(inode, rel);
        additional = this.inodeRefs.get(inode) ?? [];
        this.inodeRefs.delete(inode);
      }
    } else if (kind === 'unmodified') {
      return;
    }
    await this.includeParents(rel);
    const body = hdr.type === TarType.File && hdr.size > 0 ? fs.createReadStream(fsPath(`${this.root}/${rel}`), { highWaterMark: 256 * 1024 }) : undefined;
    await this.tw.add(hdr, body);
    if (hdr.type === TarType.Directory) this.emittedDirs.add(rel);
    for (const extra of additional) {
      await this.includeParents(extra);
      await this.tw.add({ ...hdr, name: extra, type: TarType.HardLink, linkname: rel, size: 0 });
    }
  }

  async delete(rel: string): Promise<void> {
    await this.includeParents(rel);
    const i = rel.lastIndexOf('/');
    const name = i < 0 ? `${WHITEOUT_PREFIX}${rel}` : `${rel.slice(0, i + 1)}${WHITEOUT_PREFIX}${rel.slice(i + 1)}`;
    await this.tw.add({ name, type: TarType.File, mode: 0, mtime: { sec: this.whiteoutTime, nsec: 0 } });
  }

  async opaque(relDir: string): Promise<void> {
    await this.tw.add({ name: relDir === '' ? WHITEOUT_OPAQUE : `${relDir}/${WHITEOUT_OPAQUE}`, type: TarType.File, mode: 0, mtime: { sec: this.whiteoutTime, nsec: 0 } });
  }

  /** Emits the directories above `rel` that are not in the diff yet, so apply restores their metadata. */
  private async includeParents(rel: string): Promise<void> {
    const i = rel.lastIndexOf('/');
    if (i < 0) return;
    const parent = rel.slice(0, i);
    if (this.emittedDirs.has(parent)) return;
    await this.includeParents(parent);
    this.emittedDirs.add(parent);
    const hdr = this.header(parent, lstat(`${this.root}/${parent}`));
    if (hdr) await this.tw.add(hdr);
  }
}

async function withWriter(out: DiffSink, fn: (tw: TarWriter) => Promise<void>): Promise<DiffResult> {
  const hash = createHash('sha256');
  let size = 0;
  const tw = new TarWriter(async (b: Buffer) => {
    hash.update(b);
    size += b.length;
    if (typeof out === 'function') await out(b);
    else if (!out.write(b)) await drained(out);
  });
  await fn(tw);
  await tw.finish();
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * Writes the changes from `lowerRoot` to `upperRoot` as a layer tar: added and modified entries
 * in full, deletions as `.wh.<name>` whiteouts, and the directories above every change. Output
 * is deterministic: entries in byte order per directory (depth first), whole-second mtimes, no
 * user or group names, fixed whiteout times. `out` is not ended.
 *
 * A file counts as modified when its type, mode, owner, device, size, mtime or xattrs differ, or
 * (when both mtimes have no sub-second part, as on filesystems that truncate) its content does.
 */
export async function writeDiff(lowerRoot: string, upperRoot: string, out: DiffSink, options: DiffOptions = {}): Promise<DiffResult> {
  const lower = fs.realpathSync(lowerRoot);
  const upper = fs.realpathSync(upperRoot);
  const [lx, ux] = await Promise.all([readXattrs(lower, true), readXattrs(upper, true)]);
  const xattrsOf = (m: Map<string, Xattrs>, p: string) => layerXattrs(m.get(p));

  const same = (rel: string, l: Stat, u: Stat): boolean => {
    const lp = `${lower}/${rel}`;
    const up = `${upper}/${rel}`;
    if (typeOf(l) !== typeOf(u)) return false;
    if (l.mode !== u.mode || l.uid !== u.uid || l.gid !== u.gid) return false;
    if ((l.isCharacterDevice() || l.isBlockDevice()) && l.rdev !== u.rdev) return false;
    if (!sameXattrs(xattrsOf(lx, lp), xattrsOf(ux, up))) return false;
    const lsec = l.mtimeNs / NS_PER_SEC;
    const usec = u.mtimeNs / NS_PER_SEC;
    if (lsec !== usec) return false;
    if (l.isDirectory()) return true;
    if (l.size !== u.size) return false;
    if (l.isSymbolicLink()) return readlinkName(lp) === readlinkName(up);
    const lns = l.mtimeNs % NS_PER_SEC;
    const uns = u.mtimeNs % NS_PER_SEC;
    if (lns === 0n && uns === 0n) return !l.isFile() || l.size === 0n || sameContent(lp, up);
    return lns === uns;
  };

  return withWriter(out, async (tw) => {
    const cw = new ChangeWriter(tw, upper, ux, options.whiteoutTime ?? 0);

    const walkAdded = async (rel: string): Promise<void> => {
      for (const name of sortedNames(`${upper}/${rel}`)) {
        options.signal?.throwIfAborted();
        const r = `${rel}/${name}`;
        const st = lstat(`${upper}/${r}`);
        await cw.change('add', r, st);
        if (st.isDirectory()) await walkAdded(r);
      }
    };

    const walk = async (rel: string): Promise<void> => {
      const ud = rel === '' ? upper : `${upper}/${rel}`;
      const ld = rel === '' ? lower : `${lower}/${rel}`;
      const names = new Set([...sortedNames(ud), ...sortedNames(ld)]);
      for (const name of [...names].sort(compareNames)) {
        options.signal?.throwIfAborted();
        const r = rel === '' ? name : `${rel}/${name}`;
        const l = lstatOrNull(`${lower}/${r}`);
        const u = lstatOrNull(`${upper}/${r}`);
        if (!u) {
          await cw.delete(r);
        } else if (!l) {
          await cw.change('add', r, u);
          if (u.isDirectory()) await walkAdded(r);
        } else if (l.isDirectory() && u.isDirectory()) {
          if (!same(r, l, u)) await cw.change('modify', r, u);
          await walk(r);
        } else if (!same(r, l, u)) {
          await cw.change('modify', r, u);
          if (u.isDirectory()) await walkAdded(r);
        } else {
          await cw.change('unmodified', r, u);
        }
      }
    };
    await walk('');
  });
}

/**
 * Writes the layer an overlayfs upper directory holds, reading it directly (no mount, no walk
 * of the lower layers): 0:0 character devices become `.wh.<name>` whiteouts and directories
 * with `trusted.overlay.opaque=y` get a `.wh..wh..opq` entry (the root too: then the whiteouts at
 * the root are left out, the opaque entry says it all). Upper directories made with
 * `redirect_dir` or `metacopy` are refused (their content is not all in the upper).
 */
export async function writeOverlayDiff(upperDir: string, out: DiffSink, options: DiffOptions = {}): Promise<DiffResult> {
  const upper = fs.realpathSync(upperDir);
  const xattrs = await readXattrs(upper, true);
  for (const [p, attrs] of xattrs) {
    for (const k of attrs.keys()) {
      if (k === 'trusted.overlay.redirect' || k === 'trusted.overlay.metacopy') {
        throw new NotImplementedError(`overlay diff: "${p}" has ${k} (mounted with redirect_dir or metacopy)`);
      }
    }
  }
  return withWriter(out, async (tw) => {
    const cw = new ChangeWriter(tw, upper, xattrs, options.whiteoutTime ?? 0);
    const walk = async (rel: string): Promise<void> => {
      for (const name of sortedNames(rel === '' ? upper : `${upper}/${rel}`)) {
        options.signal?.throwIfAborted();
        const r = rel === '' ? name : `${rel}/${name}`;
        const path = `${upper}/${r}`;
        const st = lstat(path);
        if (st.isCharacterDevice() && st.rdev === 0n) {
          // Under an opaque root, the root's whiteouts are how apply wrote it (see applyLayer).
          if (!(rel === '' && rootOpaque)) await cw.delete(r);
          continue;
        }
        await cw.change('add', r, st);
        if (st.isDirectory()) {
          if (isOpaque(path)) await cw.opaque(r);
          await walk(r);
        }
      }
    };
    const isOpaque = (path: string) => xattrs.get(path)?.get('trusted.overlay.opaque')?.toString() === 'y';
    const rootOpaque = isOpaque(upper);
    if (rootOpaque) await cw.opaque('');
    await walk('');
  });
}
