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

  it('adds containerd2 columns when a figure has containerd2 values, with - where a daemon has none', () => {
    const table = renderTable([
      { name: 'pull', unit: 's', lowerIsBetter: true, berthd: [6, 6], containerd: [10, 10], containerd2: [5, 5] },
      { name: 'pull by ctr 1.6', unit: 's', lowerIsBetter: true, berthd: [9, 9], containerd: [10, 10], containerd2: [] },
    ]);
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^workload\s+unit\s+berthd\s+containerd\s+ratio\s+verdict\s+containerd2\s+ratio c2\s+verdict c2\s+rounds$/);
    expect(lines[1]).toMatch(/^pull\s+s\s+6\.00\s+10\.0\s+0\.60x\s+berthd better\s+5\.00\s+1\.20x\s+containerd2 better\s+2$/);
    expect(lines[2]).toMatch(/^pull by ctr 1\.6\s+s\s+9\.00\s+10\.0\s+0\.90x\s+tie \(±10%\)\s+-\s+-\s+-\s+2$/);
  });

  it('leaves the containerd2 columns out when no figure has containerd2 values', () => {
    const table = renderTable([{ name: 'a', unit: 'ms', lowerIsBetter: true, berthd: [1], containerd: [1], containerd2: [] }]);
    expect(table.split('\n')[0]).toMatch(/^workload\s+unit\s+berthd\s+containerd\s+ratio\s+verdict\s+rounds$/);
  });
});
