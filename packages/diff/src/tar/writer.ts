import type { Writable } from 'node:stream';
import { InvalidArgumentError } from '@berth/errdefs';
import { encodeName } from '../byte-names';
import { BLOCK, TarHeader, TarHeaderInit, TarType, formatPaxTime, isHeaderOnly, makeHeader, padding } from './header';

/**
 * Output flavour. `pax` (default): ustar headers, plus a PAX extended header for whatever ustar
 * cannot hold (long or non-ASCII names, big numbers, sub-second times, xattrs). `gnu`: GNU long
 * name/link entries and base-256 numbers; cannot carry xattrs or sub-second times.
 */
export type TarFormat = 'pax' | 'gnu';

/** Where a {@link TarWriter} sends its bytes: a Writable (backpressure honoured) or a function. */
export type TarSink = Writable | ((chunk: Buffer) => void | Promise<void>);

/** Options of {@link TarWriter}. */
export interface TarWriteOptions {
  format?: TarFormat;
}

const ZERO_BLOCKS = Buffer.alloc(2 * BLOCK);
const COALESCE = 64 * 1024;

/** Writes a tar archive entry by entry, streaming entry data. */
export class TarWriter {
  private readonly format: TarFormat;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;
  private finished = false;

  constructor(private readonly sink: TarSink, options: TarWriteOptions = {}) {
    this.format = options.format ?? 'pax';
  }

  /** Bytes handed to the sink so far (and buffered for it). */
  get bytesWritten(): number {
    return this.written;
  }

  /**
   * Appends one entry. `body` must hold exactly `header.size` bytes for files; it is ignored
   * (and must be absent or empty) for links, directories and devices.
   */
  async add(init: TarHeaderInit | TarHeader, body?: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    if (this.finished) throw new Error('tar: writer already finished');
    const h = makeHeader(init);
    if (isHeaderOnly(h.type)) h.size = 0;
    await this.put(encodeHeader(h, this.format));
    let n = 0;
    if (body !== undefined && h.size > 0) {
      if (body instanceof Uint8Array) {
        n = body.length;
        if (n !== h.size) throw sizeMismatch(h, n);
        await this.put(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      } else {
        for await (const c of body) {
          n += c.length;
          if (n > h.size) throw sizeMismatch(h, n);
          await this.put(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
        }
      }
    }
    if (n !== h.size) throw sizeMismatch(h, n);
    const pad = padding(h.size);
    if (pad > 0) await this.put(ZERO_BLOCKS.subarray(0, pad));
  }

  /** Writes the end-of-archive marker (two zero blocks) and flushes. Does not end the sink. */
  async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.put(ZERO_BLOCKS);
    await this.flush();
  }

  private async put(b: Buffer): Promise<void> {
    this.written += b.length;
    if (b.length >= COALESCE) {
      await this.flush();
      await this.emit(b);
      return;
    }
    // Copy: callers may reuse their buffers once add() moves on.
    this.pending.push(Buffer.from(b));
    this.pendingBytes += b.length;
    if (this.pendingBytes >= COALESCE) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const b = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.emit(b);
  }

  private async emit(b: Buffer): Promise<void> {
    const sink = this.sink;
    if (typeof sink === 'function') {
      await sink(b);
      return;
    }
    if (!sink.write(b)) await drained(sink);
  }
}

function sizeMismatch(h: TarHeader, n: number): Error {
  return new InvalidArgumentError(`tar: entry "${h.name}" declared ${h.size} bytes but its body had ${n === h.size ? 'more' : n}`);
}

/** Resolves when a Writable asks for more data; rejects if it fails or closes first. */
export function drained(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      w.off('drain', onDrain);
      w.off('error', onError);
      w.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error('tar: output closed before the archive was written'));
    w.once('drain', onDrain);
    w.once('error', onError);
    w.once('close', onClose);
  });
}

const OCTAL_LIMIT = (width: number) => 8 ** (width - 1);

