import type { SpecResult } from '@berth/testing';
import { knownCause } from './known-causes';

/**
 * A spec's outcome on one daemon; `missing` when its run did not report the spec, `not run` when
 * the daemon was left out (`--daemon`).
 */
export type Outcome = SpecResult['outcome'] | 'missing' | 'not run';

/** One row of the table. */
export interface Row {
  name: string;
  containerd: Outcome;
  berthd: Outcome;
  /** ginkgo's message for the spec on containerd 1.6 when it failed or skipped there. */
  containerdMessage?: string;
}

/** The comparison of two runs. */
export interface Comparison {
  rows: Row[];
  /** The daemons that ran (columns of the table). */
  ran: { containerd: boolean; berthd: boolean };
  /** Specs that pass on containerd 1.6 but not on berthd. */
  regressions: string[];
  counts: { specs: number; bothPass: number; regressions: number; berthdOnly: number; bothFail: number; skipped: number };
}

/** Whether a row is a regression: passes on containerd, does not on berthd (which ran). */
const isRegression = (r: Row) => r.containerd === 'passed' && r.berthd !== 'passed' && r.berthd !== 'not run';

const fails = (o: Outcome) => o === 'failed' || o === 'missing';
const passes = (o: Outcome) => o === 'passed';

/**
 * Sort rank: regressions first, then failing on both (or on the one daemon run), berthd-only
 * passes, passes on both (or on the one run), skipped.
 */
function rank(r: Row): number {
  if (isRegression(r)) return 0;
  const failsOn = (o: Outcome) => fails(o) || o === 'not run';
  if ((fails(r.containerd) || fails(r.berthd)) && failsOn(r.containerd) && failsOn(r.berthd)) return 1;
  if (passes(r.berthd) && !passes(r.containerd) && r.containerd !== 'not run') return 2;
  if (passes(r.berthd) || passes(r.containerd)) return 3;
  return 4;
}

/**
 * Joins the runs spec by spec and sorts regressions first (then by name). A run left out
 * (undefined) gives `not run` in its column and no regressions.
 */
export function compare(containerd: SpecResult[] | undefined, berthd: SpecResult[] | undefined): Comparison {
  const c = new Map((containerd ?? []).map((s) => [s.name, s.outcome]));
  const messages = new Map((containerd ?? []).map((s) => [s.name, s.message]));
  const b = new Map((berthd ?? []).map((s) => [s.name, s.outcome]));
  const outcome = (run: SpecResult[] | undefined, m: Map<string, SpecResult['outcome']>, name: string): Outcome => (run ? (m.get(name) ?? 'missing') : 'not run');
  const names = [...new Set([...c.keys(), ...b.keys()])];
  const rows: Row[] = names
    .map((name) => {
      const message = messages.get(name);
      return { name, containerd: outcome(containerd, c, name), berthd: outcome(berthd, b, name), ...(message ? { containerdMessage: message } : {}) };
    })
    .sort((x, y) => rank(x) - rank(y) || x.name.localeCompare(y.name));
  const count = (k: number) => rows.filter((r) => rank(r) === k).length;
  const regressions = rows.filter(isRegression).map((r) => r.name);
  return {
    rows,
    ran: { containerd: !!containerd, berthd: !!berthd },
    regressions,
    counts: { specs: rows.length, regressions: count(0), bothFail: count(1), berthdOnly: count(2), bothPass: count(3), skipped: count(4) },
  };
}

/** Drops ginkgo's `[It] [k8s.io] ` prefix. */
const shortName = (name: string) => name.replace(/^\[It\] /, '').replace(/^\[k8s\.io\] /, '');

/** Options of {@link formatTable}. */
export interface FormatOptions {
  /**
   * Under each spec that fails or skips on containerd 1.6, its known cause (known-causes.ts), or
   * for a failure with none, `unexplained` and the first line of ginkgo's message; and a line
   * that counts them.
   */
  explain?: boolean;
}

const INDENT = ' '.repeat(15);

/** The explanation line of a row, or undefined when there is nothing to say. */
function explanation(r: Row): string | undefined {
  if (r.containerd !== 'failed' && r.containerd !== 'skipped') return undefined;
  const cause = knownCause(r.name, r.containerd);
  if (cause) return `${INDENT}why (${cause.kind}): ${cause.why}`;
  if (r.containerd === 'skipped') return undefined;
  const first = (r.containerdMessage ?? '').split('\n').find((l) => l.trim()) ?? 'no message';
  return `${INDENT}unexplained on containerd 1.6: ${first.trim()}`;
}

/**
 * The table as text: a column per daemon that ran (containerd 1.6, berthd), the spec (specs
 * skipped everywhere, which a focus leaves out, are counted but not listed); then the summary line.
 */
export function formatTable(cmp: Comparison, options: FormatOptions = {}): string {
  const columns = ([['containerd', 'containerd 1.6', 15], ['berthd', 'berthd', 9]] as const).filter(([d]) => cmp.ran[d]);
  const lines = [`${columns.map(([, title, width]) => title.padEnd(width)).join('')}spec`];
  const shown = cmp.rows.filter((r) => columns.some(([d]) => r[d] !== 'skipped'));
  for (const r of shown) {
    lines.push(`${columns.map(([d, , width]) => r[d].padEnd(width)).join('')}${shortName(r.name)}`);
    const why = options.explain && cmp.ran.containerd ? explanation(r) : undefined;
    if (why) lines.push(why);
  }
  const hidden = cmp.rows.length - shown.length;
  if (hidden > 0) lines.push(`(${hidden} specs skipped ${columns.length > 1 ? 'on both ' : ''}are not listed)`);
  lines.push('', summaryLine(cmp));
  if (options.explain && cmp.ran.containerd) lines.push(causesLine(cmp));
  return lines.join('\n');
}

/** How many specs fail on containerd 1.6, by known cause, and how many have none. */
export function causesLine(cmp: Comparison): string {
  const failed = cmp.rows.filter((r) => r.containerd === 'failed');
  const kinds = new Map<string, number>();
  let unexplained = 0;
  for (const r of failed) {
    const kind = knownCause(r.name, 'failed')?.kind;
    if (kind) kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    else unexplained++;
  }
  const by = [...kinds].map(([k, n]) => `${k} ${n}`).join(', ');
  return `failing on containerd 1.6: ${failed.length}: ${failed.length - unexplained} explained${by ? ` (${by})` : ''}, ${unexplained} unexplained`;
}

/** One line with the counts: the comparison's, or one run's when only one daemon ran. */
export function summaryLine(cmp: Comparison): string {
  const k = cmp.counts;
  if (!cmp.ran.containerd || !cmp.ran.berthd) {
    const daemon = cmp.ran.containerd ? 'containerd' : 'berthd';
    const n = (o: Outcome) => cmp.rows.filter((r) => r[daemon] === o).length;
    return `critest on ${daemon === 'containerd' ? 'containerd 1.6' : 'berthd'}: ${k.specs} specs: ${n('passed')} passed, ${n('failed')} failed, ${n('skipped')} skipped`;
  }
  return (
    `critest: ${k.specs} specs: ${k.bothPass} pass on both, ${k.regressions} pass on containerd 1.6 only (regressions), ` +
    `${k.berthdOnly} pass on berthd only, ${k.bothFail} fail on both, ${k.skipped} skipped`
  );
}
