import { runSoak } from './soak';

/**
 * The soak's short version (the full one is `soak-main`, see README.md): 40 s of 16 clients of
 * mixed work against a real berthd, then the properties of the long run with loose bounds for a
 * loaded 2-core machine. A small event queue and a steady stream of 4 KiB events make the stalled
 * subscribers overflow in time, however few operations the machine gets through.
 */
describe('soak (short)', () => {
  jest.setTimeout(120_000);

  it('serves 40 s of mixed load with no fd, mount or shim growth, bounded RSS and Version latency', async () => {
    const lines: string[] = [];
    const r = await runSoak({ durationMs: 40_000, clients: 16, thinkMs: 250, rowMs: 5_000, stallMs: 15_000, eventQueueLimit: 64, fillerEventsPerSecond: 20, log: (l) => lines.push(l) });
    const summary = lines.join('\n');
    expect([r.errors, r.errorSamples]).toEqual([{}, []]);
    expect(r.ops).toMatchObject({ publish: expect.any(Number), ingest: expect.any(Number), list: expect.any(Number), container: expect.any(Number), task: expect.any(Number), subscribe: expect.any(Number) });
    // Idle after as before: every connection, blob, mount and shim the load used is gone.
    expect({ fds: r.after.fds <= r.before.fds, mounts: r.after.mounts, shims: r.after.shims, summary }).toEqual({ fds: true, mounts: r.before.mounts, shims: 0, summary });
    expect(r.rssGrowth).toBeLessThan(0.5);
    expect(r.versionP99).toBeLessThan(1_000);
    // Subscribers that stopped reading were cut off, and the count is in the daemon's log.
    expect(r.events.stalledSubscribers).toBeGreaterThan(0);
    expect(r.events.disconnected).toBeGreaterThan(0);
    expect(r.events.dropped).toBeGreaterThan(r.events.disconnected);
  });
});
