/**
 * The script's core with a narrow focus ("Runtime info" and "Image Manager": no pod runs), so
 * that CI covers the whole path (registry, images, hosts.toml, both daemons, junit, table) in
 * seconds.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMountPoint, unmountAll } from '@berth/mount';
import { CONTAINERD_PATH, CRITEST_PATH } from '@berth/testing';
import { runConformance } from './conformance';
import { formatTable } from './table';

jest.setTimeout(180_000);

const run = CONTAINERD_PATH && CRITEST_PATH && existsSync(CRITEST_PATH) ? describe : describe.skip;

run('cri-conformance with --focus "Runtime info|Image Manager"', () => {
  it('runs critest on containerd 1.6 and berthd, and berthd passes every spec containerd passes', async () => {
    const lines: string[] = [];
    const { containerd, berthd, comparison } = await runConformance({ focus: 'Runtime info|Image Manager', timeoutMs: 120_000, log: (l) => lines.push(l) });
    const table = formatTable(comparison);
    expect(containerd?.killed || berthd?.killed).toBe(false);
    const ran = comparison.rows.filter((r) => r.containerd !== 'skipped');
    expect(ran.length).toBeGreaterThanOrEqual(8);
    expect(ran.every((r) => /Runtime info|Image Manager/.test(r.name))).toBe(true);
    expect({ regressions: comparison.regressions, table: comparison.regressions.length ? table : '' }).toEqual({ regressions: [], table: '' });
    expect(table).toMatch(/^critest: \d+ specs: \d+ pass on both, 0 pass on containerd 1\.6 only \(regressions\)/m);
    expect(lines).toEqual(expect.arrayContaining(['cleaning up']));
  });

  it('runs against containerd 1.6 only with daemons: [containerd]', async () => {
    const { containerd, berthd, comparison } = await runConformance({ daemons: ['containerd'], focus: 'Runtime info', timeoutMs: 120_000 });
    expect(berthd).toBeUndefined();
    expect(comparison.ran).toEqual({ containerd: true, berthd: false });
    const ran = comparison.rows.filter((r) => r.containerd !== 'skipped');
    expect(ran.map((r) => [r.containerd, r.berthd])).toEqual([
      ['passed', 'not run'],
      ['passed', 'not run'],
    ]);
    expect(containerd?.specs.length).toBeGreaterThan(100);
    expect(formatTable(comparison)).toMatch(/^critest on containerd 1\.6: \d+ specs: 2 passed, 0 failed, \d+ skipped$/m);
  });

  // Another test's daemon mounts under the temp directory while critest runs (a pod's network
  // namespace, its /dev/shm, a rootfs): the cleanup after critest leaves those alone, and takes
  // only what critest's specs left in the temp directory critest was given.
  it('leaves alone what others mount under the temp directory while critest runs', async () => {
    const other = mkdtempSync(join(tmpdir(), 'berth-conformance-other-'));
    let mounted = false;
    try {
      await runConformance({
        daemons: ['berthd'],
        focus: 'Runtime info',
        timeoutMs: 120_000,
        onOutput: () => {
          if (mounted) return;
          mounted = true;
          execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', other]);
        },
      });
      expect({ mounted, stillMounted: isMountPoint(other) }).toEqual({ mounted: true, stillMounted: true });
    } finally {
      await unmountAll(other, { lazyFallback: true });
      rmdirSync(other);
    }
  });

  it('stops critest and cleans up when aborted', async () => {
    const abort = new AbortController();
    const started = Date.now();
    const done = runConformance({ focus: 'Image Manager', signal: abort.signal, onOutput: () => abort.abort() });
    await expect(done).rejects.toThrow(/aborted/i);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
