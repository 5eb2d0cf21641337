import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { dirname } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '@berth/errdefs';
import type { Logger } from '@berth/log';
import { BERTH_VERSION } from './version';

export interface DebugServerOptions {
  /** The unix socket (`[debug] address`). */
  address: string;
  uid: number;
  gid: number;
  logger: Logger;
  /** gRPC calls started and not yet answered. */
  inFlight: () => number;
}

/** The longest CPU profile one request may ask for (seconds). */
export const MAX_PROFILE_SECONDS = 300;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The debug endpoint (`[debug] address`, a unix socket, 0660 and owned by `[debug] uid/gid`):
 *
 * - `GET /debug/vars`: JSON figures (uptime, memory, active handles, in-flight gRPC calls),
 *   in the spirit of Go's expvar that containerd serves there;
 * - `GET /debug/pprof/profile?seconds=N`: a CPU profile of N seconds (default 30), in V8's
 *   `.cpuprofile` format (Chrome DevTools, speedscope) through Node's inspector;
 * - `GET /debug/pprof/heap`: a V8 heap snapshot (`.heapsnapshot`), streamed as V8 writes it.
 *
 * One profile or snapshot at a time: another asked meanwhile answers 409.
 */
export class DebugServer {
  private busy = false;
  private readonly started = Date.now();

  private constructor(
    private readonly server: Server,
    private readonly opts: DebugServerOptions,
  ) {}

  static async listen(opts: DebugServerOptions): Promise<DebugServer> {
    const holder: { self?: DebugServer } = {};
    const server = createServer((req, res) => void holder.self!.handle(req, res));
    const self = new DebugServer(server, opts);
    holder.self = self;
    mkdirSync(dirname(opts.address), { recursive: true, mode: 0o711 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new InvalidArgumentError(`debug address ${opts.address}: ${err.message}`, { cause: err })));
      server.listen(opts.address, () => resolve());
    });
    chmodSync(opts.address, 0o660);
    if (opts.uid !== 0 || opts.gid !== 0) chownSync(opts.address, opts.uid, opts.gid);
    opts.logger.info('serving debug endpoint', { address: opts.address });
    return self;
  }

  /** Stops listening, ends open connections and removes the socket. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => {
        rmSync(this.opts.address, { force: true });
        resolve();
      });
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://debug');
    try {
      if (req.method !== 'GET') throw new HttpError(405, `${req.method} not allowed`);
      switch (url.pathname) {
        case '/debug/vars':
          return this.json(res, this.vars());
        case '/debug/pprof/profile':
          return await this.exclusive(() => this.profile(res, seconds(url.searchParams.get('seconds'))));
        case '/debug/pprof/heap':
          return await this.exclusive(() => this.heap(res));
        default:
          throw new HttpError(404, '404 page not found');
      }
    } catch (err) {
      const status = err instanceof HttpError ? err.status : err instanceof InvalidArgumentError ? 400 : err instanceof FailedPreconditionError ? 409 : 500;
      if (status === 500) this.opts.logger.error('debug endpoint', { path: url.pathname, error: (err as Error).message });
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(`${(err as Error).message}\n`);
    }
  }

  private json(res: ServerResponse, value: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(value, null, 2) + '\n');
  }

  /** The figures of /debug/vars. */
  vars(): Record<string, unknown> {
    const resources = process.getActiveResourcesInfo();
    const handles: Record<string, number> = {};
    for (const r of resources) handles[r] = (handles[r] ?? 0) + 1;
    return {
      cmdline: process.argv,
      version: BERTH_VERSION,
      pid: process.pid,
      uptime_seconds: (Date.now() - this.started) / 1000,
      memory: process.memoryUsage(),
      resource_usage: process.resourceUsage(),
      handles: { total: resources.length, by_type: handles },
      grpc_in_flight: this.opts.inFlight(),
    };
  }

  private async exclusive(fn: () => Promise<void>): Promise<void> {
    if (this.busy) throw new FailedPreconditionError('a profile or heap snapshot is already being taken', { bare: true });
    this.busy = true;
    try {
      await fn();
    } finally {
      this.busy = false;
    }
  }

  private async profile(res: ServerResponse, secs: number): Promise<void> {
    const session = new Session();
    session.connect();
    try {
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
      // The client going away ends the profile early; what was sampled is still answered.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, secs * 1000);
        res.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const { profile } = await session.post('Profiler.stop');
      res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': `attachment; filename="berthd-${process.pid}.cpuprofile"` });
      res.end(JSON.stringify(profile));
    } finally {
      session.disconnect();
    }
  }

  private async heap(res: ServerResponse): Promise<void> {
    const session = new Session();
    session.connect();
    try {
      res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': `attachment; filename="berthd-${process.pid}.heapsnapshot"` });
      session.on('HeapProfiler.addHeapSnapshotChunk', (m) => res.write(m.params.chunk));
      await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      res.end();
    } finally {
      session.disconnect();
    }
  }
}

/** Reads `seconds` as Go's pprof handler: a positive integer, 30 when absent. */
function seconds(raw: string | null): number {
  if (raw === null || raw === '') return 30;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_PROFILE_SECONDS) {
    throw new InvalidArgumentError(`seconds must be a whole number from 1 to ${MAX_PROFILE_SECONDS}, not ${JSON.stringify(raw)}`, { bare: true });
  }
  return n;
}
