import type { TransferEvent, TransferOperation, TransferTotals } from '@berth/client';
import { humanSize } from './output';

/** What a finished transfer moved, for its summary line. */
export interface TransferSummary {
  totals: TransferTotals;
  seconds: number;
}

const shortName = (name: string) => name.replace(/^(\w+)-sha256:([0-9a-f]{12})[0-9a-f]*$/, '$1 $2');

/**
 * Shows a pull's or push's progress and resolves when it ends (rejects with its error).
 * On a terminal: one bar per blob (bytes, state) and a bar for the totals, redrawn in place
 * (cli-progress). Otherwise: a plain line each time a blob changes state.
 */
export async function showProgress(op: TransferOperation, out: NodeJS.WriteStream, verb: string, reference: string): Promise<TransferSummary> {
  const started = Date.now();
  let totals: TransferTotals = { blobs: 0, done: 0, extracted: 0, bytes: 0, total: 0 };
  const render = out.isTTY ? new BarRenderer(out, verb) : new LineRenderer(out);
  try {
    for await (const e of op) {
      if (e.type === 'blob') totals = e.totals;
      render.event(e);
    }
    await op.done;
  } finally {
    render.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const rate = seconds > 0 ? ` (${humanSize(totals.bytes / seconds)}/s)` : '';
  out.write(`${verb} ${reference}: ${totals.blobs} blobs, ${humanSize(totals.bytes)} in ${seconds.toFixed(1)}s${rate}${totals.extracted > 0 ? `, ${totals.extracted} layers extracted` : ''}\n`);
  return { totals, seconds };
}

interface Renderer {
  event(e: TransferEvent): void;
  stop(): void;
}

/** Plain lines for a pipe or a file: one per blob and state, never a control character. */
class LineRenderer implements Renderer {
  private readonly seen = new Map<string, string>();
  constructor(private readonly out: NodeJS.WritableStream) {}

  event(e: TransferEvent): void {
    if (e.type === 'status') {
      this.out.write(`${e.message}\n`);
      return;
    }
    if (e.type === 'saved') {
      this.out.write(`saved ${e.image}${e.digest ? ` ${e.digest}` : ''}\n`);
      return;
    }
    if (this.seen.get(e.name) === e.state) return;
    this.seen.set(e.name, e.state);
    const size = e.total > 0 ? ` ${humanSize(e.total)}` : '';
    this.out.write(`${shortName(e.name)}: ${e.state}${size}\n`);
  }

  stop(): void {}
}

/** Bars on a terminal, through cli-progress's multi-bar (it owns the cursor and redraws). */
class BarRenderer implements Renderer {
  private readonly multi;
  private readonly bars = new Map<string, import('cli-progress').SingleBar>();
  private readonly total;
  private readonly startedAt = Date.now();

  constructor(out: NodeJS.WriteStream, verb: string) {
    const { MultiBar, Presets } = require('cli-progress') as typeof import('cli-progress');
    this.multi = new MultiBar(
      {
        stream: out,
        format: '{name} |{bar}| {state} {done}/{size}',
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
        barsize: 30,
        fps: 10,
      },
      Presets.shades_classic,
    );
    this.total = this.multi.create(1, 0, { name: `${verb} total`.padEnd(19), state: '', done: '0B', size: '0B' });
  }

  event(e: TransferEvent): void {
    if (e.type !== 'blob') {
      if (e.type === 'status') this.multi.log(`${e.message}\n`);
      return;
    }
    const payload = { name: shortName(e.name).padEnd(19), state: e.state.padEnd(14), done: humanSize(e.bytes), size: e.total > 0 ? humanSize(e.total) : '?' };
    let bar = this.bars.get(e.name);
    if (!bar) {
      bar = this.multi.create(Math.max(e.total, 1), 0, payload);
      this.bars.set(e.name, bar);
    }
    bar.setTotal(Math.max(e.total, 1));
    bar.update(e.state === 'complete' || e.state === 'already exists' || e.state === 'extracted' ? Math.max(e.total, 1) : Math.min(e.bytes, Math.max(e.total, 1)), payload);
    const t = e.totals;
    const seconds = (Date.now() - this.startedAt) / 1000;
    const speed = seconds > 0 ? `${humanSize(t.bytes / seconds)}/s` : '';
    this.total.setTotal(Math.max(t.total, 1));
    this.total.update(Math.min(t.bytes, Math.max(t.total, 1)), { state: `${t.done}/${t.blobs} done ${speed}`.padEnd(14), done: humanSize(t.bytes), size: humanSize(t.total) });
  }

  stop(): void {
    this.multi.stop();
  }
}
