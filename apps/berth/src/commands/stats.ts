import { setTimeout as sleep } from 'node:timers/promises';
import type { BerthClient, Container, Task, TaskStats } from '@berth/client';
import { isNotFound } from '@berth/errdefs';
import type { Command } from 'commander';
import { withClient } from '../context';
import { CliError } from '../errors';
import { humanSize, printJson, renderTable } from '../output';
import { findContainer, shortId } from './containers';

/** One container's row: its resource use, and its CPU use over the time since its last sample. */
export interface StatsRow extends TaskStats {
  id: string;
  /** CPU time over wall time between two samples, in percent of one CPU; 0 on a first sample. */
  cpuPercent: number;
}

/** Milliseconds between the first two samples (the one-sample case waits this long), then between frames. */
const FIRST_INTERVAL_MS = 500;
const INTERVAL_MS = 1000;

interface StatsFlags {
  json?: boolean;
  /** true with --stream, false with --no-stream, undefined when neither was given. */
  stream?: boolean;
}

/**
 * Samples the running tasks of a namespace (or of named containers) and keeps each one's last
 * sample, so the next one gives its CPU use in between.
 */
class Sampler {
  private readonly last = new Map<string, { cpuNs: number; at: number }>();

  /** `named` are the containers asked for by name, or undefined for every running one. */
  constructor(
    private readonly client: BerthClient,
    private readonly named: readonly Container[] | undefined,
  ) {}

  /** The running tasks now; with `strict`, a named container that does not run is an error. */
  async running(strict = false): Promise<Array<{ id: string; task: Task }>> {
    const containers = this.named ?? (await Promise.all((await this.client.containers.list()).map((c) => this.client.containers.get(c.id).catch(gone))));
    const tasks: Array<{ id: string; task: Task }> = [];
    for (const c of containers) {
      if (!c) continue;
      const task = await c.task().catch(gone);
      const running = task ? (await task.status().catch(gone))?.status === 'running' : false;
      if (task && running) tasks.push({ id: c.id, task });
      else if (strict) throw new CliError(`container ${c.id} is not running`);
    }
    return tasks;
  }

  /**
   * Takes one sample of each running task. A task that stopped or went away since it was listed
   * drops out; any other error is thrown.
   */
  async sample(strict = false): Promise<StatsRow[]> {
    const tasks = await this.running(strict);
    const samples = await Promise.all(
      tasks.map(async ({ id, task }) => {
        try {
          return { id, stats: await task.stats(), at: performance.now() };
        } catch (err) {
          const status = await task.status().catch(gone);
          if (status?.status !== 'running') return undefined;
          throw err;
        }
      }),
    );
    const rows: StatsRow[] = [];
    const seen = new Set<string>();
    for (const s of samples) {
      if (!s) continue;
      seen.add(s.id);
      const before = this.last.get(s.id);
      this.last.set(s.id, { cpuNs: s.stats.cpuNs, at: s.at });
      const wallNs = before ? (s.at - before.at) * 1e6 : 0;
      rows.push({ id: s.id, cpuPercent: wallNs > 0 ? (100 * (s.stats.cpuNs - before!.cpuNs)) / wallNs : 0, ...s.stats });
    }
    for (const id of this.last.keys()) if (!seen.has(id)) this.last.delete(id);
    return rows;
  }
}

/** What a NotFound error leaves: nothing (the container or task went away); other errors are thrown. */
function gone(err: unknown): undefined {
  if (isNotFound(err)) return undefined;
  throw err;
}

