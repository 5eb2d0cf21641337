import { runKillPoints } from './kill-points';

/**
 * The kill points' short version (the full 100 are `kill-points-main`, see README.md): a fixed
 * seed, eight SIGKILLs across ingest, commit, unpack, container create and task start, with every
 * check after each restart.
 */
describe('kill points (short)', () => {
  jest.setTimeout(150_000);

  it('keeps every acknowledged write, leaves nothing half there and nothing running after eight SIGKILLs', async () => {
    const lines: string[] = [];
    const r = await runKillPoints({ seed: 18, points: 8, log: (l) => lines.push(l) });
    expect({ failures: r.failures, log: lines.join('\n') }).toEqual({ failures: [], log: lines.join('\n') });
    expect(Object.values(r.rounds).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(16);
    expect(r.checked.blobs).toBeGreaterThan(0);
    expect(r.checked.images).toBeGreaterThan(0);
    // Each kind of operation was under way at some kill; writes were acknowledged and checked.
    for (const n of Object.values(r.rounds)) expect(n).toBeGreaterThan(0);
    expect(r.acked.commits + r.acked.containers).toBeGreaterThan(0);
    expect(r.resumed.fromOffset).toBeGreaterThan(0);
  });
});
