import { median, renderTable } from './stats';

describe('bench stats', () => {
  it.each([
    [[3], 3],
    [[5, 1, 3], 3],
    [[4, 1, 3, 2], 2.5],
  ])('median of %p is %p', (xs, m) => expect(median(xs)).toBe(m));

  it('calls ratios within ±10% a tie and names the better daemon otherwise', () => {
    const table = renderTable([
      { name: 'a', unit: 'ms', lowerIsBetter: true, berthd: [10, 10], containerd: [10.5, 10.5] },
      { name: 'b', unit: 'ms', lowerIsBetter: true, berthd: [5], containerd: [10] },
      { name: 'c', unit: 'MiB', lowerIsBetter: true, berthd: [60], containerd: [30] },
    ]);
    const lines = table.split('\n');
    expect(lines[1]).toMatch(/^a\s+ms\s+10\.0\s+10\.5\s+0\.95x\s+tie \(±10%\)\s+2$/);
    expect(lines[2]).toMatch(/0\.50x\s+berthd better/);
    expect(lines[3]).toMatch(/2\.00x\s+containerd better/);
  });
});
