import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { FailedPreconditionError, InvalidArgumentError, wrap } from '@berth/errdefs';
import { compressionOfMediaType, decompress } from './compression';
import { execFile } from './exec';
import { encodeName, fsPath, hasEscapedBytes, readdirNames } from './byte-names';
import { RootResolver, confinedComponents } from './root-path';
import { TarEntry, TarHeader, TarTime, TarType, readTar } from './tar';
import { XattrBatch, isOverlayPrivateXattr, readXattrs } from './xattr';

/** Options of {@link applyLayer}. */
export interface ApplyOptions {
  /**
   * Layer media type. Validated (a non-layer type fails with NotImplemented); the compression
   * itself is detected from the stream's first bytes, as containerd does. Default: detect only.
   */
  mediaType?: string;
  /** Expected digest of the uncompressed tar (the diff ID); a mismatch fails with FailedPrecondition. */
  expectedDiffId?: string;
  /**
   * Apply into an overlayfs upper directory: whiteouts become overlay whiteouts (0:0 character
   * devices) and opaque directories get `trusted.overlay.opaque=y`, so the layer can be applied
   * without mounting the chain below it. Default false (plain directory: whiteouts delete).
   *
   * overlayfs ignores `trusted.overlay.opaque` on a layer's root directory, so an opaque
   * whiteout at the layer's root (`.wh..wh..opq`) is written as what it means: a whiteout for
   * every name at the root of `parents` that the layer does not write itself, and the opaque
   * attribute on every directory there that a parent has too. The root gets the attribute as
   * well, so the layer's diff gives the opaque entry back.
   */
  overlay?: boolean;
  /**
   * The lower directories of the overlay, highest first. Used for directories the layer creates
   * implicitly (their mode, owner, times and xattrs are copied from the first lower that has
   * them, so the upper does not hide them behind a 0755 root-owned copy) and to copy up a file
   * a hard link in the layer points at.
   */
  parents?: string[];
  /** Do not chown entries to the archive's uid/gid (default false). */
  noSameOwner?: boolean;
  signal?: AbortSignal;
}

/** What {@link applyLayer} returns: the uncompressed tar's digest (the diff ID) and size. */
export interface ApplyResult {
  digest: string;
  size: number;
  /**
   * What in the result depended on the layers below: directories created implicitly (their
   * attributes come from `parents`), whiteouts or opaque directories written, and whether the
   * layer's root is opaque (in overlay mode, what hides the parents' names is derived from them).
   */
  dependsOnParents: { implicitDirs: number; whiteouts: number; opaqueRoot: boolean };
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const MKNOD = '/usr/bin/mknod';
/**
 * File system errors that an entry's content causes (a hard link to nothing, a name too long, a
 * parent that is a file...): the layer is bad input. Others (no space, I/O) are the host's.
 */
const LAYER_ERRNOS = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EINVAL', 'EMLINK', 'EPERM', 'ENOTEMPTY']);
const O_CREATE_NEW = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * Applies a layer (a gzip, zstd or plain tar stream) onto the directory `root`, with OCI layer
 * semantics, and returns the digest and size of the uncompressed tar.
 *
 * Nothing is written outside `root`, and a layer that tries is refused with InvalidArgument
 * rather than quietly redirected: entry names and hard-link targets must be relative and stay
 * inside (no leading '/', no `..` above the root), and a symlink may be followed to reach an
 * entry's parent only if it stays inside too (no absolute target, no `..` above the root; see
 * {@link resolveInRoot}). The entry itself is never followed: a symlink there is replaced.
 *
 * The stream is read to its end (bytes after the tar's end-of-archive marker count towards the
 * digest, as in containerd). On failure the root may hold part of the layer; callers apply into
 * a fresh snapshot and discard it.
 */
