/**
 * File names are bytes on Linux and in tar archives; they need not be UTF-8 (a layer may hold
 * `caf\xe9` written by a Latin-1 system, or `\xff\xfe`). Berth keeps names as JS strings, which
 * read well in errors and logs, and makes the mapping between bytes and strings lossless the way
 * Python's `surrogateescape` does (PEP 383): valid UTF-8 decodes as text, and every byte that is
 * not part of a valid UTF-8 sequence becomes the lone surrogate U+DC00 + byte. Text decoded from
 * valid UTF-8 never holds a lone surrogate, so {@link encodeName} gives back exactly the bytes
 * {@link decodeName} read.
 *
 * Node's fs encodes string paths as UTF-8 (a lone surrogate becomes U+FFFD), so a name that
 * carries escaped bytes must reach fs as a Buffer: {@link fsPath}.
 */
import * as fs from 'node:fs';

const FATAL_UTF8 = new TextDecoder('utf-8', { fatal: true });
/** An escaped byte: a lone low surrogate U+DC80..U+DCFF (one not preceded by a high surrogate). */
const ESCAPED = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

function isAscii(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] >= 0x80) return false;
  return true;
}

/** Length of the valid UTF-8 sequence starting at `i` (a byte >= 0x80), or 0 if it is not one. */
function utf8SequenceLength(b: Uint8Array, i: number, end: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < end && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0; // no overlong forms
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no surrogates
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0; // up to U+10FFFF
  return 0;
}

/** Decodes name bytes (`buf[start..end)`) to a string, losslessly (see the module comment). */
export function decodeName(buf: Uint8Array, start = 0, end = buf.length): string {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (isAscii(b, start, end)) return b.toString('latin1', start, end);
  try {
    return FATAL_UTF8.decode(b.subarray(start, end));
  } catch {
    // Not valid UTF-8: decode sequence by sequence, escaping the bytes that are not part of one.
  }
  let out = '';
  let plain = start;
  for (let i = start; i < end;) {
    if (b[i] < 0x80) {
      i++;
      continue;
    }
    const n = utf8SequenceLength(b, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    out += b.toString('utf8', plain, i) + String.fromCharCode(0xdc00 + b[i]);
    plain = ++i;
  }
  return out + b.toString('utf8', plain, end);
}

/** Whether a string holds escaped bytes, so that it is not plain UTF-8 text. */
export function hasEscapedBytes(s: string): boolean {
  return ESCAPED.test(s);
}

/** Encodes a name back to the bytes {@link decodeName} read (plain strings: their UTF-8). */
export function encodeName(s: string): Buffer {
  if (!hasEscapedBytes(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let plain = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++; // a valid pair, not an escape
        continue;
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) {
      parts.push(Buffer.from(s.slice(plain, i), 'utf8'), Buffer.of(c - 0xdc00));
      plain = i + 1;
    }
  }
  parts.push(Buffer.from(s.slice(plain), 'utf8'));
  return Buffer.concat(parts);
}

/** A path for node:fs: the string itself when it is plain text, else its bytes. */
export function fsPath(s: string): string | Buffer {
  return hasEscapedBytes(s) ? encodeName(s) : s;
}

/** `readdirSync` with byte-exact names. */
export function readdirNames(dir: string): string[] {
  return fs.readdirSync(fsPath(dir), { encoding: 'buffer' }).map((b) => decodeName(b));
}

/** `readlinkSync` with a byte-exact target. */
export function readlinkName(path: string): string {
  return decodeName(fs.readlinkSync(fsPath(path), { encoding: 'buffer' }));
}

/** Orders names by their bytes (as Go and containerd compare strings). */
export function compareNames(a: string, b: string): number {
  if (!hasEscapedBytes(a) && !hasEscapedBytes(b) && isPlainBmp(a) && isPlainBmp(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(encodeName(a), encodeName(b));
}

/** Strings whose UTF-16 order equals their UTF-8 byte order: no surrogates at all. */
function isPlainBmp(s: string): boolean {
  return !/[\uD800-\uDFFF]/.test(s);
}
