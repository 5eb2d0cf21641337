import { runKillPoints } from './kill-points';

/**
 * `node tools/reliability/dist/kill-points-main.js [--seed S] [--points N]`: kills berthd with
 * SIGKILL at N random moments (default 100) chosen from the seed (default: the time), and checks
 * the daemon's state after each restart. Exits 1 when any check failed.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, def: number) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const r = await runKillPoints({ seed: flag('seed', Date.now() % 1_000_000), points: flag('points', 100) });
  process.exitCode = r.failures.length ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
