/*
 * A process's stdio as containerd's cio makes it: FIFOs in a temp dir that the shim opens by
 * path, copied to and from the caller's streams. Node has no mkfifo, so mkfifo(1) makes them.
 * Reading ends are opened O_RDONLY|O_NONBLOCK (the open succeeds before the shim opens its end;
 * EOF comes once the shim closes it); the stdin end is opened O_RDWR so that the open never
 * waits for the shim and closing it is the EOF the process sees. Both are wrapped in
 * net.Socket, which reads and writes a pipe fd through libuv without blocking a thread.
 */
import { execFile } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { InvalidArgumentError } from '@berth/errdefs';

/** Where a process's stdio goes. */
export interface StdioOptions {
  /**
   * Data for stdin: a stream or bytes, written then closed (EOF); or `'pipe'` to write it
   * yourself through `io.stdin`. No stdin when absent.
   */
  stdin?: Readable | Buffer | string | 'pipe';
  /** Where stdout goes; discarded when absent. */
  stdout?: Writable;
  /** Where stderr goes; discarded when absent (there is none with a terminal). */
  stderr?: Writable;
  /** Run with a terminal: stdout carries the terminal's output, stderr is unused. */
  terminal?: boolean;
  /**
   * Have the shim write stdout and stderr into this file itself (containerd's `file://` log
   * URI); the process then needs no FIFO and outlives this client.
   */
  logFile?: string;
}

/** The paths a task or exec is created with, and the copies running behind them. */
export class ProcessIO {
  /** The stdin FIFO's writing end, when stdin is `'pipe'` (or fed from data). */
  stdin?: Writable;
  private readonly copies: Array<Promise<void>> = [];
  private readonly sockets: Socket[] = [];
  private source?: Readable | Buffer | string;

  private constructor(
    /** Paths (or URIs) for the Create/Exec request: empty for none. */
    readonly paths: { stdin: string; stdout: string; stderr: string; terminal: boolean },
    private readonly dir?: string,
  ) {}

  /** Makes the FIFOs (or the log URI) and starts copying. */
  static async create(id: string, o: StdioOptions = {}): Promise<ProcessIO> {
    if (o.logFile) {
      if (o.stdin || o.terminal) throw new InvalidArgumentError('a log file takes no stdin and no terminal');
      const uri = `file://${o.logFile}`;
      return new ProcessIO({ stdin: '', stdout: uri, stderr: uri, terminal: false });
    }
    const dir = mkdtempSync(join(tmpdir(), `berth-io-${id.slice(0, 32)}-`));
    const path = (name: string) => join(dir, `${id}-${name}`);
    const paths = { stdin: o.stdin !== undefined ? path('stdin') : '', stdout: path('stdout'), stderr: o.terminal ? '' : path('stderr'), terminal: !!o.terminal };
    const io = new ProcessIO(paths, dir);
    try {
      for (const p of [paths.stdin, paths.stdout, paths.stderr].filter((x) => x !== '')) await mkfifo(p);
      io.readInto(paths.stdout, o.stdout);
      if (paths.stderr) io.readInto(paths.stderr, o.stderr);
      if (paths.stdin) {
        const w = new Socket({ fd: openSync(paths.stdin, constants.O_RDWR | constants.O_NONBLOCK), readable: false, writable: true });
        w.on('error', () => undefined);
        io.sockets.push(w);
        io.stdin = w;
        if (o.stdin !== 'pipe') io.source = o.stdin;
      }
    } catch (err) {
      io.close();
      throw err;
    }
    return io;
  }

  private readInto(path: string, sink: Writable | undefined): void {
    const s = new Socket({ fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
    this.sockets.push(s);
    this.copies.push(
      new Promise<void>((resolve) => {
        s.on('data', (chunk: Buffer) => sink?.write(chunk));
        s.once('end', () => resolve());
        s.once('close', () => resolve());
        s.once('error', () => resolve());
      }),
    );
  }

  /**
   * Starts feeding the stdin data given at creation, once the process has started. Not before:
   * the shim opens its end of the FIFO when it creates (init) or starts (exec) the process, and
   * data in a FIFO whose every end closed before that would be lost, with no EOF to read.
   */
  started(onStdinEnd: () => Promise<void>): void {
    const src = this.source;
    const w = this.stdin;
    this.source = undefined;
    if (src === undefined || !w) return;
    // The shim keeps its end of the FIFO open, so closing ours is no EOF for the process: the
    // shim closes the process's stdin when asked to (CloseIO), as containerd's client asks.
    w.once('finish', () => void onStdinEnd().catch(() => undefined));
    if (typeof src === 'string' || Buffer.isBuffer(src)) w.end(src);
    else src.pipe(w);
  }

  /** Ends stdin (the process reads EOF once the shim has copied what was written). */
  closeStdin(): Promise<void> {
    const w = this.stdin;
    if (!w || w.writableEnded) return Promise.resolve();
    return new Promise((resolve) => w.end(() => resolve()));
  }

  /** Resolves once stdout and stderr reached EOF (the shim closed them), or after `graceMs`. */
  async drained(graceMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.copies), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  /** Closes every fd and removes the FIFOs' directory. */
  close(): void {
    for (const s of this.sockets.splice(0)) s.destroy();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function mkfifo(path: string): Promise<void> {
  return new Promise((resolve, reject) => execFile('mkfifo', ['-m', '0700', path], (err) => (err ? reject(err) : resolve())));
}
