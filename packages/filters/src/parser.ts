import { InvalidArgumentError } from '@berth/errdefs';
import { ALWAYS, AllOf, AnyOf, Filter, Operator, Selector } from './filter';
import { compileGoRegexp } from './go-regexp';
import { EOF, Scanner } from './scanner';
import { unquote } from './unquote';

/**
 * Returned when a filter string does not parse. The message is containerd's, byte for byte:
 * `filters: parse error: [<input, the offending character marked >|x|<>]: <reason>: invalid argument`.
 */
export class FilterParseError extends InvalidArgumentError {
  constructor(
    /** The filter string as given. */
    readonly input: string,
    /** Offset (UTF-16 units) of the offending token; `input.length` at the end of input. */
    readonly position: number,
    /** What was wrong, e.g. "expected value or quoted". */
    readonly reason: string,
  ) {
    super(`filters: parse error: ${markPosition(input, position)}: ${reason}`);
  }
}

/**
 * Parses one filter string: selectors joined by `,`, each `fieldpath` (presence) or
 * `fieldpath op value` with `op` one of `==`, `!=`, `~=`. The empty string matches everything.
 *
 * @throws FilterParseError (an InvalidArgumentError) when the string does not parse. An invalid
 *   `~=` pattern is not a parse error (containerd 1.6 accepts it and matches nothing); it shows up
 *   in the filter's `warnings`.
 */
export function parse(filter: string): Filter {
  if (filter === '') return ALWAYS;
  return new Parser(filter).parse();
}

/**
 * Parses a request's repeated filters into one filter that matches when any of them does. No
 * filters, or any empty string among them, matches everything; every string must still parse.
 *
 * The error message is what containerd's `filters.ParseAll` returns, with one ": invalid argument".
 * containerd 1.6 services differ in what they add, which the calling service must reproduce:
 * Content.List and Content.ListStatuses send it as is; Images.List, Containers.List, Leases.List
 * and Introspection.Plugins append a second ": invalid argument" (errdefs' classes will not, so
 * build that one with `{ bare: true }`); Events.Subscribe wraps it as
 * "failed parsing subscription filters: ...".
 *
 * @throws FilterParseError for the first string that does not parse.
 */
export function parseAll(filters: readonly string[]): Filter {
  if (filters.length === 0) return ALWAYS;
  const parsed = filters.map(parse);
  if (parsed.length === 1) return parsed[0];
  return new AnyOf(parsed);
}

const OPERATORS: Readonly<Record<string, Operator>> = { '==': 'equal', '!=': 'not-equal', '~=': 'matches' };

const COMMA = 0x2c;
const DOT = 0x2e;

/**
 * A recursive-descent parser over `Scanner`, laid out like containerd's so that every error is
 * raised at the same point with the same position:
 *
 *   selectors := selector ("," selector)*
 *   selector  := fieldpath [operator value]
 *   fieldpath := field ("." field)*
 *   field     := quoted | [A-Za-z0-9_]+
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | <value runes: not space, not ",">+
 */
class Parser {
  private readonly scanner: Scanner;

  constructor(private readonly input: string) {
    this.scanner = new Scanner(input);
  }

  parse(): Filter {
    const selectors = [this.selector()];
    for (;;) {
      const next = this.scanner.peek();
      if (next === EOF) break;
      if (next !== COMMA) throw this.error(this.scanner.ppos, `unexpected input: ${runeText(next)}`);
      const tok = this.scanner.scan();
      if (tok.kind !== 'separator') throw this.error(tok.pos, 'expected a separator');
      selectors.push(this.selector());
    }
    return selectors.length === 1 ? selectors[0] : new AllOf(selectors);
  }

  private selector(): Selector {
    const path = this.fieldpath();
    const next = this.scanner.peek();
    if (next === COMMA || next === EOF) return new Selector(path, 'present', '');
    const operator = this.operator();
    const value = this.value(operator === 'matches');
    if (operator !== 'matches') return new Selector(path, operator, value);
    try {
      return new Selector(path, operator, value, compileGoRegexp(value));
    } catch (err) {
      return new Selector(path, operator, value, undefined, `error compiling regexp "${value}": ${(err as Error).message}`);
    }
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.scanner.peek() === DOT) {
      const tok = this.scanner.scan();
      if (tok.kind !== 'separator') throw this.error(tok.pos, 'expected a field separator (`.`)');
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    const tok = this.scanner.scan();
    switch (tok.kind) {
      case 'field':
        return tok.text;
      case 'quoted':
        return this.unquote(tok.pos, tok.text, false);
      case 'illegal':
        throw this.error(tok.pos, this.scanner.err);
      default:
        throw this.error(tok.pos, 'expected field or quoted');
    }
  }

