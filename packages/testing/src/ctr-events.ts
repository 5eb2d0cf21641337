import { ChildProcess, spawn } from 'node:child_process';
import { eventsService } from '@berth/api';
import { NamespaceCreate, packAny } from '@berth/api/events';
import { createClient } from '@berth/grpc';
import { CTR_PATH, CtrOptions, CtrResult } from './ctr';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running `ctr events`, collecting its lines. */
export class CtrEvents {
  private out = '';
  readonly exited: Promise<number | null>;

  constructor(address: string, filters: string[], readonly child: ChildProcess = spawn(CTR_PATH, ['--address', address, 'events', ...filters], { stdio: ['ignore', 'pipe', 'pipe'] })) {
    child.stdout!.on('data', (b: Buffer) => (this.out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.out += b.toString()));
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
  }

  get lines(): string[] {
    return this.out.split('\n').filter((l) => l !== '');
  }

  async waitFor(pred: (lines: string[]) => boolean, poke?: () => Promise<unknown>, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.lines)) {
      if (Date.now() > deadline) throw new Error(`ctr events did not print what was expected; got:\n${this.out}`);
      await poke?.();
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** A daemon ctr can talk to. */
export interface CtrEventsTarget {
  address: string;
  ctr: (args: readonly string[], options?: CtrOptions) => Promise<CtrResult>;
}

/** The Go time prefix of a ctr events line, replaced so two runs compare. */
export const normaliseEventLine = (line: string) =>
  line.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC /, '<time> ').replace(/^time="[^"]+" /, 'time="<time>" ');

/**
 * Runs `ctr events [filters]` against a target, waits until it is subscribed (a `/sync` event
 * shows up), runs `act`, then waits for a closing `/sync` event: everything published in between
 * has been printed by then, in order. Returns the lines between the two markers.
 */
export async function ctrEventsDuring(target: CtrEventsTarget, filters: string[], act: () => Promise<void>): Promise<string[]> {
  const client = createClient(eventsService.EventsService, target.address, { namespace: 'default' });
  const sync = (name: string) => client.publish({ topic: '/sync', event: packAny(NamespaceCreate, { name, labels: {} }) });
  const ev = new CtrEvents(target.address, filters.length ? [...filters, 'topic=="/sync"'] : []);
  try {
    await ev.waitFor((l) => l.some((x) => x.includes('/sync')), () => sync('start'));
    await act();
    await sync('end');
    await ev.waitFor((l) => l.some((x) => x.includes('"name":"end"')));
    const lines = ev.lines;
    const from = lines.findIndex((l) => l.includes('/sync')) + 1;
    return lines.slice(from).filter((l) => !l.includes(' /sync ')).map(normaliseEventLine);
  } finally {
    client.close();
    await ev.stop();
  }
}

