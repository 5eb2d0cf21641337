/** Returns the median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** One figure measured for both daemons over several rounds. */
export interface Figure {
  name: string;
  unit: string;
  /** True when a smaller value is better (times, memory). */
  lowerIsBetter: boolean;
  berthd: number[];
  containerd: number[];
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/**
 * Renders figures as a table of medians with the ratio berthd/containerd. Containerd against
 * itself spreads about ±10% on these machines, so a ratio inside that band is called a tie.
 */
export function renderTable(figures: readonly Figure[]): string {
  const rows = [['workload', 'unit', 'berthd', 'containerd', 'ratio', 'verdict', 'rounds']];
  for (const f of figures) {
    const b = median(f.berthd);
    const c = median(f.containerd);
    const ratio = c === 0 ? NaN : b / c;
    const better = f.lowerIsBetter ? ratio < 1 : ratio > 1;
    const verdict = !Number.isFinite(ratio) ? '-' : Math.abs(ratio - 1) <= 0.1 ? 'tie (±10%)' : better ? 'berthd better' : 'containerd better';
    rows.push([f.name, f.unit, fmt(b), fmt(c), Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-', verdict, String(f.berthd.length)]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}
