/**
 * Translation of Go (RE2) regular-expression syntax, which containerd uses for `~=`, into an
 * equivalent JavaScript RegExp (compiled with the `u` flag, so it works on code points as Go does).
 *
 * Without it, some Go patterns would silently mean something else in JS: `[[:alpha:]]` is a POSIX
 * class in Go but a set of punctuation followed by `]` in JS, `\pL` is a Unicode class in Go but
 * the letters "pL" in JS, and a leading `(?i)` is a syntax error in JS. The translation covers
 * Go's syntax as of Go 1.19 (what containerd 1.6 is built with); a pattern Go would reject is
 * rejected here too.
 *
 * Flag groups (`(?s)`, `(?m:...)`, `(?U)`) work anywhere, because `.`, `^` and `$` are translated
 * here rather than left to JS flags, and ungreedy mode cannot change whether a pattern matches.
 * Differences that remain, all at the edges:
 * - Case-insensitivity (`i`) must hold for the whole pattern, as with a leading `(?i)`: JS has no
 *   scoped flags before V8 12.5 (Node 20 has 11.3). A pattern that switches it on or off part way
 *   (`(?i:abc)`, `a(?i)b`) is reported unsupported and so matches nothing.
 * - `\S` inside a character class keeps JS's meaning (not a space per Unicode, rather than Go's
 *   ASCII-only `[^\t\n\f\r ]`).
 */

