/**
 * A CRI container's stdio as containerd's CRI plugin keeps it: FIFOs in the container's state
 * dir that the shim opens by path, read by the daemon and written to the container's log file
 * in the CRI format (`<RFC3339Nano> <stream> <P|F> <content>`), and to any attached client. The
 * FIFOs outlive the daemon (the shim holds their other ends), so a restarted daemon opens them
 * again and the output keeps flowing.
 *
 * Reading ends are opened O_RDONLY|O_NONBLOCK: the open never waits for the shim, and libuv's
 * epoll sees no hang-up before a writer has come and gone. The stdin end is opened O_RDWR, so
 * that the open never waits either.
 */
import { randomBytes } from 'node:crypto';
import { type WriteStream, closeSync, constants, createWriteStream, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { FifoPool } from '@berth/exec';

/** The FIFO paths a task is created with ('' for none). */
export interface IoPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** Opens a FIFO's reading end without waiting for a writer. */
export function openFifoReader(path: string): Socket {
  const s = new Socket({ fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  s.on('error', () => undefined);
  return s;
}

/** Opens a FIFO's writing end without waiting for a reader (O_RDWR). */
export function openFifoWriter(path: string): Socket {
  const s = new Socket({ fd: openSync(path, constants.O_RDWR | constants.O_NONBLOCK), readable: false, writable: true });
  s.on('error', () => undefined);
  return s;
}

/** Makes the FIFOs of a process in a fresh directory under `dir`, from FIFOs made ahead. */
export async function newFifos(fifos: FifoPool, dir: string, id: string, o: { stdin: boolean; terminal: boolean }): Promise<IoPaths> {
  const d = join(dir, randomBytes(8).toString('hex'));
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const paths: IoPaths = {
    stdin: o.stdin ? join(d, `${id}-stdin`) : '',
    stdout: join(d, `${id}-stdout`),
    stderr: o.terminal ? '' : join(d, `${id}-stderr`),
    terminal: o.terminal,
  };
  await fifos.make([paths.stdin, paths.stdout, paths.stderr].filter((p) => p !== ''));
  return paths;
}

/** Go's RFC3339Nano of a time in nanoseconds since the epoch, in UTC (trailing zeros of the fraction trimmed). */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}${frac ? `.${frac}` : ''}Z`;
}

// Wall clock in nanoseconds: Date.now at start plus a monotonic offset.
const T0_NS = BigInt(Date.now()) * 1_000_000n;
const H0 = process.hrtime.bigint();
/** Now, in nanoseconds since the epoch. */
export function nowNs(): bigint {
  return T0_NS + (process.hrtime.bigint() - H0);
}

/**
 * Splits a stream's bytes into CRI log records: one per line (`\n`, a `\r\n` ending dropped
 * too), lines longer than `maxLine` as `P` records ended by an `F` one, and an unterminated tail
 * at the end as `P`.
 */
export class CriLogLineSplitter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly stream: 'stdout' | 'stderr',
    private readonly emit: (line: Buffer) => void,
    private readonly maxLine = 16384,
  ) {}

  private record(tag: 'P' | 'F', content: Buffer): void {
    const head = Buffer.from(`${rfc3339Nano(nowNs())} ${this.stream} ${tag} `);
    this.emit(Buffer.concat([head, content, Buffer.from('\n')]));
  }

  write(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const nl = buf.indexOf(0x0a);
      if (nl < 0) break;
      let line = buf.subarray(0, nl);
      buf = buf.subarray(nl + 1);
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      while (this.maxLine > 0 && line.length > this.maxLine) {
        this.record('P', line.subarray(0, this.maxLine));
        line = line.subarray(this.maxLine);
      }
      this.record('F', line);
    }
    while (this.maxLine > 0 && buf.length >= this.maxLine) {
      this.record('P', buf.subarray(0, this.maxLine));
      buf = buf.subarray(this.maxLine);
    }
    this.pending = Buffer.from(buf);
  }

  /** At EOF: an unterminated tail is written as `P`. */
  end(): void {
    if (this.pending.length > 0) this.record('P', this.pending);
    this.pending = Buffer.alloc(0);
  }
}

/** An attached client's streams. */
export interface AttachStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
}

/**
 * The stdio of one CRI container: its FIFOs, the log file they are copied into, attached
 * clients. Made at CreateContainer (the FIFOs), connected at StartContainer (the log file), and
 * made again from the same FIFO paths by a restarted daemon.
 */
export class ContainerIO {
  private readonly readers: Socket[] = [];
  private stdinWriter?: Socket;
  private log?: WriteStream;
  private logPath = '';
  private readonly splitters: CriLogLineSplitter[] = [];
  private readonly attached = new Set<AttachStreams>();
  private readonly done: Array<Promise<void>> = [];
  private connected = false;

  constructor(
    /** The FIFO paths (in the container's state dir). */
    readonly paths: IoPaths,
    private readonly options: { maxLineSize: number; stdinOnce: boolean; closeStdin: () => Promise<void> },
  ) {}

  /** Makes the FIFOs of a new container in `dir`. */
  static async create(fifos: FifoPool, dir: string, id: string, o: { stdin: boolean; tty: boolean; maxLineSize: number; stdinOnce: boolean; closeStdin: () => Promise<void> }): Promise<ContainerIO> {
    const paths = await newFifos(fifos, dir, id, { stdin: o.stdin, terminal: o.tty });
    return new ContainerIO(paths, o);
  }

  /**
   * Opens the log file (O_CREAT|O_APPEND, 0640; '' discards the output) and starts copying the
   * FIFOs into it. Called before the task is created.
   */
  connect(logPath: string): void {
    if (this.connected) return;
    this.connected = true;
    this.openLog(logPath);
    this.readInto('stdout', this.paths.stdout);
    if (this.paths.stderr) this.readInto('stderr', this.paths.stderr);
    if (this.paths.stdin && existsSync(this.paths.stdin)) this.stdinWriter = openFifoWriter(this.paths.stdin);
  }

  private openLog(logPath: string): void {
    this.logPath = logPath;
    if (logPath === '') return;
    const fd = openSync(logPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o640);
    this.log = createWriteStream('', { fd, autoClose: true });
    this.log.on('error', () => undefined);
  }

  private readInto(stream: 'stdout' | 'stderr', path: string): void {
    if (!existsSync(path)) return;
    const s = openFifoReader(path);
    this.readers.push(s);
    const splitter = new CriLogLineSplitter(stream, (line) => this.log?.write(line), this.options.maxLineSize);
    this.splitters.push(splitter);
    this.done.push(
      new Promise<void>((resolve) => {
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          splitter.end();
          // Done means in the file: the log's writes land in order, so the callback of one more
          // (empty) write comes after the last record's.
          const log = this.log;
          if (log && log.writable) log.write(Buffer.alloc(0), () => resolve());
          else resolve();
        };
        s.on('data', (chunk: Buffer) => {
          splitter.write(chunk);
          for (const a of this.attached) {
            const out = stream === 'stdout' || this.paths.terminal ? a.stdout : a.stderr;
            out?.write(chunk);
          }
        });
        s.once('end', finish);
        s.once('close', finish);
      }),
    );
  }

  /**
   * ReopenContainerLog: opens a new file at the log path, switches the writers to it and closes
   * the old one.
   */
  reopen(): void {
    const old = this.log;
    this.openLog(this.logPath);
    old?.end();
  }

  /**
   * Joins a client to the live stdio (no replay): output is copied to its writables until the
   * container's output ends; its stdin goes to the container's. With `stdin_once`, the end of
   * the client's stdin closes the container's stdin. Resolves when the client's session is over.
   */
  attach(streams: AttachStreams): Promise<void> {
    this.attached.add(streams);
    const waits: Array<Promise<void>> = [];
    const output = streams.stdout !== undefined || streams.stderr !== undefined;
    if (streams.stdin && this.stdinWriter) {
      const w = this.stdinWriter;
      const input = streams.stdin;
      const inputEnded = new Promise<void>((resolve) => {
        input.on('data', (chunk: Buffer) => w.write(chunk));
        const end = () => {
          if (this.options.stdinOnce && this.stdinWriter === w) {
            // The container's stdin ends with this client's: our end of the FIFO first, then the shim's.
            this.stdinWriter = undefined;
            w.end(() => void this.options.closeStdin().catch(() => undefined));
          }
          resolve();
        };
        input.once('end', end);
        input.once('close', end);
        input.once('error', end);
      });
      // With stdin_once the container's stdin ends with the client's, and the session goes on
      // until the output the container writes after that (its answer) has ended too.
      if (!(this.options.stdinOnce && output)) waits.push(inputEnded);
    }
    if (output) waits.push(Promise.all(this.done).then(() => undefined));
    return Promise.race(waits.length > 0 ? waits : [Promise.resolve()]).finally(() => this.attached.delete(streams));
  }

  /** Resolves once the output FIFOs reached EOF (the process and every holder of them exited), or after `graceMs`. */
  async drained(graceMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.done), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  /** Closes the FIFOs, the log file; with `remove`, deletes the FIFOs' directory. */
  close(remove: boolean): void {
    for (const s of this.readers.splice(0)) s.destroy();
    for (const sp of this.splitters.splice(0)) sp.end();
    this.stdinWriter?.destroy();
    this.stdinWriter = undefined;
    this.log?.end();
    this.log = undefined;
    if (remove) {
      const dir = dirname(this.paths.stdout);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Closes an fd, ignoring errors. */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* closed */
  }
}
