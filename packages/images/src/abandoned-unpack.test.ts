import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CTR_PATH, TestDaemon, tempDir } from '@berth/testing';
// tools/ packages are not in jest's @berth/* source mapping (it covers packages/ only).
import { buildManyFilesImage } from '../../../tools/fixtures/src';

/**
 * An unpack whose client goes away: ctr 1.6 (client-side unpack) holds the Active extract
 * snapshot with a lease that lasts 24 hours, so a killed ctr used to leave both behind.
 */
describe('an unpack whose client was killed', () => {
  let d: TestDaemon;
  let work: { path: string; remove(): void };
  beforeAll(async () => {
    work = tempDir('berth-abandoned-');
    d = await TestDaemon.start({ logLevel: 'info' });
  });
  afterAll(async () => {
    await d?.cleanup();
    work?.remove();
  });

  const lines = async (args: string[], ns: string) => (await d.ctr(args, { namespace: ns })).stdout.trim().split('\n').slice(1).filter((l) => l !== '');

  it('has its extract snapshot and lease removed within 30 s, and the next import unpacks', async () => {
    const ns = 'abandoned';
    // 40,000 files: seconds of extraction, time enough to kill ctr while Diff.Apply waits on it.
    const tar = await buildManyFilesImage(join(work.path, 'fixtures'), 40_000);
    const ctr = spawn(CTR_PATH, ['--address', d.address, '--namespace', ns, 'images', 'import', tar], { stdio: 'ignore' });
    const exited = new Promise((resolve) => ctr.once('exit', resolve));
    try {
      const deadline = Date.now() + 60_000;
      while (!(await lines(['snapshots', 'ls'], ns)).some((l) => /^extract-\S+ .*Active$/.test(l))) {
        if (Date.now() > deadline) throw new Error('no extract snapshot appeared');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await lines(['leases', 'ls'], ns)).toHaveLength(1);
    } finally {
      ctr.kill('SIGKILL');
      await exited;
    }
    const killedAt = Date.now();
    for (;;) {
      const [snapshots, leases] = await Promise.all([lines(['snapshots', 'ls'], ns), lines(['leases', 'ls'], ns)]);
      if (snapshots.length === 0 && leases.length === 0) break;
      if (Date.now() - killedAt > 30_000) throw new Error(`still there after 30 s:\n${snapshots.join('\n')}\n${leases.join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // The apply was cut short (not finished before the kill): its lease went because its client did.
    expect(d.output).toMatch(/msg="lease of an abandoned apply removed" .*namespace=abandoned lease=\S+/);
    expect((await d.ctr(['images', 'import', tar], { namespace: ns, timeoutMs: 120_000 })).code).toBe(0);
    expect(await lines(['snapshots', 'ls'], ns)).toEqual([expect.stringMatching(/^sha256:[0-9a-f]{64}\s+Committed$/)]);
  }, 180_000);
});