  private operator(): Operator {
    const tok = this.scanner.scan();
    switch (tok.kind) {
      case 'operator': {
        const op = OPERATORS[tok.text];
        // The text is made of `=`, `!` and `~` only, so Go's %q adds nothing but the quotes.
        if (op === undefined) throw this.error(tok.pos, `unsupported operator "${tok.text}"`);
        return op;
      }
      case 'illegal':
        throw this.error(tok.pos, this.scanner.err);
      default:
        throw this.error(tok.pos, 'expected an operator ("=="|"!="|"~=")');
    }
  }

  private value(allowAltQuotes: boolean): string {
    const tok = this.scanner.scan();
    switch (tok.kind) {
      case 'value':
      case 'field':
        return tok.text;
      case 'quoted':
        return this.unquote(tok.pos, tok.text, allowAltQuotes);
      case 'illegal':
        throw this.error(tok.pos, this.scanner.err);
      default:
        throw this.error(tok.pos, 'expected value or quoted');
    }
  }

  /** `/.../` and `|...|` are quotes for regular expressions only; elsewhere only `"..."` is. */
  private unquote(pos: number, literal: string, allowAltQuotes: boolean): string {
    if (!allowAltQuotes && literal[0] !== '"') throw this.error(pos, 'invalid quote encountered');
    try {
      return unquote(literal);
    } catch (err) {
      throw this.error(pos, `unquoting failed: ${(err as Error).message}`);
    }
  }

  private error(pos: number, reason: string): FilterParseError {
    return new FilterParseError(this.input, pos, reason);
  }
}

/**
 * Shows the input with the character at `pos` marked `>|x|<`, as containerd does, or the whole
 * input when the error is at its end. containerd slices one byte at the position; for a
 * non-ASCII character that splits its UTF-8 encoding and every stray byte reaches the client as
 * U+FFFD, so the same replacement characters are produced here.
 */
function markPosition(input: string, pos: number): string {
  if (pos >= input.length) return `[${input}]`;
  const before = input.slice(0, pos);
  const cp = input.codePointAt(pos)!;
  if (cp < 0x80) return `[${before} >|${input[pos]}|< ${input.slice(pos + 1)}]`;
  const units = cp > 0xffff ? 2 : 1;
  const bytes = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  return `[${before} >|\uFFFD|< ${'\uFFFD'.repeat(bytes - 1)}${input.slice(pos + units)}]`;
}

/** Go's `string(rune)`: the character, or U+FFFD for the lexer's illegal pseudo-rune. */
function runeText(rune: number): string {
  return rune < 0 ? '\uFFFD' : String.fromCodePoint(rune);
}

/**
 * Parses a List request's filters the way containerd's Images, Containers, Leases and
 * Introspection services do: as `parseAll`, but a parse error carries the second
 * ": invalid argument" those services add on the wire.
 */
export function parseListFilters(filters: readonly string[]): Filter {
  try {
    return parseAll(filters);
  } catch (err) {
    if (err instanceof FilterParseError) throw new InvalidArgumentError(`${err.message}: invalid argument`, { bare: true, cause: err });
    throw err;
  }
}

/** Returns every selector of a parsed filter (for checks on the fields it names). */
export function selectorsOf(filter: Filter): Selector[] {
  if (filter instanceof Selector) return [filter];
  if (filter instanceof AllOf || filter instanceof AnyOf) return filter.filters.flatMap(selectorsOf);
  return [];
}

/**
 * Refuses selectors on fields an object does not have, so a misspelt filter is an error instead
 * of silently matching nothing (containerd 1.6 answers an empty list). `fields` lists the exact
 * paths (`name`, `target.digest`) and, ending in `.`, the map prefixes (`labels.`).
 */
export function checkFilterFields(filter: Filter, fields: readonly string[]): Filter {
  for (const s of selectorsOf(filter)) {
    const path = s.path.join('.');
    const known = fields.some((f) => (f.endsWith('.') ? path.startsWith(f) && path.length > f.length : path === f));
    if (!known) {
      const allowed = fields.map((f) => (f.endsWith('.') ? `${f}<key>` : f)).join(', ');
      throw new InvalidArgumentError(`filters: unknown field ${JSON.stringify(path)} (fields: ${allowed})`);
    }
  }
  return filter;
}
