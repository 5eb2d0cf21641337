import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ImageServiceService, RuntimeServiceService } from '@berth/api/cri';
import { toGrpcStatus } from '@berth/errdefs';
import { CRICTL_PATH } from '@berth/testing';
import type { Duplex } from 'node:stream';
import { forwardPort } from './port-dial';
import type { StreamingIo, StreamingRuntime, TerminalSize } from './runtime';
import type { StreamingServer } from './streaming-server';

/** Resolves with the first size of a resize iterable, or undefined after `ms`. */
async function firstSize(sizes: AsyncIterator<TerminalSize>, ms: number): Promise<TerminalSize | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([sizes.next(), new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
  return r && !r.done ? r.value : undefined;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The terminal of the process that `script` started (its child's stdin), once it exists. */
function ptyOf(scriptPid: number): string | undefined {
  try {
    const children = readFileSync(`/proc/${scriptPid}/task/${scriptPid}/children`, 'utf8').trim().split(/\s+/);
    const link = readlinkSync(`/proc/${children[0]}/fd/0`);
    return link.startsWith('/dev/pts/') ? link : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A StreamingRuntime over host processes, for tests: exec spawns the command (with a tty, under
 * util-linux `script`, whose pty is resized with `stty -F`), attach joins a process registered
 * under a container id, and port-forward dials in the network namespace registered for a
 * sandbox id (none registered: the host's).
 */
export class ProcessRuntime implements StreamingRuntime {
  readonly containers = new Map<string, { proc: ChildProcess; stdinOnce: boolean }>();
  readonly netns = new Map<string, string>();
  readonly children = new Set<ChildProcess>();

  async exec(_containerId: string, cmd: string[], io: StreamingIo): Promise<number> {
    let child: ChildProcess;
    let sizes: AsyncIterator<TerminalSize> | undefined;
    if (io.tty) {
      sizes = io.resize?.[Symbol.asyncIterator]();
      const size = sizes ? await firstSize(sizes, 3000) : undefined;
      const command = `${size ? `stty rows ${size.height} cols ${size.width}; ` : ''}exec ${cmd.map(quote).join(' ')}`;
      child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH, SHELL: '/bin/sh', TERM: 'xterm' } });
    } else {
      child = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
    }
    this.children.add(child);
    const kill = () => child.kill('SIGKILL');
    io.signal.addEventListener('abort', kill);
    child.stdin!.on('error', () => undefined);
    if (io.stdin) io.stdin.pipe(child.stdin!);
    else child.stdin!.end();
    if (io.stdout) child.stdout!.pipe(io.stdout, { end: false });
    else child.stdout!.resume();
    if (io.stderr) child.stderr!.pipe(io.stderr, { end: false });
    else child.stderr!.resume();
    if (sizes) {
      const it = sizes;
      void (async () => {
        for (let r = await it.next(); !r.done; r = await it.next()) {
          const pty = child.pid ? ptyOf(child.pid) : undefined;
          if (pty) spawn('stty', ['-F', pty, 'rows', String(r.value.height), 'cols', String(r.value.width)], { stdio: 'ignore' });
        }
      })();
    }
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, sig) => resolve(c ?? 128 + (sig ? (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 }) as Record<string, number>)[sig] ?? 1 : 1)));
    });
    io.stdin?.unpipe(child.stdin!);
    io.signal.removeEventListener('abort', kill);
    this.children.delete(child);
    return code;
  }

  async attach(containerId: string, io: StreamingIo): Promise<void> {
    const c = this.containers.get(containerId);
    if (!c) throw new Error(`container "${containerId}" not found`);
    const { proc } = c;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    if (io.stdin) io.stdin.pipe(proc.stdin!, { end: c.stdinOnce });
    if (io.stdout) proc.stdout!.pipe(io.stdout, { end: false });
    if (io.stderr) proc.stderr!.pipe(io.stderr, { end: false });
    await new Promise<void>((resolve) => {
      const done = () => {
        proc.off('close', done);
        io.signal.removeEventListener('abort', done);
        resolve();
      };
      proc.once('close', done);
      io.signal.addEventListener('abort', done);
    });
    io.stdin?.unpipe(proc.stdin!);
    if (io.stdout) proc.stdout!.unpipe(io.stdout);
    if (io.stderr) proc.stderr!.unpipe(io.stderr);
  }

  portForward(podSandboxId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void> {
    return forwardPort(this.netns.get(podSandboxId), port, stream, { signal, name: podSandboxId });
  }

  /** Starts a process that attach joins under `containerId`. */
  startContainer(containerId: string, cmd: string[], stdinOnce = true): ChildProcess {
    const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    proc.stdin!.on('error', () => undefined);
    this.containers.set(containerId, { proc, stdinOnce });
    this.children.add(proc);
    proc.once('close', () => this.children.delete(proc));
    return proc;
  }

  /** Kills every process still running. */
  cleanup(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }
}

