export { printJson } from './json';

/** A column of a listing: its heading in a table, and how a row shows in it. */
export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/** How a listing prints: `table` (the default), `json`, or a template such as `{{.ID}} {{.Image}}`. */
export interface ListingFormat {
  format?: string;
  json?: boolean;
  quiet?: boolean;
}

const BORDERLESS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '   ',
};

/** Renders rows as Docker lays out its listings: upper-case headings, columns apart, no borders. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  // Loaded on first use: a command that prints no table never pays for it.
  const Table = require('cli-table3') as typeof import('cli-table3');
  const table = new Table({ head: [...headers], chars: BORDERLESS, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true } });
  for (const r of rows) table.push([...r]);
  // cli-table3 pads the last column too; Docker's listings end at the text.
  return `${table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')}\n`;
}

/**
 * Fills a Go-style template the way `docker --format` does for the simple cases: `{{.Field}}`
 * is the field of the row's JSON form, `{{json .Field}}` or `{{json .}}` its JSON text; `\t` and
 * `\n` are a tab and a newline. A template starting with `table ` prints a heading line first.
 */
export function fillTemplate(template: string, row: Record<string, unknown>): string {
  const text = template.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return text.replace(/\{\{\s*(json\s+)?\.([A-Za-z0-9_]*)\s*\}\}/g, (match, json: string | undefined, field: string) => {
    const v = field === '' ? row : row[field];
    if (json) return JSON.stringify(v ?? null);
    if (v === undefined || v === null) return '';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}

/** Prints a listing in the format asked for; `toJson` gives each row's JSON form. */
export function printListing<T>(out: NodeJS.WritableStream, rows: readonly T[], columns: readonly Column<T>[], toJson: (row: T) => Record<string, unknown>, f: ListingFormat, quietField?: (row: T) => string): void {
  const format = f.json ? 'json' : (f.format ?? 'table');
  if (f.quiet && quietField) {
    for (const r of rows) out.write(`${quietField(r)}\n`);
    return;
  }
  if (format === 'json') {
    out.write(`${JSON.stringify(rows.map(toJson), null, 2)}\n`);
    return;
  }
  if (format === 'table') {
    out.write(
      renderTable(
        columns.map((c) => c.header),
        rows.map((r) => columns.map((c) => c.value(r))),
      ),
    );
    return;
  }
  const table = format.startsWith('table ');
  const template = table ? format.slice('table '.length) : format;
  const lines = rows.map((r) => fillTemplate(template, toJson(r)));
  if (table) {
    const headingRow = Object.fromEntries(Object.keys(rows[0] ? toJson(rows[0]) : {}).map((k) => [k, k.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()]));
    const cells = [fillTemplate(template, headingRow), ...lines].map((l) => l.split('\t'));
    out.write(renderTable(cells[0]!, cells.slice(1)));
    return;
  }
  for (const l of lines) out.write(`${l}\n`);
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Sizes as Docker prints them (decimal units, three significant digits): `4.26MB`. */
export function humanSize(bytes: number): string {
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : Number(v.toPrecision(3))}${UNITS[i]}`;
}

/** Time since `d` as Docker prints it: `3 minutes ago`, `About an hour ago`. */
export function since(d: Date | undefined, now = Date.now()): string {
  if (!d) return '';
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000));
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return `${s} second${s === 1 ? '' : 's'} ago`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? 'About a minute ago' : `${m} minutes ago`;
  const h = Math.round(s / 3600);
  if (h < 48) return h === 1 ? 'About an hour ago' : `${h} hours ago`;
  const days = Math.round(s / 86400);
  if (days < 14) return `${days} days ago`;
  if (days < 60) return `${Math.round(days / 7)} weeks ago`;
  if (days < 730) return `${Math.round(days / 30)} months ago`;
  return `${Math.round(days / 365)} years ago`;
}

/** Splits `KEY=value` pairs (labels, env) into a record; a bare `KEY` has an empty value. */
export function parsePairs(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i === 0) throw new Error(`invalid key=value pair "${p}"`);
    if (i < 0) out[p] = '';
    else out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}
