import type { SpecResult } from '@berth/testing';

/** A spec's outcome on one daemon; `missing` when its run did not report the spec. */
export type Outcome = SpecResult['outcome'] | 'missing';

/** One row of the table. */
export interface Row {
  name: string;
  containerd: Outcome;
  berthd: Outcome;
}

/** The comparison of two runs. */
export interface Comparison {
  rows: Row[];
  /** Specs that pass on containerd 1.6 but not on berthd. */
  regressions: string[];
  counts: { specs: number; bothPass: number; regressions: number; berthdOnly: number; bothFail: number; skipped: number };
}

/** Whether a row is a regression: passes on containerd, does not on berthd. */
const isRegression = (r: Row) => r.containerd === 'passed' && r.berthd !== 'passed';

/** Sort rank: regressions first, then both failing, berthd-only passes, passes on both, skipped. */
function rank(r: Row): number {
  if (isRegression(r)) return 0;
  if (r.containerd !== 'passed' && r.containerd !== 'skipped' && r.berthd !== 'passed' && r.berthd !== 'skipped') return 1;
  if (r.berthd === 'passed' && r.containerd !== 'passed') return 2;
  if (r.berthd === 'passed') return 3;
  return 4;
}

/** Joins the two runs spec by spec and sorts regressions first (then by name). */
export function compare(containerd: SpecResult[], berthd: SpecResult[]): Comparison {
  const c = new Map(containerd.map((s) => [s.name, s.outcome]));
  const b = new Map(berthd.map((s) => [s.name, s.outcome]));
  const names = [...new Set([...c.keys(), ...b.keys()])];
  const rows: Row[] = names
    .map((name) => ({ name, containerd: c.get(name) ?? ('missing' as const), berthd: b.get(name) ?? ('missing' as const) }))
    .sort((x, y) => rank(x) - rank(y) || x.name.localeCompare(y.name));
  const count = (k: number) => rows.filter((r) => rank(r) === k).length;
  const regressions = rows.filter(isRegression).map((r) => r.name);
  return {
    rows,
    regressions,
    counts: { specs: rows.length, regressions: count(0), bothFail: count(1), berthdOnly: count(2), bothPass: count(3), skipped: count(4) },
  };
}

/** Drops ginkgo's `[It] [k8s.io] ` prefix. */
const shortName = (name: string) => name.replace(/^\[It\] /, '').replace(/^\[k8s\.io\] /, '');

/**
 * The table as text: containerd 1.6, berthd, spec (specs skipped on both, which a focus leaves
 * out, are counted but not listed); then the summary line.
 */
export function formatTable(cmp: Comparison): string {
  const lines = [`${'containerd 1.6'.padEnd(15)}${'berthd'.padEnd(9)}spec`];
  const listed = cmp.rows.filter((r) => r.containerd !== 'skipped' || r.berthd !== 'skipped');
  for (const r of listed) lines.push(`${r.containerd.padEnd(15)}${r.berthd.padEnd(9)}${shortName(r.name)}`);
  const hidden = cmp.rows.length - listed.length;
  if (hidden > 0) lines.push(`(${hidden} specs skipped on both are not listed)`);
  lines.push('', summaryLine(cmp));
  return lines.join('\n');
}

/** One line with the counts. */
export function summaryLine(cmp: Comparison): string {
  const k = cmp.counts;
  return (
    `critest: ${k.specs} specs: ${k.bothPass} pass on both, ${k.regressions} pass on containerd 1.6 only (regressions), ` +
    `${k.berthdOnly} pass on berthd only, ${k.bothFail} fail on both, ${k.skipped} skipped`
  );
}
