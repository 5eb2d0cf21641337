#!/usr/bin/env node
/**
 * node tools/cri-conformance/dist/main.js [--daemon containerd|berthd] [--focus REGEX] [--skip REGEX] [--parallel N] [--timeout SECONDS] [--explain] [--verbose]
 *
 * Runs critest v1.37 against containerd 1.6.20's CRI plugin and against berthd with the same
 * images and config, prints one table (regressions first) and a summary line. Exits 1 when berthd
 * fails a spec that containerd 1.6 passes (or a run gave no report), 2 on bad usage, 130 on Ctrl-C.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Daemon, runConformance } from './conformance';
import { formatTable } from './table';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        daemon: { type: 'string' },
        focus: { type: 'string' },
        skip: { type: 'string' },
        parallel: { type: 'string' },
        timeout: { type: 'string' },
        explain: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write('usage: node tools/cri-conformance/dist/main.js [--daemon containerd|berthd] [--focus REGEX] [--skip REGEX] [--parallel N] [--timeout SECONDS] [--explain] [--verbose]\n');
    return 0;
  }
  if (values.daemon !== undefined && values.daemon !== 'containerd' && values.daemon !== 'berthd') {
    process.stderr.write('--daemon takes containerd or berthd (default: both)\n');
    return 2;
  }
  const daemons: Daemon[] | undefined = values.daemon ? [values.daemon] : undefined;
  const parallel = values.parallel ? Number(values.parallel) : undefined;
  const timeout = values.timeout ? Number(values.timeout) : undefined;
  if ((parallel !== undefined && !(parallel >= 1)) || (timeout !== undefined && !(timeout > 0))) {
    process.stderr.write('--parallel and --timeout take positive numbers\n');
    return 2;
  }
  // critest --parallel re-executes itself through the ginkgo CLI.
  const onPath = (bin: string) => (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)));
  if (parallel && parallel > 1 && !onPath('ginkgo')) {
    process.stderr.write('--parallel needs the ginkgo CLI on PATH (go install github.com/onsi/ginkgo/v2/ginkgo)\n');
    return 2;
  }
  const abort = new AbortController();
  const onSignal = () => {
    process.stderr.write('interrupted: stopping critest and cleaning up\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await runConformance({
      daemons,
      focus: values.focus,
      skip: values.skip,
      parallel,
      timeoutMs: timeout ? timeout * 1000 : undefined,
      signal: abort.signal,
      log: (l) => process.stderr.write(`cri-conformance: ${l}\n`),
      onOutput: values.verbose ? (_d, s) => process.stderr.write(s) : undefined,
    });
    process.stdout.write(`${formatTable(result.comparison, { explain: values.explain })}\n`);
    const runs = [['containerd 1.6', result.containerd], ['berthd', result.berthd]] as const;
    let noReport = false;
    for (const [daemon, run] of runs) {
      if (!run || run.specs.length > 0) continue;
      noReport = true;
      process.stderr.write(`${daemon}: no junit report; critest's last output:\n${run.output.slice(-3000)}\n`);
    }
    return result.comparison.regressions.length > 0 || noReport ? 1 : 0;
  } catch (err) {
    if (abort.signal.aborted) return 130;
    throw err;
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`cri-conformance: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
