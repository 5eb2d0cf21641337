import { runSoak } from './soak';

/**
 * `node tools/reliability/dist/soak-main.js [--minutes M] [--clients N] [--seed S] [--daemon containerd]`:
 * the soak against a fresh berthd (default 10 minutes, 64 clients), or the same load against
 * containerd 1.6 for comparison. Exits 1 when a bound of the issue is
 * broken: RSS after warm-up +10%, fd or mount growth, a shim left, Version p99 over 50 ms, errors.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, def: number) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const d = args.indexOf('--daemon');
  const daemon = d >= 0 ? args[d + 1] : 'berthd';
  if (daemon !== 'berthd' && daemon !== 'containerd') throw new Error(`--daemon: berthd or containerd, not ${daemon}`);
  const r = await runSoak({ durationMs: flag('minutes', 10) * 60_000, clients: flag('clients', 64), seed: flag('seed', 1), daemon });
  const broken = [
    r.rssGrowth > 0.1 && `RSS grew ${(r.rssGrowth * 100).toFixed(1)}% after warm-up`,
    r.after.fds > r.before.fds && `fds grew from ${r.before.fds} to ${r.after.fds}`,
    r.after.mounts > r.before.mounts && `mounts grew from ${r.before.mounts} to ${r.after.mounts}`,
    r.after.shims > 0 && `${r.after.shims} shims left`,
    r.versionWorstSecondP99 > 50 && `Version p99 reached ${r.versionWorstSecondP99.toFixed(1)} ms in one second`,
    Object.keys(r.errors).length > 0 && 'operations failed',
  ].filter(Boolean);
  for (const b of broken) console.log(`FAIL: ${b}`);
  if (broken.length === 0) console.log('PASS');
  process.exitCode = broken.length ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