export async function applyLayer(root: string, stream: AsyncIterable<Uint8Array>, options: ApplyOptions = {}): Promise<ApplyResult> {
  if (options.mediaType !== undefined) compressionOfMediaType(options.mediaType);
  const realRoot = fs.realpathSync(root);
  if (!fs.statSync(realRoot).isDirectory()) throw new InvalidArgumentError(`apply: "${root}" is not a directory`);

  const hash = createHash('sha256');
  const counter = { size: 0 };
  const tarStream = hashing(decompress(stream), hash, counter);
  const applier = new LayerApplier(realRoot, options);
  try {
    for await (const entry of readTar(tarStream)) {
      options.signal?.throwIfAborted();
      await applier.apply(entry);
    }
    // Trailing bytes after the end-of-archive blocks are part of the diff ID.
    for await (const _ of tarStream) options.signal?.throwIfAborted();
    await applier.finish();
  } finally {
    await tarStream.return(undefined);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (options.expectedDiffId !== undefined && options.expectedDiffId !== digest) {
    throw new FailedPreconditionError(`wrong diff id calculated on extraction "${digest}", expected "${options.expectedDiffId}"`);
  }
  return { digest, size: counter.size, dependsOnParents: { implicitDirs: applier.implicitDirs, whiteouts: applier.whiteouts, opaqueRoot: applier.opaqueRoot } };
}

async function* hashing(src: AsyncGenerator<Buffer>, hash: Hash, counter: { size: number }): AsyncGenerator<Buffer, void, undefined> {
  try {
    for await (const c of src) {
      hash.update(c);
      counter.size += c.length;
      yield c;
    }
  } finally {
    await src.return(undefined);
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    // No exception for the common "not there yet": building one costs more than the syscall.
    return fs.lstatSync(fsPath(p), { throwIfNoEntry: false }) ?? null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * Removes a file or a whole tree, if there. Iterative: node's recursive rmSync overflows the
 * stack on a tree some 2,000 directories deep, which a layer can hold.
 */
function removeTree(path: string): void {
  const todo: Array<string | Buffer> = [fsPath(path)];
  while (todo.length > 0) {
    const p = todo[todo.length - 1];
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) {
      todo.pop();
    } else if (!st.isDirectory()) {
      fs.unlinkSync(p);
      todo.pop();
    } else {
      const names = fs.readdirSync(p, { encoding: 'buffer' });
      if (names.length === 0) {
        fs.rmdirSync(p);
        todo.pop();
      } else {
        const prefix = Buffer.concat([Buffer.from(p), Buffer.from('/')]);
        for (const name of names) todo.push(Buffer.concat([prefix, name]));
      }
    }
  }
}

/** Seconds as node's time APIs take them; times before the epoch become the epoch (containerd's boundTime). */
function seconds(t: TarTime): number {
  if (t.sec < 0) return 0;
  return t.sec + t.nsec / 1e9;
}

function later(a: TarTime | undefined, b: TarTime): TarTime {
  if (!a) return b;
  return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec) ? a : b;
}

interface DirTimes {
  path: string;
  atime: number;
  mtime: number;
}

/** Applies entries one by one; file system calls are synchronous (no thread-pool hop per syscall). */
class LayerApplier {
  private readonly unpacked = new Set<string>();
  private readonly dirTimes: DirTimes[] = [];
  private readonly xattrs = new XattrBatch();
  /** Parent paths named in the layer -> host paths. Invalidated whenever the tree's symlinks may change. */
  private readonly resolver: RootResolver;
  /** The same for each lower directory (they do not change while the layer is applied). */
  private readonly lowerResolvers: RootResolver[];
  /** Directories known to exist; cleared when the resolver is invalidated by a removal. */
  private readonly knownDirs = new Set<string>();
  /**
   * Directories this apply created (or found empty): a name in them exists only if this layer
   * wrote it, so no lstat is needed before creating it. Cleared whenever something is removed.
   */
  private readonly freshDirs = new Set<string>();
  private readonly overlay: boolean;
  private tempNodes = 0;
  implicitDirs = 0;
  opaqueRoot = false;
  whiteouts = 0;

  constructor(private readonly root: string, private readonly options: ApplyOptions) {
    this.overlay = options.overlay ?? false;
    this.resolver = new RootResolver(root, { confine: true });
    this.lowerResolvers = (options.parents ?? []).map((lower) => new RootResolver(lower));
    if (fs.readdirSync(root).length === 0) this.freshDirs.add(root);
    this.knownDirs.add(root);
  }

  async apply(entry: TarEntry): Promise<void> {
    const h = entry.header;
    try {
      await this.applyEntry(h, entry);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && LAYER_ERRNOS.has(code)) {
        throw new InvalidArgumentError(`apply layer entry "${h.name}": ${(err as Error).message}`, { cause: err });
      }
      throw wrap(err, `apply layer entry "${h.name}"`);
    }
  }

  async finish(): Promise<void> {
    if (this.overlay && this.opaqueRoot) await this.hideParentsAtRoot();
    await this.xattrs.flush();
    // Directory times last: creating their children changed them.
    for (const d of this.dirTimes) fs.lutimesSync(fsPath(d.path), d.atime, d.mtime);
  }

  /** Where a parent directory named in the layer is on the host: symlinks followed inside the root, refused if they lead out. */
  private resolveParent(rel: string): string {
    return this.resolver.resolve(rel);
  }

  private async applyEntry(h: TarHeader, entry: TarEntry): Promise<void> {
    const parts = confinedComponents(h.name, 'entry');
    if (parts.length === 0) return; // the root itself: containerd ignores its entry
    const base = parts.pop()!;
    const parent = this.resolveParent(parts.join('/'));
    const path = `${parent}/${base}`;
    if (parent !== this.root) await this.mkparent(parent);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      await this.whiteout(h, parent, base);
      return;
    }

    const surelyNew = this.freshDirs.has(parent) && !this.unpacked.has(path) && !this.knownDirs.has(path);
    let existing = surelyNew ? null : lstatOrNull(path);
    if (existing && !(existing.isDirectory() && h.type === TarType.Directory)) {
      await this.remove(path);
      existing = null;
    }

    switch (h.type) {
      case TarType.Directory:
        if (!existing) {
          fs.mkdirSync(fsPath(path), 0o700);
          this.freshDirs.add(path);
        }
        this.knownDirs.add(path);
        this.chown(path, h);
        fs.chmodSync(fsPath(path), h.mode);
        this.dirTimes.push({ path, atime: seconds(later(h.atime, h.mtime)), mtime: seconds(h.mtime) });
        break;
      case TarType.File:
      case TarType.Contiguous:
        await this.writeFile(path, h, entry);
        break;
      case TarType.Symlink:
        fs.symlinkSync(fsPath(h.linkname), fsPath(path));
        this.resolver.invalidate();
        this.chown(path, h);
        fs.lutimesSync(fsPath(path), seconds(later(h.atime, h.mtime)), seconds(h.mtime));
        break;
      case TarType.HardLink:
        await this.hardLink(path, h);
        break;
      case TarType.Char:
      case TarType.Block:
      case TarType.Fifo:
        await this.mknod(path, h);
        this.chown(path, h);
        fs.chmodSync(fsPath(path), h.mode);
        fs.lutimesSync(fsPath(path), seconds(later(h.atime, h.mtime)), seconds(h.mtime));
        break;
      default:
        throw new InvalidArgumentError(`unhandled tar header type "${h.type}"`);
    }
    this.addXattrs(path, h);
    this.unpacked.add(path);
  }

  private chown(path: string, h: TarHeader): void {
    if (!this.options.noSameOwner) fs.lchownSync(fsPath(path), h.uid, h.gid);
  }

  private addXattrs(path: string, h: TarHeader): void {
    for (const [k, v] of h.xattrs) {
      // overlayfs bookkeeping (opaque, redirect, metacopy) is never taken from layer content.
      if (!isOverlayPrivateXattr(k)) this.xattrs.add(path, k, v);
    }
  }

  private async writeFile(path: string, h: TarHeader, entry: TarEntry): Promise<void> {
    const fd = fs.openSync(fsPath(path), O_CREATE_NEW, 0o600);
    try {
      for await (const chunk of entry.body) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
      }
      if (!this.options.noSameOwner) fs.fchownSync(fd, h.uid, h.gid);
      fs.fchmodSync(fd, h.mode); // after chown, which clears setuid/setgid
      fs.futimesSync(fd, seconds(later(h.atime, h.mtime)), seconds(h.mtime));
    } finally {
      fs.closeSync(fd);
    }
  }

  private async hardLink(path: string, h: TarHeader): Promise<void> {
    const parts = confinedComponents(h.linkname, 'hard link target');
    if (parts.length === 0) throw new InvalidArgumentError(`invalid hard link target "${h.linkname}"`);
    const base = parts.pop()!;
    const targetParent = this.resolveParent(parts.join('/'));
    const target = `${targetParent}/${base}`;
    if (!lstatOrNull(target) && this.overlay) await this.copyUp(target);
    fs.linkSync(fsPath(target), fsPath(path));
    // A link to a symlink is a symlink: resolutions through `path` change.
    this.resolver.invalidate();
    // The inode's owner, mode and times are the target's: re-applying the link header's values
    // (containerd chowns and re-times the link) would clear setuid bits on a hard-linked binary.
  }

  /** Copies a hard link's target from the lower layers into the upper directory, as overlayfs would. */
  private async copyUp(target: string): Promise<void> {
    const rel = target.slice(this.root.length + 1);
    const relParts = rel.split('/');
    const base = relParts.pop()!;
    for (const lower of this.lowerResolvers) {
      const lowerPath = `${lower.resolve(relParts.join('/'))}/${base}`;
      const st = lstatOrNull(lowerPath);
      if (!st) continue;
      if (st.isDirectory()) break;
      const parent = target.slice(0, target.length - base.length - 1);
      if (parent !== this.root) await this.mkparent(parent);
      if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(fsPath(lowerPath), { encoding: 'buffer' }), fsPath(target));
      else if (st.isFile()) fs.copyFileSync(fsPath(lowerPath), fsPath(target));
      else break;
      fs.lchownSync(fsPath(target), st.uid, st.gid);
      if (!st.isSymbolicLink()) fs.chmodSync(fsPath(target), st.mode & 0o7777);
      fs.lutimesSync(fsPath(target), st.atime, st.mtime);
      const attrs = (await readXattrs(lowerPath)).get(lowerPath);
      if (attrs) for (const [k, v] of attrs) if (!isOverlayPrivateXattr(k)) this.xattrs.add(target, k, v);
      this.unpacked.add(target);
      return;
    }
  }

  private async mknod(path: string, h: TarHeader): Promise<void> {
    const kind = h.type === TarType.Fifo ? ['p'] : [h.type === TarType.Char ? 'c' : 'b', String(h.devmajor), String(h.devminor)];
    await this.runMknod(path, (h.mode & 0o7777).toString(8), kind, 'mknod');
  }

  /**
   * Runs mknod for `path`. A path that is not UTF-8 cannot be an argument: the node is made
   * under a plain temporary name in the root and renamed into place (same file system).
   */
  private async runMknod(path: string, mode: string, kind: string[], what: string): Promise<void> {
    const direct = !hasEscapedBytes(path);
    const at = direct ? path : `${this.root}/.berth-mknod-${process.pid}-${++this.tempNodes}`;
    const r = await execFile(MKNOD, ['-m', mode, at, ...kind]);
    if (r.code !== 0) throw new InvalidArgumentError(`${what} "${path}": ${r.stderr.trim()}`);
    if (direct) return;
    try {
      fs.renameSync(at, encodeName(path));
    } catch (err) {
      fs.rmSync(at, { force: true });
      throw err;
    }
  }

  /**
   * The opaque root in overlay mode: every name at the root of a parent is hidden, by a
   * whiteout where the layer has nothing of that name and by the opaque attribute on a
   * directory the layer has there (a directory would otherwise merge with the parent's).
   */
  private async hideParentsAtRoot(): Promise<void> {
    const names = new Set<string>();
    for (const lower of this.options.parents ?? []) for (const name of readdirNames(lower)) names.add(name);
    for (const name of names) {
      const path = `${this.root}/${name}`;
      const st = lstatOrNull(path);
      if (!st) await this.runMknod(path, '0', ['c', '0', '0'], 'creating overlay whiteout');
      else if (st.isDirectory()) this.xattrs.add(path, 'trusted.overlay.opaque', Buffer.from('y'));
    }
  }

  private async remove(path: string): Promise<void> {
    // Pending attributes may name paths under the one about to go.
    if (this.xattrs.size > 0) await this.xattrs.flush();
    removeTree(path);
    this.forget();
  }

  /** Drops what was cached about the tree after a removal. */
  private forget(): void {
    this.resolver.invalidate();
    this.knownDirs.clear();
    this.knownDirs.add(this.root);
    this.freshDirs.clear();
  }

  private async whiteout(h: TarHeader, dir: string, base: string): Promise<void> {
    this.whiteouts++;
    if (base === WHITEOUT_OPAQUE) {
      if (!lstatOrNull(dir)) throw new InvalidArgumentError(`opaque whiteout for missing directory "${dir}"`);
      if (dir === this.root) this.opaqueRoot = true;
      if (this.overlay) {
        this.xattrs.add(dir, 'trusted.overlay.opaque', Buffer.from('y'));
      } else {
        if (this.xattrs.size > 0) await this.xattrs.flush();
        this.removeNotUnpacked(dir);
        this.forget();
      }
      return;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw new InvalidArgumentError(`invalid whiteout name: ${base}`);
    const original = `${dir}/${name}`;
    if (this.overlay) {
      if (lstatOrNull(original)) await this.remove(original);
      await this.runMknod(original, '0', ['c', '0', '0'], 'creating overlay whiteout');
      if (!this.options.noSameOwner) fs.lchownSync(fsPath(original), h.uid, h.gid);
      this.unpacked.add(original);
    } else if (lstatOrNull(original)) {
      await this.remove(original);
    }
  }

  /** Opaque directory, plain mode: everything below `dir` that this layer did not write goes. */
  private removeNotUnpacked(dir: string): void {
    for (const name of readdirNames(dir)) {
      const p = `${dir}/${name}`;
      if (!this.unpacked.has(p)) removeTree(p);
      else if (fs.lstatSync(fsPath(p)).isDirectory()) this.removeNotUnpacked(p);
    }
  }

  /**
   * Creates a missing parent directory (and its missing parents) under root, 0755 root-owned,
   * or with the attributes of the same directory in the first lower layer that has it.
   */
  private async mkparent(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const st = lstatOrNull(dir);
    if (st) {
      if (!st.isDirectory()) throw new InvalidArgumentError(`parent "${dir}" is not a directory`);
      this.knownDirs.add(dir);
      return;
    }
    const up = dir.slice(0, dir.lastIndexOf('/'));
    if (up.length > this.root.length) await this.mkparent(up);
    fs.mkdirSync(fsPath(dir), 0o755);
    this.implicitDirs++;
    this.knownDirs.add(dir);
    this.freshDirs.add(dir);
    const rel = dir.slice(this.root.length + 1);
    for (const lower of this.lowerResolvers) {
      const lowerPath = lower.resolve(rel);
      const lst = lstatOrNull(lowerPath);
      if (!lst) continue;
      if (!lst.isDirectory()) break; // replaced in a lower layer: keep the defaults
      fs.lchownSync(fsPath(dir), lst.uid, lst.gid);
      fs.chmodSync(fsPath(dir), lst.mode & 0o7777);
      // Times are not restored: adding children changes them, as applying to a plain directory does.
      const attrs = (await readXattrs(lowerPath)).get(lowerPath);
      if (attrs) for (const [k, v] of attrs) if (!isOverlayPrivateXattr(k)) this.xattrs.add(dir, k, v);
      return;
    }
  }
}
