/**
 * Decoding of quoted literals, following Go's string-literal rules as containerd's filter parser
 * applies them, with `/` and `|` accepted as delimiters besides `"`. Works on UTF-8 bytes because
 * `\x` and octal escapes produce single bytes: `"\xc3\xa9"` is `é`, and a stray byte becomes U+FFFD.
 */

/** Thrown for a literal the scanner let through but Go's unquoting rejects (`"\400"`, `"\U00110000"`). */
export class QuoteSyntaxError extends Error {
  constructor() {
    super('quote syntax error');
  }
}

const SIMPLE_ESCAPES: Readonly<Record<number, number>> = {
  0x61: 0x07, // \a
  0x62: 0x08, // \b
  0x66: 0x0c, // \f
  0x6e: 0x0a, // \n
  0x72: 0x0d, // \r
  0x74: 0x09, // \t
  0x76: 0x0b, // \v
  0x5c: 0x5c, // \\
};

/** Returns the text a quoted literal (delimiters included) stands for. */
export function unquote(literal: string): string {
  const quote = literal.charCodeAt(0);
  if (literal.length < 2 || literal.charCodeAt(literal.length - 1) !== quote) throw new QuoteSyntaxError();
  const body = literal.slice(1, -1);
  if (body.includes('\n')) throw new QuoteSyntaxError();
  if (!body.includes('\\') && !body.includes(String.fromCharCode(quote))) return body;

  const src = Buffer.from(body, 'utf8');
  const out: number[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === quote) throw new QuoteSyntaxError();
    if (c !== 0x5c) {
      out.push(c);
      i++;
      continue;
    }
    if (i + 1 >= src.length) throw new QuoteSyntaxError();
    const e = src[i + 1];
    i += 2;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out.push(simple);
    } else if (e === 0x78 || e === 0x75 || e === 0x55) {
      const n = e === 0x78 ? 2 : e === 0x75 ? 4 : 8;
      if (src.length - i < n) throw new QuoteSyntaxError();
      let v = 0;
      for (let j = 0; j < n; j++) {
        const d = hexValue(src[i + j]);
        if (d < 0) throw new QuoteSyntaxError();
        v = v * 16 + d;
      }
      i += n;
      if (e === 0x78) {
        out.push(v);
      } else {
        if (v > 0x10ffff) throw new QuoteSyntaxError();
        // Go encodes a surrogate code point as U+FFFD.
        const cp = v >= 0xd800 && v <= 0xdfff ? 0xfffd : v;
        for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) out.push(b);
      }
    } else if (e >= 0x30 && e <= 0x37) {
      if (src.length - i < 2) throw new QuoteSyntaxError();
      let v = e - 0x30;
      for (let j = 0; j < 2; j++) {
        const d = src[i + j] - 0x30;
        if (d < 0 || d > 7) throw new QuoteSyntaxError();
        v = (v << 3) | d;
      }
      i += 2;
      if (v > 255) throw new QuoteSyntaxError();
      out.push(v);
    } else if (e === 0x27 || e === 0x22 || e === 0x7c || e === 0x2f) {
      if (e !== quote) throw new QuoteSyntaxError();
      out.push(e);
    } else {
      throw new QuoteSyntaxError();
    }
  }
  return Buffer.from(out).toString('utf8');
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}
