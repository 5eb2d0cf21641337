/** Returns the median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** One figure measured for each daemon over several rounds. */
export interface Figure {
  name: string;
  unit: string;
  /** True when a smaller value is better (times, memory). */
  lowerIsBetter: boolean;
  berthd: number[];
  /** containerd 1.6 (Debian's). */
  containerd: number[];
  /** containerd 2.x, for the workloads that run on it too. */
  containerd2?: number[];
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/** The median (or '-' when there is none), the ratio berthd/other and its verdict. */
function compare(f: Figure, other: readonly number[] | undefined, otherName: string): [string, string, string] {
  if (!other?.length) return ['-', '-', '-'];
  const c = median(other);
  if (f.berthd.length === 0) return [fmt(c), '-', '-'];
  const ratio = c === 0 ? NaN : median(f.berthd) / c;
  if (!Number.isFinite(ratio)) return [fmt(c), '-', '-'];
  const better = f.lowerIsBetter ? ratio < 1 : ratio > 1;
  const verdict = Math.abs(ratio - 1) <= 0.1 ? 'tie (±10%)' : better ? 'berthd better' : `${otherName} better`;
  return [fmt(c), `${ratio.toFixed(2)}x`, verdict];
}

/**
 * Renders figures as a table of medians with the ratio berthd/containerd. Containerd against
 * itself spreads about ±10% on these machines, so a ratio inside that band is called a tie.
 * When some figure has containerd 2.x values, three more columns give its median, the ratio
 * berthd/containerd2 and that verdict ('-' where a daemon has no value for a figure).
 */
export function renderTable(figures: readonly Figure[]): string {
  const withC2 = figures.some((f) => f.containerd2?.length);
  const head = ['workload', 'unit', 'berthd', 'containerd', 'ratio', 'verdict'];
  const rows = [withC2 ? [...head, 'containerd2', 'ratio c2', 'verdict c2', 'rounds'] : [...head, 'rounds']];
  for (const f of figures) {
    const b = f.berthd.length ? fmt(median(f.berthd)) : '-';
    const c2 = withC2 ? compare(f, f.containerd2, 'containerd2') : [];
    rows.push([f.name, f.unit, b, ...compare(f, f.containerd, 'containerd'), ...c2, String(f.berthd.length)]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}