function fitsOctal(v: number, width: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < OCTAL_LIMIT(width);
}

function isPortable(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] === 0 || b[i] >= 0x80) return false;
  return true;
}

/** Splits a ustar path into prefix (<=155 bytes) and name (<=100 bytes) at a '/', if possible. */
function splitUstar(name: Buffer): [Buffer, Buffer] | undefined {
  if (name.length <= 100) return [Buffer.alloc(0), name];
  for (let i = Math.min(name.length - 1, 155); i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    if (name.length - i - 1 > 100) return undefined;
    if (name.length - i - 1 === 0) return undefined;
    return [name.subarray(0, i), name.subarray(i + 1)];
  }
  return undefined;
}

function putString(b: Buffer, off: number, width: number, s: Buffer): void {
  s.copy(b, off, 0, Math.min(s.length, width));
}

function putNumeric(b: Buffer, off: number, width: number, v: number, allowBase256: boolean): void {
  if (fitsOctal(v, width)) {
    b.write(v.toString(8).padStart(width - 1, '0'), off, 'latin1');
    b[off + width - 1] = 0;
    return;
  }
  if (!allowBase256) {
    // PAX carries the true value; keep the ustar field in range.
    putNumeric(b, off, width, v < 0 ? 0 : OCTAL_LIMIT(width) - 1, false);
    return;
  }
  let x = BigInt(v);
  if (x < 0n) x += 1n << BigInt(8 * width);
  for (let i = width - 1; i >= 0; i--) {
    b[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  b[off] |= 0x80; // 0x80 for positive numbers; negative ones already start with 0xff
}

interface BlockFields {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: Buffer;
  uname: Buffer;
  gname: Buffer;
  devmajor: number;
  devminor: number;
}

function headerBlock(f: BlockFields, gnu: boolean): Buffer {
  const b = Buffer.alloc(BLOCK);
  putString(b, 0, 100, f.name);
  putNumeric(b, 100, 8, f.mode & 0o7777, gnu);
  putNumeric(b, 108, 8, f.uid, gnu);
  putNumeric(b, 116, 8, f.gid, gnu);
  putNumeric(b, 124, 12, f.size, gnu);
  putNumeric(b, 136, 12, f.mtime, gnu);
  b.write(f.type, 156, 'latin1');
  putString(b, 157, 100, f.linkname);
  b.write(gnu ? 'ustar  \0' : 'ustar\u000000', 257, 'latin1');
  putString(b, 265, 32, f.uname);
  putString(b, 297, 32, f.gname);
  if (f.type === TarType.Char || f.type === TarType.Block) {
    putNumeric(b, 329, 8, f.devmajor, gnu);
    putNumeric(b, 337, 8, f.devminor, gnu);
  }
  if (!gnu) putString(b, 345, 155, f.prefix);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0'), 148, 'latin1');
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(' ', 'latin1'), encodeName(key), Buffer.from('=', 'latin1'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function dataBlocks(data: Buffer): Buffer {
  const out = Buffer.alloc(data.length + padding(data.length));
  data.copy(out);
  return out;
}

function baseName(name: string): string {
  const trimmed = name.replace(/\/+$/, '');
  const i = trimmed.lastIndexOf('/');
  return i < 0 ? trimmed : trimmed.slice(i + 1);
}

/** Encodes the block(s) that precede an entry's data: PAX or GNU extension entries, then the header. */
export function encodeHeader(h: TarHeader, format: TarFormat = 'pax'): Buffer {
  const gnu = format === 'gnu';
  const name = encodeName(h.name);
  const linkname = encodeName(h.linkname);
  const uname = encodeName(h.uname);
  const gname = encodeName(h.gname);
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw new InvalidArgumentError(`tar: invalid size ${h.size} for "${h.name}"`);
  if (h.type.length !== 1) throw new InvalidArgumentError(`tar: invalid type "${h.type}" for "${h.name}"`);
  const fields: BlockFields = {
    name, prefix: Buffer.alloc(0), mode: h.mode, uid: h.uid, gid: h.gid, size: h.size, mtime: h.mtime.sec,
    type: h.type, linkname, uname, gname, devmajor: h.devmajor, devminor: h.devminor,
  };
  const out: Buffer[] = [];

  if (gnu) {
    if (h.xattrs.size > 0 || h.pax.size > 0) throw new InvalidArgumentError(`tar: the gnu format cannot carry xattrs or PAX records ("${h.name}")`);
    const long = (type: string, value: Buffer) => {
      const data = Buffer.concat([value, Buffer.alloc(1)]);
      out.push(headerBlock({
        name: Buffer.from('././@LongLink'), prefix: Buffer.alloc(0), mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0,
        type, linkname: Buffer.alloc(0), uname: Buffer.alloc(0), gname: Buffer.alloc(0), devmajor: 0, devminor: 0,
      }, true));
      out.push(dataBlocks(data));
    };
    if (name.length > 100) long(TarType.GnuLongName, name);
    if (linkname.length > 100) long(TarType.GnuLongLink, linkname);
    out.push(headerBlock(fields, true));
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  const records: Buffer[] = [];
  const split = isPortable(name) ? splitUstar(name) : undefined;
  if (split) [fields.prefix, fields.name] = split;
  else records.push(paxRecord('path', name));
  if (linkname.length > 100 || !isPortable(linkname)) records.push(paxRecord('linkpath', linkname));
  if (!fitsOctal(h.size, 12)) records.push(paxRecord('size', Buffer.from(String(h.size))));
  if (!fitsOctal(h.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (uname.length > 32 || !isPortable(uname)) records.push(paxRecord('uname', uname));
  if (gname.length > 32 || !isPortable(gname)) records.push(paxRecord('gname', gname));
  if (h.mtime.nsec !== 0 || !fitsOctal(h.mtime.sec, 12)) records.push(paxRecord('mtime', Buffer.from(formatPaxTime(h.mtime))));
  if (h.atime) records.push(paxRecord('atime', Buffer.from(formatPaxTime(h.atime))));
  if (h.ctime) records.push(paxRecord('ctime', Buffer.from(formatPaxTime(h.ctime))));
  if ((h.type === TarType.Char || h.type === TarType.Block) && (!fitsOctal(h.devmajor, 8) || !fitsOctal(h.devminor, 8))) {
    records.push(paxRecord('SCHILY.devmajor', Buffer.from(String(h.devmajor))));
    records.push(paxRecord('SCHILY.devminor', Buffer.from(String(h.devminor))));
  }
  for (const key of [...h.xattrs.keys()].sort()) records.push(paxRecord(`SCHILY.xattr.${key}`, h.xattrs.get(key)!));
  for (const key of [...h.pax.keys()].sort()) records.push(paxRecord(key, encodeName(h.pax.get(key)!)));

  if (records.length > 0) {
    const data = Buffer.concat(records);
    const paxName = encodeName(`PaxHeaders/${baseName(h.name)}`).subarray(0, 100);
    out.push(headerBlock({
      name: isPortable(paxName) ? paxName : Buffer.from('PaxHeaders/entry'), prefix: Buffer.alloc(0), mode: 0o644, uid: 0, gid: 0,
      size: data.length, mtime: Math.max(0, Math.min(h.mtime.sec, OCTAL_LIMIT(12) - 1)),
      type: TarType.PaxHeader, linkname: Buffer.alloc(0), uname: Buffer.alloc(0), gname: Buffer.alloc(0), devmajor: 0, devminor: 0,
    }, false));
    out.push(dataBlocks(data));
    if (!split) fields.name = name.subarray(0, 100);
  }
  out.push(headerBlock(fields, false));
  return out.length === 1 ? out[0] : Buffer.concat(out);
}