/** A CRI gRPC server on a unix socket answering what crictl calls around streaming. */
export interface TestCriServer {
  socket: string;
  /** Methods called, in order. */
  calls: string[];
  close(): Promise<void>;
}

/**
 * Starts a CRI server for crictl: Version and ImageFsInfo (its connection checks), and Exec,
 * Attach and PortForward answered by the streaming server. Everything else is UNIMPLEMENTED.
 */
export async function startCriServer(streaming: StreamingServer, dir: string): Promise<TestCriServer> {
  const socket = join(dir, 'cri.sock');
  const calls: string[] = [];
  const server = new grpc.Server();
  const unary =
    <Req, Res>(name: string, fn: (req: Req) => Res) =>
    (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
      calls.push(name);
      try {
        cb(null, fn(call.request));
      } catch (err) {
        cb(toGrpcStatus(err));
      }
    };
  server.addService(RuntimeServiceService, {
    version: unary('Version', () => ({ version: '0.1.0', runtimeName: 'berth-test', runtimeVersion: '0.0.0', runtimeApiVersion: 'v1' })),
    exec: unary('Exec', (req: Parameters<StreamingServer['getExec']>[0]) => streaming.getExec(req)),
    attach: unary('Attach', (req: Parameters<StreamingServer['getAttach']>[0]) => streaming.getAttach(req)),
    portForward: unary('PortForward', (req: Parameters<StreamingServer['getPortForward']>[0]) => streaming.getPortForward(req)),
  } as unknown as grpc.UntypedServiceImplementation);
  server.addService(ImageServiceService, {
    imageFsInfo: unary('ImageFsInfo', () => ({ imageFilesystems: [], containerFilesystems: [] })),
  } as unknown as grpc.UntypedServiceImplementation);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return {
    socket,
    calls,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** What a crictl run gave; stdout as bytes. */
export interface CrictlRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The crictl command line against a socket (with an empty config and a 60 s RPC timeout). */
export function crictlArgv(socket: string, dir: string, args: readonly string[]): string[] {
  const config = join(dir, 'crictl.yaml');
  if (!existsSync(config)) writeFileSync(config, '');
  const endpoint = `unix://${socket}`;
  return ['--config', config, '--timeout', '60s', '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, ...args];
}

/** Runs crictl with optional stdin (closed after `input`) and collects its output. */
export function crictl(socket: string, dir: string, args: readonly string[], options: { input?: Buffer | string; timeoutMs?: number } = {}): Promise<CrictlRun> {
  if (!CRICTL_PATH || !existsSync(CRICTL_PATH)) return Promise.reject(new Error(`crictl is not at ${CRICTL_PATH}: run tools/reference-tools.sh`));
  return new Promise((resolve, reject) => {
    const child = spawn(CRICTL_PATH!, crictlArgv(socket, dir, args), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: dir } });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}
