/**
 * The filter lexer. It follows containerd 1.6's scanner rule for rule, because the parser's error
 * positions and messages depend on exactly where each token starts and which runes it swallows.
 * Checked against a live containerd 1.6.20 with `ctr plugins ls <filter>`.
 */

/** Pseudo-rune for the end of input. */
export const EOF = -1;
/** Pseudo-rune for a rune the lexer refuses (NUL, U+FFFD). */
export const ILLEGAL = -7;

/** What a token is; "other" is a rune no token starts with. */
export type TokenKind = 'eof' | 'illegal' | 'quoted' | 'value' | 'field' | 'separator' | 'operator' | 'other';

/** One token and where it starts. */
export interface Token {
  kind: TokenKind;
  /** Offset of the token in the input (UTF-16 units; the same boundary as Go's byte offset). */
  pos: number;
  /** The token's source text, quotes included. */
  text: string;
  /** For kind "other": the unexpected rune. */
  rune?: number;
}

/** Splits a filter string into tokens, tracking the position containerd reports in errors. */
export class Scanner {
  /** Start of the rune read last. */
  pos = 0;
  /** End of the rune read last, where the next one starts. */
  ppos = 0;
  /** After an operator the next word is a value, whose alphabet is wider than a field's. */
  private value = false;
  /** The first error met; later ones are dropped, as in containerd. */
  err = '';

  constructor(readonly input: string) {}

  /** Reads the next rune; returns `EOF` at the end and `ILLEGAL` (recording why) for NUL or U+FFFD. */
  next(): number {
    if (this.pos >= this.input.length) return EOF;
    this.pos = this.ppos;
    if (this.ppos >= this.input.length) return EOF;
    const cp = this.input.codePointAt(this.ppos)!;
    this.ppos += cp > 0xffff ? 2 : 1;
    // Go decodes UTF-8 and treats U+FFFD as a decoding failure; a lone surrogate is what invalid
    // UTF-8 would have become.
    if (cp === 0xfffd || (cp >= 0xd800 && cp <= 0xdfff)) {
      this.error('rune error');
      return ILLEGAL;
    }
    if (cp === 0) {
      this.error('unexpected null');
      return ILLEGAL;
    }
    return cp;
  }

  /** Returns the next rune without consuming it. */
  peek(): number {
    const { pos, ppos } = this;
    const ch = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return ch;
  }

  /** Skips spaces and reads one token. */
  scan(): Token {
    let ch = this.next();
    let pos = this.pos;
    for (;;) {
      if (ch === EOF || ch === ILLEGAL) break;
      if (isQuoteRune(ch)) {
        const ok = this.scanQuoted(ch);
        return { kind: ok ? 'quoted' : 'illegal', pos, text: this.input.slice(pos, this.ppos) };
      }
      if (isSeparatorRune(ch)) {
        this.value = false;
        return { kind: 'separator', pos, text: this.input.slice(pos, this.ppos) };
      }
      if (isOperatorRune(ch)) {
        while (isOperatorRune(this.peek())) this.next();
        this.value = true;
        return { kind: 'operator', pos, text: this.input.slice(pos, this.ppos) };
      }
      if (isSpace(ch)) {
        ch = this.next();
        pos = this.pos;
        continue;
      }
      if (this.value) {
        while (isValueRune(this.peek())) this.next();
        this.value = false;
        return { kind: 'value', pos, text: this.input.slice(pos, this.ppos) };
      }
      if (isFieldRune(ch)) {
        while (isFieldRune(this.peek())) this.next();
        return { kind: 'field', pos, text: this.input.slice(pos, this.ppos) };
      }
      break;
    }
    const kind: TokenKind = ch === EOF ? 'eof' : ch === ILLEGAL ? 'illegal' : 'other';
    return { kind, pos: this.pos, text: '', rune: ch };
  }

  /** Consumes a quoted literal whose opening quote was just read; reports whether it is well formed. */
  private scanQuoted(quote: number): boolean {
    let illegal = false;
    let ch = this.next();
    while (ch !== quote) {
      if (ch === 0x0a || ch < 0) {
        this.error('quoted literal not terminated');
        return false;
      }
      if (ch === 0x5c) {
        const [after, legal] = this.scanEscape(quote);
        ch = after;
        if (!legal) illegal = true;
      } else {
        ch = this.next();
      }
    }
    return !illegal;
  }

  /** Consumes an escape after its backslash; returns the rune after it (already read). */
  private scanEscape(quote: number): [number, boolean] {
    const ch = this.next();
    switch (ch) {
      case 0x61: // a
      case 0x62: // b
      case 0x66: // f
      case 0x6e: // n
      case 0x72: // r
      case 0x74: // t
      case 0x76: // v
      case 0x5c: // backslash
      case quote:
        return [this.next(), true];
      case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x36: case 0x37:
        return this.scanDigits(ch, 8, 3);
      case 0x78: // x
        return this.scanDigits(this.next(), 16, 2);
      case 0x75: // u
        return this.scanDigits(this.next(), 16, 4);
      case 0x55: // U
        return this.scanDigits(this.next(), 16, 8);
      default:
        this.error('illegal escape sequence');
        return [ch, false];
    }
  }

  private scanDigits(ch: number, base: number, n: number): [number, boolean] {
    while (n > 0 && digitValue(ch) < base) {
      ch = this.next();
      n--;
    }
    if (n > 0) {
      this.error('illegal numeric escape sequence');
      return [ch, false];
    }
    return [ch, true];
  }

  private error(message: string): void {
    if (this.err === '') this.err = message;
  }
}

function digitValue(ch: number): number {
  if (ch >= 0x30 && ch <= 0x39) return ch - 0x30;
  if (ch >= 0x61 && ch <= 0x66) return ch - 0x61 + 10;
  if (ch >= 0x41 && ch <= 0x46) return ch - 0x41 + 10;
  return 16;
}

/** Field names are ASCII letters, digits and `_` (containerd 1.6; `-` was only added later). */
function isFieldRune(ch: number): boolean {
  return (
    ch === 0x5f || (ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39)
  );
}

function isOperatorRune(ch: number): boolean {
  return ch === 0x3d || ch === 0x21 || ch === 0x7e; // = ! ~
}

/** `"` quotes anywhere; `/` and `|` also open a quoted literal, accepted only as a `~=` value. */
function isQuoteRune(ch: number): boolean {
  return ch === 0x22 || ch === 0x2f || ch === 0x7c;
}

function isSeparatorRune(ch: number): boolean {
  return ch === 0x2c || ch === 0x2e; // , .
}

const GRAPHIC = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** A bare value runs to the next `,` or space: any letter, mark, number, punctuation or symbol. */
function isValueRune(ch: number): boolean {
  if (ch < 0 || ch === 0x2c || isSpace(ch)) return false;
  if (ch < 0x80) return ch > 0x20 && ch < 0x7f;
  return GRAPHIC.test(String.fromCodePoint(ch));
}

/**
 * Go's `unicode.IsSpace` (the White_Space property). Not JS's `\s`, which lacks U+0085 and adds
 * U+FEFF.
 */
function isSpace(ch: number): boolean {
  if (ch < 0x100) return (ch >= 0x09 && ch <= 0x0d) || ch === 0x20 || ch === 0x85 || ch === 0xa0;
  return (
    ch === 0x1680 ||
    (ch >= 0x2000 && ch <= 0x200a) ||
    ch === 0x2028 ||
    ch === 0x2029 ||
    ch === 0x202f ||
    ch === 0x205f ||
    ch === 0x3000
  );
}