/** The table as `docker stats` lays it out. */
function statsTable(rows: readonly StatsRow[]): string {
  return renderTable(
    ['CONTAINER', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'],
    rows.map((r) => [
      shortId(r.id),
      `${r.cpuPercent.toFixed(2)}%`,
      `${humanSize(r.memoryBytes)} / ${r.memoryLimit !== undefined ? humanSize(r.memoryLimit) : 'unlimited'}`,
      r.memoryLimit ? `${((100 * r.memoryBytes) / r.memoryLimit).toFixed(2)}%` : '--',
      `${humanSize(r.netRx)} / ${humanSize(r.netTx)}`,
      `${humanSize(r.blockRead)} / ${humanSize(r.blockWrite)}`,
      String(r.pids),
    ]),
  );
}

/** Where the frames of a stream go: redrawn in place on a terminal, appended otherwise. */
interface FrameView {
  show(rows: readonly StatsRow[]): void;
  /** Leaves the last frame whole on screen and the cursor shown. */
  end(): void;
}

/** One JSON array a line per frame (JSON lines), never a control character. */
function jsonLines(out: NodeJS.WritableStream): FrameView {
  return {
    show: (rows) => out.write(`${JSON.stringify(rows)}\n`),
    end: () => {},
  };
}

/** One plain table per frame, a blank line between, for a pipe or a file. */
function plainTables(out: NodeJS.WritableStream): FrameView {
  let first = true;
  return {
    show: (rows) => {
      out.write(`${first ? '' : '\n'}${statsTable(rows)}`);
      first = false;
    },
    end: () => {},
  };
}

/**
 * The table redrawn in place on a terminal, by log-update: it rewrites only the lines that
 * changed, clips to the window, hides the cursor while it draws and shows it again at the end.
 * Each frame is written whole by one synchronous call, so a signal never lands in the middle of one.
 */
function terminalTable(out: NodeJS.WriteStream): FrameView {
  const { createLogUpdate } = require('log-update') as typeof import('log-update');
  const draw = createLogUpdate(out);
  return {
    show: (rows) => draw(statsTable(rows)),
    end: () => draw.done(),
  };
}

/**
 * Shows a frame about every second until SIGINT or SIGTERM (Ctrl-C), the reader of stdout goes
 * away, or, when containers were named, none of them runs any more. Resolves normally in each
 * case: ending a stream is what the user asked for.
 */
async function streamStats(sampler: Sampler, view: FrameView, out: NodeJS.WriteStream, named: boolean): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  // EPIPE and the like: whoever read the stream is gone (`berth stats --stream | head -3`).
  const onOutputError = () => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  out.on('error', onOutputError);
  let ended: string | undefined;
  try {
    await sampler.sample(named);
    let wait = FIRST_INTERVAL_MS;
    while (!stop.signal.aborted) {
      await sleep(wait, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) break;
      wait = INTERVAL_MS;
      const rows = await sampler.sample();
      if (stop.signal.aborted) break;
      if (named && rows.length === 0) {
        ended = 'none of the named containers is running any more';
        break;
      }
      view.show(rows);
    }
  } finally {
    view.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    out.off('error', onOutputError);
  }
  if (ended) process.stderr.write(`${ended}\n`);
}

/** `berth stats`: one sample, or a stream of them as `docker stats` shows. */
export function registerStatsCommand(program: Command): void {
  program
    .command('stats')
    .description(
      'resource use of running containers (all running ones when none is named): CPU, memory, network and block I/O, pids. On a terminal the table is redrawn every second until Ctrl-C; otherwise one sample (CPU over half a second) is printed',
    )
    .argument('[container...]')
    .option('--json', 'print JSON: one array, or one array a line when streaming')
    .option('--stream', 'keep sampling every second even when stdout is not a terminal (one table, or one JSON line, per second)')
    .option('--no-stream', 'print one sample and exit, even on a terminal')
    .action(async (refs: string[], f: StatsFlags, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const named = refs.length > 0 ? await Promise.all(refs.map((r) => findContainer(client, r))) : undefined;
        const sampler = new Sampler(client, named);
        const out = process.stdout;
        if (f.stream ?? out.isTTY === true) {
          const view = f.json ? jsonLines(out) : out.isTTY ? terminalTable(out) : plainTables(out);
          return streamStats(sampler, view, out, named !== undefined);
        }
        const first = new Set((await sampler.sample(named !== undefined)).map((r) => r.id));
        await sleep(FIRST_INTERVAL_MS);
        const rows = (await sampler.sample()).filter((r) => first.has(r.id));
        if (f.json) return printJson(out, rows);
        out.write(statsTable(rows));
      });
    });
}
