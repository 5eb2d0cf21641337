import { UnknownError } from '@berth/errdefs';
import * as fs from 'node:fs';
import { decodeName, encodeName, hasEscapedBytes } from './byte-names';
import { ExecResult, execFile } from './exec';

/** Extended attributes of one file: name to raw value. */
export type Xattrs = Map<string, Buffer>;

const GETFATTR = '/usr/bin/getfattr';
const SETFATTR = '/usr/bin/setfattr';

/**
 * Decodes getfattr's quoting (`\ooo` octal bytes, `\\`) back to bytes. `s` holds raw bytes as
 * latin1 characters: getfattr prints names as they are, not as UTF-8.
 */
function unquoteBytes(s: string): Buffer {
  const raw = Buffer.from(s, 'latin1');
  if (!s.includes('\\')) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length + 0 && /^[0-7]{3}$/.test(raw.toString('latin1', i + 1, i + 4))) {
      bytes.push(parseInt(raw.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(raw[i]);
    }
  }
  return Buffer.from(bytes);
}

function unquote(s: string): string {
  return decodeName(unquoteBytes(s));
}

/** Quotes a path or name for setfattr's restore format; bytes that are not ASCII are quoted too, so the dump is plain ASCII. */
function quote(s: string): string {
  const raw = encodeName(s);
  let out = '';
  let plainFrom = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c < 0x20 || c >= 0x7f || c === 0x5c || c === 0x3d) {
      out += raw.toString('latin1', plainFrom, i) + '\\' + c.toString(8).padStart(3, '0');
      plainFrom = i + 1;
    }
  }
  return out + raw.toString('latin1', plainFrom);
}

/**
 * Parses `getfattr -d -e base64 --absolute-names` output into path -> attributes. Paths and
 * names are byte-exact (see {@link decodeName}).
 */
export function parseGetfattrDump(output: Buffer): Map<string, Xattrs> {
  const text = output.toString('latin1');
  const out = new Map<string, Xattrs>();
  let current: Xattrs | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      out.set(unquote(line.slice(8)), current);
      continue;
    }
    if (line === '' || !current) continue;
    const eq = line.indexOf('=');
    if (eq < 0) {
      current.set(unquote(line), Buffer.alloc(0));
      continue;
    }
    const name = unquote(line.slice(0, eq));
    const v = line.slice(eq + 1);
    let value: Buffer;
    if (v.startsWith('0s')) value = Buffer.from(v.slice(2), 'base64');
    else if (v.startsWith('0x')) value = Buffer.from(v.slice(2), 'hex');
    else if (v.startsWith('"') && v.endsWith('"')) value = unquoteBytes(v.slice(1, -1));
    else value = Buffer.from(v, 'latin1');
    current.set(name, value);
  }
  return out;
}

/**
 * Reads the extended attributes (every namespace, symlinks not followed) of `path`, or of every
 * file under it when `recursive`. Files without attributes are absent from the result.
 */
export async function readXattrs(path: string, recursive = false): Promise<Map<string, Xattrs>> {
  if (!recursive && hasEscapedBytes(path)) return readXattrsByFd(path);
  const args = ['-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names'];
  if (recursive) args.unshift('-R');
  return parseGetfattr(path, await execFile(GETFATTR, [...args, '--', path]));
}

/** Linux's O_PATH (x86 and arm): an fd that only names a file, a symlink included. */
const O_PATH = 0o10000000;

/**
 * A path that is not UTF-8 cannot be an argument: getfattr gets it as `/proc/self/fd/3`, an
 * O_PATH fd of the file itself (following that magic link lands on the file, even a symlink).
 */
async function readXattrsByFd(path: string): Promise<Map<string, Xattrs>> {
  const fd = fs.openSync(encodeName(path), O_PATH | fs.constants.O_NOFOLLOW);
  try {
    const r = await execFile(GETFATTR, ['-d', '-m', '-', '-e', 'base64', '--absolute-names', '--', '/proc/self/fd/3'], undefined, [fd]);
    const attrs = parseGetfattr(path, r).get('/proc/self/fd/3');
    return attrs ? new Map([[path, attrs]]) : new Map();
  } finally {
    fs.closeSync(fd);
  }
}

function parseGetfattr(path: string, r: ExecResult): Map<string, Xattrs> {
  const parsed = parseGetfattrDump(r.stdout);
  // getfattr exits 1 when one file has no attribute support; only fail if nothing came out.
  if (r.code !== 0 && parsed.size === 0 && r.stderr.trim() !== '' && !/Operation not supported/.test(r.stderr)) {
    throw new UnknownError(`getfattr ${path}: ${r.stderr.trim()}`);
  }
  return parsed;
}

/** Attributes that an upper directory uses for overlayfs bookkeeping, never layer content. */
export function isOverlayPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.');
}

/**
 * Collects attributes to set and applies them with one `setfattr --restore` run, instead of
 * one process per file. Symlinks are not followed.
 */
export class XattrBatch {
  private readonly entries = new Map<string, Xattrs>();

  get size(): number {
    return this.entries.size;
  }

  add(path: string, name: string, value: Buffer): void {
    let m = this.entries.get(path);
    if (!m) this.entries.set(path, (m = new Map()));
    m.set(name, value);
  }

  addAll(path: string, xattrs: Xattrs): void {
    for (const [k, v] of xattrs) this.add(path, k, v);
  }

  /** Sets everything collected. Unsupported or forbidden attributes are skipped, as containerd does. */
  async flush(): Promise<void> {
    if (this.entries.size === 0) return;
    let dump = '';
    for (const [path, attrs] of this.entries) {
      dump += `# file: ${quote(path)}\n`;
      // An empty value as `""`: setfattr refuses an empty `0s` (exit 1, no message).
      for (const [k, v] of attrs) dump += `${quote(k)}=${v.length === 0 ? '""' : `0s${v.toString('base64')}`}\n`;
      dump += '\n';
    }
    this.entries.clear();
    const r = await execFile(SETFATTR, ['-h', '--restore=-'], dump);
    if (r.code === 0) return;
    const fatal = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/Operation not supported|Operation not permitted/.test(l));
    if (fatal.length > 0 || r.stderr.trim() === '') {
      throw new UnknownError(`setting extended attributes: ${fatal.join('; ') || `setfattr exited with ${r.code}`}`);
    }
  }
}