/** Thrown when a pattern is invalid in Go or uses Go syntax JavaScript cannot express. */
export class GoRegexpError extends Error {}

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\u{0}-\\u{7f}',
  blank: '\\t ',
  cntrl: '\\u{0}-\\u{1f}\\u{7f}',
  digit: '0-9',
  graph: '\\u{21}-\\u{7e}',
  lower: 'a-z',
  print: '\\u{20}-\\u{7e}',
  punct: '\\u{21}-\\u{2f}\\u{3a}-\\u{40}\\u{5b}-\\u{60}\\u{7b}-\\u{7e}',
  space: '\\t\\n\\u{b}\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/** Go's `\s`: ASCII whitespace without `\v` (JS's `\s` adds `\v` and Unicode spaces). */
const GO_SPACE = '\\t\\n\\f\\r ';

/**
 * Compiles a Go regular expression into a JavaScript RegExp with the same meaning.
 *
 * @throws GoRegexpError when the pattern does not compile in Go or cannot be expressed in JS.
 */
export function compileGoRegexp(pattern: string): RegExp {
  const translator = new Translator(pattern);
  const source = translator.translate();
  try {
    return new RegExp(source, `u${translator.flags}`);
  } catch (err) {
    throw new GoRegexpError((err as Error).message);
  }
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
}

const FLAG_GROUP = /^\(\?([imsU]*)(?:-([imsU]*))?(\)|:)/;

class Translator {
  /** Flags for the RegExp constructor besides `u`: "i" when the whole pattern ignores case. */
  flags = '';
  private i = 0;
  private out = '';
  /** Flags in force, one entry per open group (Go scopes a flag change to the enclosing group). */
  private readonly scopes: Flags[] = [{ i: false, m: false, s: false }];

  constructor(private readonly p: string) {}

  translate(): string {
    this.leadingFlags();
    while (this.i < this.p.length) {
      const ch = this.p[this.i];
      const scope = this.scopes[this.scopes.length - 1];
      switch (ch) {
        case '\\':
          this.out += this.escape(false);
          break;
        case '[':
          this.charClass();
          break;
        case '(':
          this.group();
          break;
        case ')':
          if (this.scopes.length > 1) this.scopes.pop();
          this.out += ')';
          this.i++;
          break;
        case '.':
          this.out += scope.s ? '[^]' : '[^\\n]';
          this.i++;
          break;
        // Go's multi-line mode knows only \n as a line end; JS's `m` flag also takes \r, U+2028, U+2029.
        case '^':
          this.out += scope.m ? '(?<![^\\n])' : '^';
          this.i++;
          break;
        case '$':
          this.out += scope.m ? '(?![^\\n])' : '$';
          this.i++;
          break;
        case '{':
          this.brace();
          break;
        case '}':
        case ']':
          this.out += `\\${ch}`;
          this.i++;
          break;
        default: {
          const cp = this.p.codePointAt(this.i)!;
          this.out += String.fromCodePoint(cp);
          this.i += cp > 0xffff ? 2 : 1;
        }
      }
    }
    return this.out;
  }

  /** Flag groups at the very start decide whether the whole pattern ignores case. */
  private leadingFlags(): void {
    for (let m = FLAG_GROUP.exec(this.p); m && m[3] === ')'; m = FLAG_GROUP.exec(this.p.slice(this.i))) {
      this.scopes[0] = this.applyFlags(this.scopes[0], m[1], m[2], true);
      this.i += m[0].length;
    }
    if (this.scopes[0].i) this.flags = 'i';
  }

  private applyFlags(current: Flags, set: string, clear: string | undefined, leading = false): Flags {
    if (set === '' && (clear === undefined || clear === '')) throw new GoRegexpError('missing flags');
    if (clear === '') throw new GoRegexpError('missing flags after -');
    const next = { ...current };
    for (const f of set) if (f !== 'U') next[f as keyof Flags] = true;
    for (const f of clear ?? '') if (f !== 'U') next[f as keyof Flags] = false;
    if (!leading && next.i !== (this.flags === 'i')) {
      throw new GoRegexpError('case-insensitivity for part of a pattern is not supported');
    }
    return next;
  }

  private group(): void {
    const rest = this.p.slice(this.i);
    const scope = this.scopes[this.scopes.length - 1];
    if (!rest.startsWith('(?')) {
      this.scopes.push({ ...scope });
      this.out += '(';
      this.i++;
      return;
    }
    const flags = FLAG_GROUP.exec(rest);
    if (flags) {
      const next = this.applyFlags(scope, flags[1], flags[2]);
      this.i += flags[0].length;
      if (flags[3] === ')') {
        // `(?s)` changes the flags until the end of the enclosing group.
        this.scopes[this.scopes.length - 1] = next;
      } else {
        this.scopes.push(next);
        this.out += '(?:';
      }
      return;
    }
    // Go 1.19 knows only the (?P<name>...) spelling. The name plays no part in matching.
    const named = /^\(\?P<([A-Za-z0-9_]+)>/.exec(rest);
    if (named) {
      this.scopes.push({ ...scope });
      this.out += '(';
      this.i += named[0].length;
      return;
    }
    throw new GoRegexpError(`unsupported group syntax at ${this.i}`);
  }

  /** A `{n}`, `{n,}` or `{n,m}` repeat; any other brace is a literal in Go. */
  private brace(): void {
    const m = /^\{(\d+)(?:,(\d*))?\}/.exec(this.p.slice(this.i));
    if (!m) {
      this.out += '\\{';
      this.i++;
      return;
    }
    const min = Number(m[1]);
    const max = m[2] === undefined || m[2] === '' ? min : Number(m[2]);
    if (min > 1000 || max > 1000 || max < min) throw new GoRegexpError(`invalid repeat count ${m[0]}`);
    this.out += m[0];
    this.i += m[0].length;
  }

  private charClass(): void {
    this.i++;
    this.out += '[';
    if (this.p[this.i] === '^') {
      this.out += '^';
      this.i++;
    }
    let first = true;
    for (;;) {
      if (this.i >= this.p.length) throw new GoRegexpError('missing closing ]');
      const ch = this.p[this.i];
      if (ch === ']' && !first) {
        this.out += ']';
        this.i++;
        return;
      }
      first = false;
      if (ch === ']' || (ch === '[' && !this.p.startsWith('[:', this.i))) {
        this.out += `\\${ch}`;
        this.i++;
      } else if (ch === '[') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(this.p.slice(this.i));
        if (!m) {
          this.out += '\\[';
          this.i++;
          continue;
        }
        const ranges = POSIX_CLASSES[m[2]];
        if (ranges === undefined) throw new GoRegexpError(`invalid character class range ${m[0]}`);
        if (m[1] === '^') throw new GoRegexpError(`negated POSIX class ${m[0]} is not supported`);
        this.out += ranges;
        this.i += m[0].length;
      } else if (ch === '\\') {
        this.out += this.escape(true);
      } else {
        const cp = this.p.codePointAt(this.i)!;
        this.out += String.fromCodePoint(cp);
        this.i += cp > 0xffff ? 2 : 1;
      }
    }
  }

  /** Translates the escape at `this.i` (a backslash) and moves past it. */
  private escape(inClass: boolean): string {
    const c = this.p[this.i + 1];
    if (c === undefined) throw new GoRegexpError('trailing backslash at end of expression');
    this.i += 2;
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
      case 'f':
      case 't':
      case 'n':
      case 'r':
      case 'v':
        return `\\${c}`;
      case 'a':
        return '\\u{7}';
      case 's':
        return inClass ? GO_SPACE : `[${GO_SPACE}]`;
      case 'S':
        return inClass ? '\\S' : `[^${GO_SPACE}]`;
      case 'b':
      case 'B':
        if (inClass) break;
        return `\\${c}`;
      case 'A':
        if (inClass) break;
        return '(?<![^])';
      case 'z':
        if (inClass) break;
        return '(?![^])';
      case 'p':
      case 'P':
        return this.unicodeClass(c === 'P', inClass);
      case 'Q': {
        if (inClass) break;
        const end = this.p.indexOf('\\E', this.i);
        const literal = end < 0 ? this.p.slice(this.i) : this.p.slice(this.i, end);
        this.i = end < 0 ? this.p.length : end + 2;
        return [...literal].map(literalChar).join('');
      }
      case 'x': {
        const braced = /^\{([0-9A-Fa-f]+)\}/.exec(this.p.slice(this.i));
        const plain = /^[0-9A-Fa-f]{2}/.exec(this.p.slice(this.i));
        const m = braced ?? plain;
        if (!m) throw new GoRegexpError('invalid escape sequence \\x');
        const cp = parseInt(braced ? braced[1] : plain![0], 16);
        if (cp > 0x10ffff) throw new GoRegexpError('invalid escape sequence \\x{...}');
        this.i += m[0].length;
        return literalChar(String.fromCodePoint(cp));
      }
      default:
        break;
    }
    if (c >= '0' && c <= '7') {
      // Go: \0 starts an octal escape; \1-\7 too, but only followed by another octal digit
      // (a lone \1 would be a backreference, which RE2 has not got).
      const m = /^[0-7]{0,2}/.exec(this.p.slice(this.i))![0];
      if (c !== '0' && m === '') throw new GoRegexpError(`invalid escape sequence \\${c}`);
      this.i += m.length;
      return literalChar(String.fromCodePoint(parseInt(c + m, 8)));
    }
    if (c < '\x80' && !/[0-9A-Za-z]/.test(c)) return literalChar(c);
    throw new GoRegexpError(`invalid escape sequence \\${c}`);
  }

  private unicodeClass(negated: boolean, inClass: boolean): string {
    let name: string;
    if (this.p[this.i] === '{') {
      const end = this.p.indexOf('}', this.i);
      if (end < 0) throw new GoRegexpError('invalid character class range');
      name = this.p.slice(this.i + 1, end);
      this.i = end + 1;
    } else {
      name = this.p[this.i] ?? '';
      this.i++;
    }
    if (name.startsWith('^')) {
      negated = !negated;
      name = name.slice(1);
    }
    if (!/^[A-Za-z_]+$/.test(name)) throw new GoRegexpError(`invalid character class range \\p{${name}}`);
    if (name === 'Any') {
      if (negated) return inClass ? '' : '[^\\u{0}-\\u{10ffff}]';
      return inClass ? '\\u{0}-\\u{10ffff}' : '[\\u{0}-\\u{10ffff}]';
    }
    // One- and two-letter names are general categories (L, Lu, Nd...); longer ones are scripts.
    const property = name.length <= 2 ? name : `Script=${name}`;
    return `\\${negated ? 'P' : 'p'}{${property}}`;
  }
}

/** A character as a literal in a `u`-mode pattern, inside or outside a class. */
function literalChar(ch: string): string {
  return /[0-9A-Za-z]/.test(ch) ? ch : `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}
