import { parseArgs } from 'node:util';
import { REFERENCE_CONTAINERD2_VERSION } from '@berth/testing';
import { DaemonKind, startDaemon } from './daemons';
import { Figure, renderTable } from './stats';
import { WORKLOADS } from './workloads';

const USAGE = `usage: npm run bench -- [--rounds R] [--n N] [--profile DIR] [workload...]

Runs each workload on fresh berthd and containerd daemons (temp roots, private sockets),
interleaved A B A B for R rounds (default 2), and prints the medians and berthd/containerd ratios.
The pull and push workloads also run on containerd 2.x (rotated: A B C, B C A, C A B...).
Workloads: ${Object.keys(WORKLOADS).join(', ')} (default: all). N is the object count (default 1000).
With --profile, every berthd writes a V8 CPU profile into DIR when it stops (open it in Chrome's
DevTools or speedscope); its figures then include the profiler's cost.
`;

/** What the workloads of this run release at the end (a shared registry), even after a failure. */
const teardowns = new Set<() => Promise<void>>();

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { rounds: { type: 'string' }, n: { type: 'string' }, profile: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const rounds = Number(values.rounds ?? 2);
  const n = Number(values.n ?? 1000);
  const names = positionals.length > 0 ? positionals : Object.keys(WORKLOADS);
  for (const name of names) if (!WORKLOADS[name]) throw new Error(`unknown workload "${name}"\n${USAGE}`);

  const figures = new Map<string, Figure>();
  for (const name of names) {
    const w = WORKLOADS[name];
    if (w.teardown) teardowns.add(w.teardown);
    const daemons = w.daemons ?? ['berthd', 'containerd'];
    const setup = { ...(w.setup ? await w.setup() : {}), ...(values.profile ? { profileDir: values.profile } : {}) };
    for (let round = 1; round <= rounds; round++) {
      // Rotate which daemon goes first so that none always gets the warmer machine.
      const shift = (round - 1) % daemons.length;
      const order: DaemonKind[] = [...daemons.slice(shift), ...daemons.slice(0, shift)];
      for (const kind of order) {
        const d = await startDaemon(kind, setup);
        let failed = false;
        try {
          const result = await w.run(d, n);
          for (const [figure, value] of Object.entries(result)) {
            const cpuFigure = figure.startsWith('daemon CPU ms');
            const f = figures.get(figure) ?? { name: figure, unit: cpuFigure || figure.includes('total ms') ? 'ms' : figure.includes('%') ? '%' : figure.includes('(MiB)') ? 'MiB' : w.unit, lowerIsBetter: cpuFigure || w.lowerIsBetter, berthd: [], containerd: [], containerd2: [] };
            f[kind]!.push(value);
            figures.set(figure, f);
          }
          process.stderr.write(`round ${round} ${kind} ${name}: ${Object.entries(result).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(' ')}\n`);
        } catch (err) {
          failed = true;
          throw err;
        } finally {
          // A cleanup that fails after a failed round must not hide the round's own error.
          await d.cleanup().catch((err: Error) => {
            if (!failed) throw err;
            process.stderr.write(`bench: cleanup after the failed round: ${err.message}\n`);
          });
        }
      }
    }
  }
  const c2 = [...figures.values()].some((f) => f.containerd2?.length) ? `, ratio c2 = berthd / containerd ${REFERENCE_CONTAINERD2_VERSION ?? '2.x'}` : '';
  process.stdout.write(`\n${renderTable([...figures.values()])}\n\nratio = berthd / containerd 1.6${c2} (median of ${rounds} interleaved rounds); within ±10% is a tie.\n`);
  return 0;
}

main(process.argv.slice(2))
  .finally(async () => {
    for (const teardown of teardowns) await teardown();
  })
  .then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`bench: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
