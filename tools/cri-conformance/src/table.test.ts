import type { SpecResult } from '@berth/testing';
import { compare, formatTable } from './table';

const spec = (name: string, outcome: SpecResult['outcome']): SpecResult => ({ name: `[It] [k8s.io] ${name}`, outcome });

describe('compare', () => {
  const containerd = [spec('a passes on both', 'passed'), spec('b regression', 'passed'), spec('c fails on both', 'failed'), spec('d berthd only', 'failed'), spec('e skipped', 'skipped'), spec('f missing on berthd', 'passed')];
  const berthd = [spec('a passes on both', 'passed'), spec('b regression', 'failed'), spec('c fails on both', 'failed'), spec('d berthd only', 'passed'), spec('e skipped', 'skipped')];
  const cmp = compare(containerd, berthd);

  it('sorts regressions first, then fails on both, berthd-only passes, passes on both, skipped', () => {
    expect(cmp.rows.map((r) => [r.name.replace('[It] [k8s.io] ', ''), r.containerd, r.berthd])).toEqual([
      ['b regression', 'passed', 'failed'],
      ['f missing on berthd', 'passed', 'missing'],
      ['c fails on both', 'failed', 'failed'],
      ['d berthd only', 'failed', 'passed'],
      ['a passes on both', 'passed', 'passed'],
      ['e skipped', 'skipped', 'skipped'],
    ]);
    expect(cmp.regressions).toEqual(['[It] [k8s.io] b regression', '[It] [k8s.io] f missing on berthd']);
    expect(cmp.counts).toEqual({ specs: 6, regressions: 2, bothFail: 1, berthdOnly: 1, bothPass: 1, skipped: 1 });
  });

  it('prints one row per spec run on either daemon and the summary line', () => {
    expect(formatTable(cmp).split('\n')).toEqual([
      'containerd 1.6 berthd   spec',
      'passed         failed   b regression',
      'passed         missing  f missing on berthd',
      'failed         failed   c fails on both',
      'failed         passed   d berthd only',
      'passed         passed   a passes on both',
      '(1 specs skipped on both are not listed)',
      '',
      'critest: 6 specs: 1 pass on both, 2 pass on containerd 1.6 only (regressions), 1 pass on berthd only, 1 fail on both, 1 skipped',
    ]);
  });
});

describe('one daemon (--daemon)', () => {
  const containerd = [spec('a passes', 'passed'), spec('b fails', 'failed'), spec('c skipped', 'skipped')];

  it('has a column for the daemon that ran only, no regressions, and that run\'s counts', () => {
    const cmp = compare(containerd, undefined);
    expect(cmp.ran).toEqual({ containerd: true, berthd: false });
    expect(cmp.regressions).toEqual([]);
    expect(cmp.rows.map((r) => [r.name.replace('[It] [k8s.io] ', ''), r.containerd, r.berthd])).toEqual([
      ['b fails', 'failed', 'not run'],
      ['a passes', 'passed', 'not run'],
      ['c skipped', 'skipped', 'not run'],
    ]);
    expect(formatTable(cmp).split('\n')).toEqual([
      'containerd 1.6 spec',
      'failed         b fails',
      'passed         a passes',
      '(1 specs skipped are not listed)',
      '',
      'critest on containerd 1.6: 3 specs: 1 passed, 1 failed, 1 skipped',
    ]);
  });

  it('works for berthd alone too', () => {
    const cmp = compare(undefined, containerd);
    expect(formatTable(cmp).split('\n')).toEqual([
      'berthd   spec',
      'failed   b fails',
      'passed   a passes',
      '(1 specs skipped are not listed)',
      '',
      'critest on berthd: 3 specs: 1 passed, 1 failed, 1 skipped',
    ]);
  });
});

describe('--explain', () => {
  const stop = 'Idempotence StopContainer should not return an error if not found';
  const identifier = 'Image Identifier Consistency should return the same image identifier across all APIs [Conformance] [Serial]';
  const containerd: SpecResult[] = [
    { ...spec(stop, 'failed'), message: 'Unexpected error:\n    rpc error: code = NotFound' },
    { ...spec('new trouble', 'failed'), message: '\nExpected\n    <string>: x\nto be empty' },
    { ...spec(identifier, 'skipped'), message: 'skipped - ContainerStatus.image_id is empty' },
    spec('other skip', 'skipped'),
    spec('fine', 'passed'),
  ];
  const berthd = [spec(stop, 'passed'), spec('new trouble', 'failed'), spec(identifier, 'failed'), spec('other skip', 'failed'), spec('fine', 'passed')];

  it('puts the known cause, or "unexplained" and the first line of the message, under each spec failing or skipped on containerd 1.6', () => {
    const lines = formatTable(compare(containerd, berthd), { explain: true }).split('\n');
    const under = (name: string) => lines[lines.findIndex((l) => l.endsWith(name)) + 1];
    expect(under(stop)).toMatch(/^ {15}why \(containerd 1\.6\): StopContainer of an unknown id answers NotFound/);
    expect(under('new trouble')).toBe(`${' '.repeat(15)}unexplained on containerd 1.6: Expected`);
    expect(under(identifier)).toMatch(/^ {15}why \(containerd 1\.6\): the spec skips itself when ContainerStatus\.image_id is empty/);
    // A skip with no known cause says nothing.
    expect(under('other skip')).not.toMatch(/why|unexplained/);
    expect(lines.at(-1)).toBe('failing on containerd 1.6: 2: 1 explained (containerd 1.6 1), 1 unexplained');
  });

  it('adds nothing without the option', () => {
    expect(formatTable(compare(containerd, berthd))).not.toMatch(/why|unexplained/);
  });
});
