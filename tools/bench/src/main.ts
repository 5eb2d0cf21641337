import { parseArgs } from 'node:util';
import { BenchDaemon, startDaemon } from './daemons';
import { Figure, renderTable } from './stats';
import { WORKLOADS } from './workloads';

const USAGE = `usage: npm run bench -- [--rounds R] [--n N] [workload...]

Runs each workload on fresh berthd and containerd daemons (temp roots, private sockets),
interleaved A B A B for R rounds (default 2), and prints the medians and berthd/containerd ratios.
Workloads: ${Object.keys(WORKLOADS).join(', ')} (default: all). N is the object count (default 1000).
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { rounds: { type: 'string' }, n: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
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
    for (let round = 1; round <= rounds; round++) {
      // Alternate which daemon goes first so that neither always gets the warmer machine.
      const order: Array<BenchDaemon['kind']> = round % 2 ? ['berthd', 'containerd'] : ['containerd', 'berthd'];
      for (const kind of order) {
        const d = await startDaemon(kind);
        try {
          const result = await w.run(d, n);
          for (const [figure, value] of Object.entries(result)) {
            const f = figures.get(figure) ?? { name: figure, unit: figure.includes('total ms') ? 'ms' : figure.includes('%') ? '%' : figure.includes('(MiB)') ? 'MiB' : w.unit, lowerIsBetter: w.lowerIsBetter, berthd: [], containerd: [] };
            f[kind].push(value);
            figures.set(figure, f);
          }
          process.stderr.write(`round ${round} ${kind} ${name}: ${Object.entries(result).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(' ')}\n`);
        } finally {
          await d.cleanup();
        }
      }
    }
  }
  process.stdout.write(`\n${renderTable([...figures.values()])}\n\nratio = berthd / containerd (median of ${rounds} interleaved rounds); within ±10% is a tie.\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
