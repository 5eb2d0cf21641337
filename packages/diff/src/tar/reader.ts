import { Readable } from 'node:stream';
import { InvalidArgumentError, NotImplementedError } from '@berth/errdefs';
import { decodeName, encodeName } from '../byte-names';
import { BLOCK, TarHeader, TarType, isHeaderOnly, padding, parsePaxTime } from './header';

/** One archive member: its header and its data, streamed from the archive. */
export interface TarEntry {
  header: TarHeader;
  /**
   * The entry's data. Valid until the next entry is requested: asking the reader for the next
   * entry skips whatever was not read.
   */
  body: TarBody;
}

/** The data of one entry, pulled chunk by chunk from the archive (never buffered whole). */
export interface TarBody extends AsyncIterable<Buffer> {
  /** Bytes not read yet. */
  readonly remaining: number;
  /** Wraps the data in a Readable (for `pipeline`). */
  stream(): Readable;
  /** Reads the whole body into one buffer; refuses bodies larger than `limit` bytes (default 16 MiB). */
  buffer(limit?: number): Promise<Buffer>;
}

/** Options of {@link readTar}. */
export interface TarReadOptions {
  /** Largest PAX header or GNU long name/link accepted, in bytes (default 16 MiB). */
  maxMetadataSize?: number;
}

const EMPTY = Buffer.alloc(0);
const DEFAULT_MAX_METADATA = 16 << 20;

function unexpectedEof(): Error {
  return new InvalidArgumentError('tar: unexpected end of archive (truncated layer)');
}

/** Pulls bytes from an async source, handing out views of its chunks without copying. */
class ByteSource {
  private chunk: Buffer = EMPTY;
  private off = 0;
  private done = false;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    while (this.off >= this.chunk.length) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const v = r.value;
      this.chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.off = 0;
    }
    return true;
  }

  /** Reads exactly n bytes; null when the source ended before the first byte. */
  async readExact(n: number): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    if (this.chunk.length - this.off >= n) {
      const b = this.chunk.subarray(this.off, this.off + n);
      this.off += n;
      return b;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) throw unexpectedEof();
      const take = Math.min(n - got, this.chunk.length - this.off);
      this.chunk.copy(out, got, this.off, this.off + take);
      this.off += take;
      got += take;
    }
    return out;
  }

  /** Returns the next 1..n bytes; throws at the end of the source. */
  async take(n: number): Promise<Buffer> {
    if (!(await this.fill())) throw unexpectedEof();
    const take = Math.min(n, this.chunk.length - this.off);
    const b = this.chunk.subarray(this.off, this.off + take);
    this.off += take;
    return b;
  }

  async skip(n: number): Promise<void> {
    while (n > 0) n -= (await this.take(n)).length;
  }
}

class Body implements TarBody {
  private pad: number;
  private iterating = false;

  constructor(private readonly src: ByteSource, public remaining: number) {
    this.pad = padding(remaining);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.iterating) throw new Error('tar: entry body is already being read');
    this.iterating = true;
    try {
      while (this.remaining > 0) {
        const b = await this.src.take(this.remaining);
        this.remaining -= b.length;
        yield b;
      }
    } finally {
      this.iterating = false;
    }
  }

  stream(): Readable {
    return Readable.from(this, { objectMode: false });
  }

  async buffer(limit = DEFAULT_MAX_METADATA): Promise<Buffer> {
    if (this.remaining > limit) throw new InvalidArgumentError(`tar: entry of ${this.remaining} bytes exceeds the ${limit} byte limit`);
    const parts: Buffer[] = [];
    for await (const b of this) parts.push(b);
    return Buffer.concat(parts);
  }

  /** Skips what is left of the data and the block padding. */
  async finish(): Promise<void> {
    if (this.remaining > 0) {
      await this.src.skip(this.remaining);
      this.remaining = 0;
    }
    if (this.pad > 0) {
      await this.src.skip(this.pad);
      this.pad = 0;
    }
  }
}

/**
 * Reads a tar archive as a stream of entries: ustar, PAX (extended and global headers), GNU
 * (long names and links, base-256 numbers) and old v7 archives. Stops at the end-of-archive
 * block; bytes after it are left unread in `source`.
 */
