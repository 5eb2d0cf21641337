/**
 * The Huffman code of HPACK (RFC 7541 Appendix B), decoding only.
 *
 * The code is canonical: within one length, codes run in symbol order, and each length's first
 * code follows the previous length's last. So the code lengths alone define it, and a decoder
 * needs per length only the first code and where its symbols start in the symbol list.
 */
import { DataLossError } from '@berth/errdefs';

/** Bits per symbol, 0x00 to 0xff, then EOS (256): RFC 7541 Appendix B's "len in bits" column. */
// prettier-ignore
const CODE_LENGTHS: readonly number[] = [
  /* 0x00 */ 13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  /* 0x10 */ 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  /* 0x20 */ 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  /* 0x30 */ 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  /* 0x40 */ 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  /* 0x50 */ 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  /* 0x60 */ 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  /* 0x70 */ 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  /* 0x80 */ 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  /* 0x90 */ 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  /* 0xa0 */ 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  /* 0xb0 */ 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  /* 0xc0 */ 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  /* 0xd0 */ 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  /* 0xe0 */ 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  /* 0xf0 */ 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  /* EOS  */ 30,
];

export const EOS = 256;
const MAX_LENGTH = 30;

interface CanonicalCode {
  /** Symbols ordered by (length, symbol): the order codes are given out in. */
  symbols: Uint16Array;
  /** Per length: the first code of that length, how many there are, and the first's place in `symbols`. */
  first: Int32Array;
  count: Int32Array;
  start: Int32Array;
}

let canonical: CanonicalCode | undefined;

/** Builds the decoding tables once, on the first Huffman string (a plain-literal peer never pays). */
function code(): CanonicalCode {
  if (canonical) return canonical;
  const count = new Int32Array(MAX_LENGTH + 1);
  for (const len of CODE_LENGTHS) count[len]!++;
  const first = new Int32Array(MAX_LENGTH + 1);
  const start = new Int32Array(MAX_LENGTH + 1);
  for (let len = 1, next = 0, at = 0; len <= MAX_LENGTH; len++) {
    first[len] = next;
    start[len] = at;
    next = (next + count[len]!) * 2;
    at += count[len]!;
  }
  const symbols = new Uint16Array(CODE_LENGTHS.length);
  const filled = Int32Array.from(start);
  CODE_LENGTHS.forEach((len, symbol) => (symbols[filled[len]!++] = symbol));
  canonical = { symbols, first, count, start };
  return canonical;
}

/** The code and bit length of `symbol` (0-255, or EOS): for tests that check the table against the RFC. */
export function huffmanCode(symbol: number): { code: number; length: number } {
  const c = code();
  const length = CODE_LENGTHS[symbol]!;
  const place = c.symbols.indexOf(symbol) - c.start[length]!;
  return { code: c.first[length]! + place, length };
}

/**
 * Decodes a Huffman-coded string literal. Refuses, as RFC 7541 5.2 requires, an EOS symbol in
 * the data and padding that is longer than 7 bits or not the most significant bits of EOS.
 */
export function huffmanDecode(data: Uint8Array): Buffer {
  const c = code();
  // Every symbol takes at least 5 bits, so the output is at most 8/5 of the input.
  const out = Buffer.allocUnsafe(Math.ceil((data.length * 8) / 5));
  let n = 0;
  let value = 0; // the bits of the symbol being read
  let len = 0; // how many there are
  for (let i = 0; i < data.length; i++) {
    const byte = data[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      value = value * 2 + ((byte >> bit) & 1);
      len++;
      const offset = value - c.first[len]!;
      if (offset >= 0 && offset < c.count[len]!) {
        const symbol = c.symbols[c.start[len]! + offset]!;
        if (symbol === EOS) throw new DataLossError('hpack: a Huffman string holds the EOS symbol');
        out[n++] = symbol;
        value = 0;
        len = 0;
      } else if (len >= MAX_LENGTH) {
        // Unreachable with a complete code (every 30-bit value is some code's prefix or code);
        // kept so that a table typo can never loop or read past the arrays.
        throw new DataLossError('hpack: a Huffman string holds no valid code');
      }
    }
  }
  // What is left must be padding: fewer than 8 bits, all ones (the start of EOS).
  if (len > 7) throw new DataLossError(`hpack: a Huffman string ends with ${len} bits of padding (at most 7)`);
  if (value !== 2 ** len - 1) throw new DataLossError('hpack: a Huffman string is padded with bits other than EOS');
  return out.subarray(0, n);
}