export async function* readTar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: TarReadOptions = {}): AsyncGenerator<TarEntry, void, undefined> {
  const maxMeta = options.maxMetadataSize ?? DEFAULT_MAX_METADATA;
  const src = new ByteSource(
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (async function* () { yield* source; })(),
  );
  const globals = new Map<string, Buffer>();
  let local: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let body: Body | undefined;

  const readMeta = async (size: number, what: string): Promise<Buffer> => {
    if (size > maxMeta) throw new InvalidArgumentError(`tar: ${what} of ${size} bytes exceeds the ${maxMeta} byte limit`);
    const b = new Body(src, size);
    const data = await b.buffer(maxMeta);
    await b.finish();
    return data;
  };

  for (;;) {
    if (body) {
      await body.finish();
      body = undefined;
    }
    const block = await src.readExact(BLOCK);
    if (block === null) return; // a bare end of stream at a block boundary ends the archive
    if (isZeroBlock(block)) return;
    const raw = parseRawHeader(block);

    switch (raw.type) {
      case TarType.PaxHeader:
        local = parsePaxRecords(await readMeta(raw.size, 'PAX header'));
        continue;
      case TarType.PaxGlobal:
        for (const [k, v] of parsePaxRecords(await readMeta(raw.size, 'PAX global header'))) globals.set(k, v);
        continue;
      case TarType.GnuLongName:
        longName = cString(await readMeta(raw.size, 'GNU long name'));
        continue;
      case TarType.GnuLongLink:
        longLink = cString(await readMeta(raw.size, 'GNU long link'));
        continue;
    }

    const header = raw.header;
    if (longName !== undefined) header.name = longName;
    if (longLink !== undefined) header.linkname = longLink;
    if (globals.size > 0) applyPax(header, globals);
    if (local) applyPax(header, local);
    local = longName = longLink = undefined;
    if (header.type === '\0' || header.type === '') header.type = header.name.endsWith('/') ? TarType.Directory : TarType.File;
    if (!Number.isSafeInteger(header.size) || header.size < 0) throw new InvalidArgumentError(`tar: invalid size for "${header.name}"`);
    const dataSize = isHeaderOnly(header.type) ? 0 : header.size;
    if (isHeaderOnly(header.type)) header.size = 0;

    body = new Body(src, dataSize);
    yield { header, body };
  }
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function cString(b: Buffer, start = 0, end = b.length): string {
  let e = b.indexOf(0, start);
  if (e < 0 || e > end) e = end;
  return decodeName(b, start, e);
}

/** Parses an octal or base-256 (GNU) numeric field. */
export function parseNumeric(b: Buffer, start: number, end: number): number {
  const first = b[start];
  if (first & 0x80) {
    // Base-256: big-endian two's complement with the marker bit; 0x80 positive, 0xff negative.
    let v = BigInt(first & 0x7f);
    const negative = first === 0xff;
    if (negative) v = BigInt(first);
    for (let i = start + 1; i < end; i++) v = (v << 8n) | BigInt(b[i]);
    if (negative) v -= 1n << BigInt(8 * (end - start));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new InvalidArgumentError('tar: numeric field out of range');
    }
    return Number(v);
  }
  let i = start;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw new InvalidArgumentError('tar: invalid octal number in header');
    v = v * 8 + (c - 0x30);
  }
  return v;
}

interface RawHeader {
  type: string;
  size: number;
  header: TarHeader;
}

function parseRawHeader(b: Buffer): RawHeader {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  const stored = parseNumeric(b, 148, 156);
  if (stored !== unsigned && stored !== signed) throw new InvalidArgumentError('tar: invalid header checksum (not a tar archive?)');

  const magic = b.toString('latin1', 257, 263);
  const posix = magic === 'ustar\0';
  let name = cString(b, 0, 100);
  if (posix && b[345] !== 0) name = `${cString(b, 345, 500)}/${name}`;
  const type = String.fromCharCode(b[156]);
  const size = parseNumeric(b, 124, 136);
  const ustar = posix || magic === 'ustar ';
  const header: TarHeader = {
    name,
    type,
    mode: parseNumeric(b, 100, 108) & 0o7777,
    uid: ownerId('uid', parseNumeric(b, 108, 116)),
    gid: ownerId('gid', parseNumeric(b, 116, 124)),
    size,
    mtime: { sec: parseNumeric(b, 136, 148), nsec: 0 },
    linkname: cString(b, 157, 257),
    uname: ustar ? cString(b, 265, 297) : '',
    gname: ustar ? cString(b, 297, 329) : '',
    devmajor: ustar ? parseNumeric(b, 329, 337) : 0,
    devminor: ustar ? parseNumeric(b, 337, 345) : 0,
    xattrs: new Map(),
    pax: new Map(),
  };
  return { type, size, header };
}

/** Parses the records of a PAX header ("<len> <key>=<value>\n"); values stay raw bytes. */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    if (buf[off] === 0) break; // some writers pad with NULs
    const sp = buf.indexOf(0x20, off);
    const len = sp > off ? Number(buf.toString('latin1', off, sp)) : NaN;
    if (!Number.isSafeInteger(len) || len <= sp - off || off + len > buf.length || buf[off + len - 1] !== 0x0a) {
      throw new InvalidArgumentError('tar: malformed PAX record');
    }
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= off + len) throw new InvalidArgumentError('tar: malformed PAX record');
    out.set(decodeName(buf, sp + 1, eq), buf.subarray(eq + 1, off + len - 1));
    off += len;
  }
  return out;
}

const XATTR_SCHILY = 'SCHILY.xattr.';
const XATTR_LIBARCHIVE = 'LIBARCHIVE.xattr.';

/** A uid or gid as Linux takes it (32 bits); a damaged header's larger value is refused. */
function ownerId(key: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidArgumentError(`tar: ${key} ${n} is out of range`);
  return n;
}

function paxInt(key: string, v: Buffer): number {
  const s = v.toString('latin1');
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new InvalidArgumentError(`tar: invalid PAX ${key} "${s}"`);
  return Number(s);
}

function paxTime(key: string, v: Buffer) {
  const t = parsePaxTime(v.toString('latin1'));
  if (!t) throw new InvalidArgumentError(`tar: invalid PAX ${key} "${v.toString('latin1')}"`);
  return t;
}

function applyPax(h: TarHeader, records: Map<string, Buffer>): void {
  for (const [key, v] of records) {
    // An empty value removes the field (it undoes a global record for this entry).
    const empty = v.length === 0;
    switch (key) {
      case 'path':
        if (!empty) h.name = decodeName(v);
        break;
      case 'linkpath':
        if (!empty) h.linkname = decodeName(v);
        break;
      case 'size':
        if (!empty) h.size = paxInt(key, v);
        break;
      case 'uid':
        if (!empty) h.uid = ownerId(key, paxInt(key, v));
        break;
      case 'gid':
        if (!empty) h.gid = ownerId(key, paxInt(key, v));
        break;
      case 'uname':
        h.uname = decodeName(v);
        break;
      case 'gname':
        h.gname = decodeName(v);
        break;
      case 'mtime':
        if (!empty) h.mtime = paxTime(key, v);
        break;
      case 'atime':
        h.atime = empty ? undefined : paxTime(key, v);
        break;
      case 'ctime':
        h.ctime = empty ? undefined : paxTime(key, v);
        break;
      case 'SCHILY.devmajor':
        if (!empty) h.devmajor = paxInt(key, v);
        break;
      case 'SCHILY.devminor':
        if (!empty) h.devminor = paxInt(key, v);
        break;
      default:
        if (key.startsWith(XATTR_SCHILY)) {
          const name = key.slice(XATTR_SCHILY.length);
          h.xattrs.set(name, Buffer.from(v)); // an empty value is a valid (empty) attribute
        } else if (key.startsWith(XATTR_LIBARCHIVE)) {
          h.xattrs.set(libarchiveXattrName(key.slice(XATTR_LIBARCHIVE.length)), Buffer.from(v.toString('latin1'), 'base64'));
        } else if (key.startsWith('GNU.sparse.')) {
          throw new NotImplementedError(`tar: GNU sparse files are not supported ("${h.name}")`);
        } else if (empty) {
          h.pax.delete(key);
        } else {
          h.pax.set(key, decodeName(v));
        }
    }
  }
}

/** Decodes the URL-encoded attribute name of a `LIBARCHIVE.xattr.<name>` record, as bytes. */
function libarchiveXattrName(encoded: string): string {
  const bytes = encodeName(encoded);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x25) {
      out.push(bytes[i]);
      continue;
    }
    const hex = bytes.toString('latin1', i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new InvalidArgumentError(`tar: malformed PAX record "LIBARCHIVE.xattr.${encoded}"`);
    out.push(parseInt(hex, 16));
    i += 2;
  }
  if (out.length === 0) throw new InvalidArgumentError('tar: PAX record "LIBARCHIVE.xattr." names no attribute');
  return decodeName(Buffer.from(out));
}
