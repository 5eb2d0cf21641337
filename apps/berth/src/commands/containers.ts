import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BerthClient, Container, ContainerInfo, NewContainerOptions, ProcessStatus, SpecMount, Task } from '@berth/client';
import { isNotFound } from '@berth/errdefs';
import type { Command } from 'commander';
import { withClient } from '../context';
import { CliError, EXIT, nonNegative, startFailureCode } from '../errors';
import { type Column, type ListingFormat, parsePairs, printJson, printListing, since } from '../output';
import { pullImage } from './images';

/** Where `run -d` has the shim write a container's output (read by `berth logs`). */
export const LOG_LABEL = 'berth.log-path';
const RESTART_STATUS = 'containerd.io/restart.status';
const RESTART_POLICY = 'containerd.io/restart.policy';
const RESTART_LOG_URI = 'containerd.io/restart.loguri';

function logDir(): string {
  return process.env.BERTH_LOG_DIR ?? '/var/log/berth';
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface RunFlags {
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  name?: string;
  env: string[];
  volume: string[];
  workdir?: string;
  user?: string;
  restart?: string;
  label: string[];
  entrypoint?: string;
  hostname?: string;
  readOnly?: boolean;
  net?: string;
  memory?: string;
  cpus?: string;
  plainHttp?: boolean;
  hostsDir?: string;
}

/** `-v src:dst[:ro]` as a bind mount. */
function volume(spec: string): SpecMount {
  const [source, destination, mode] = spec.split(':');
  if (!source || !destination || !source.startsWith('/') || !destination.startsWith('/')) throw new CliError(`invalid volume "${spec}": want /host/path:/container/path[:ro]`, EXIT.daemon);
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new CliError(`invalid volume mode "${mode}" in "${spec}"`, EXIT.daemon);
  return { type: 'bind', source, destination, options: ['rbind', mode === 'ro' ? 'ro' : 'rw'] };
}

const SIZE = /^(\d+(?:\.\d+)?)([bkmg]?)$/i;
function bytes(v: string): number {
  const m = SIZE.exec(v);
  if (!m) throw new CliError(`invalid size "${v}"`, EXIT.daemon);
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  return Math.round(Number(m[1]) * mult);
}

function newId(): string {
  return randomBytes(32).toString('hex');
}

/** The state of a container's task as `ps` shows it. */
interface Row {
  info: ContainerInfo;
  status: ProcessStatus | 'created';
  pid: number;
  exitStatus?: number;
  exitedAt?: Date;
}

async function rowOf(client: BerthClient, info: ContainerInfo): Promise<Row> {
  try {
    const s = await (await client.containers.get(info.id)).task().then((t) => t.status());
    return { info, status: s.status, pid: s.pid, ...(s.status === 'stopped' ? { exitStatus: s.exitStatus } : {}), ...(s.exitedAt ? { exitedAt: s.exitedAt } : {}) };
  } catch (err) {
    if (isNotFound(err)) return { info, status: 'created', pid: 0 };
    throw err;
  }
}

function statusText(r: Row): string {
  if (r.status === 'running') return `Up ${since(r.info.createdAt).replace(/ ago$/, '')}`;
  if (r.status === 'stopped') return `Exited (${r.exitStatus ?? 0}) ${since(r.exitedAt)}`;
  if (r.status === 'paused') return 'Paused';
  return r.status === 'created' ? 'Created' : r.status;
}

const shortId = (id: string) => (/^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id);

const PS_COLUMNS: Column<Row>[] = [
  { header: 'CONTAINER ID', value: (r) => shortId(r.info.id) },
  { header: 'IMAGE', value: (r) => r.info.image },
  { header: 'CREATED', value: (r) => since(r.info.createdAt) },
  { header: 'STATUS', value: statusText },
  { header: 'PID', value: (r) => (r.pid ? String(r.pid) : '') },
];

const rowJson = (r: Row) => ({
  ID: r.info.id,
  Image: r.info.image,
  CreatedAt: r.info.createdAt?.toISOString() ?? '',
  State: r.status,
  Status: statusText(r),
  Pid: r.pid,
  ...(r.exitStatus !== undefined ? { ExitCode: r.exitStatus } : {}),
  Runtime: r.info.runtime,
  Snapshotter: r.info.snapshotter,
  Labels: r.info.labels,
});

/** Finds a container by its id or a unique prefix of it. */
export async function findContainer(client: BerthClient, ref: string): Promise<Container> {
  try {
    return await client.containers.get(ref);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const matches = (await client.containers.list()).filter((c) => c.id.startsWith(ref));
  if (matches.length === 1) return client.containers.get(matches[0]!.id);
  if (matches.length > 1) throw new CliError(`container "${ref}" is ambiguous: ${matches.length} containers start with it`);
  throw new CliError(`no such container: ${ref}`);
}

/** Runs `fn` with the terminal in raw mode (and restores it), when stdin is a terminal. */
async function withRawTerminal<T>(on: boolean, fn: () => Promise<T>): Promise<T> {
  const tty = on && process.stdin.isTTY;
  if (tty) process.stdin.setRawMode(true);
  try {
    return await fn();
  } finally {
    if (tty) process.stdin.setRawMode(false);
  }
}

/** Keeps the process's terminal the size of ours. */
function followTerminalSize(resize: (w: number, h: number) => Promise<void>): () => void {
  if (!process.stdout.isTTY) return () => {};
  const push = () => void resize(process.stdout.columns, process.stdout.rows).catch(() => {});
  push();
  process.stdout.on('resize', push);
  return () => process.stdout.off('resize', push);
}

/** Waits for the task, deletes it, and answers its exit code. */
async function waitAndDelete(task: Task): Promise<number> {
  const status = await task.wait();
  await task.delete().catch(() => {});
  return status.code;
}

async function createFromImage(client: BerthClient, id: string, image: string, o: NewContainerOptions, flags: RunFlags): Promise<Container> {
  try {
    return await client.containers.create(id, image, o);
  } catch (err) {
    if (!isNotFound(err) || !/image/.test(String((err as Error).message))) throw err;
  }
  process.stderr.write(`Unable to find image '${image}' locally\n`);
  await pullImage(client, image, { ...(flags.plainHttp ? { plainHttp: true } : {}), ...(flags.hostsDir ? { hostsDir: flags.hostsDir } : {}) }, process.stderr);
  return client.containers.create(id, image, o);
}

async function run(client: BerthClient, namespace: string, image: string, command: string[], flags: RunFlags): Promise<number> {
  if (flags.detach && flags.rm) throw new CliError('--rm and -d cannot be used together', EXIT.daemon);
  if (flags.restart && !['no', 'always', 'unless-stopped', 'on-failure'].includes(flags.restart.split(':')[0]!)) throw new CliError(`invalid restart policy "${flags.restart}"`, EXIT.daemon);
  if (flags.restart && flags.restart !== 'no' && !flags.detach) throw new CliError('--restart needs -d', EXIT.daemon);
  const id = flags.name ?? newId();
  const labels = parsePairs(flags.label);
  const logPath = flags.detach ? join(logDir(), namespace, `${id}.log`) : undefined;
  if (logPath) labels[LOG_LABEL] = logPath;
  if (flags.restart && flags.restart !== 'no') {
    labels[RESTART_STATUS] = 'running';
    labels[RESTART_POLICY] = flags.restart;
    labels[RESTART_LOG_URI] = `file://${logPath}`;
  }
  const o: NewContainerOptions = {
    ...(command.length > 0 ? { command } : {}),
    ...(flags.entrypoint !== undefined ? { entrypoint: flags.entrypoint === '' ? [] : [flags.entrypoint] } : {}),
    env: flags.env,
    mounts: flags.volume.map(volume),
    labels,
    ...(flags.workdir ? { cwd: flags.workdir } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    ...(flags.tty ? { tty: true } : {}),
    ...(flags.hostname ? { hostname: flags.hostname } : {}),
    ...(flags.readOnly ? { readonlyRootfs: true } : {}),
    ...(flags.net === 'host' ? { hostNetwork: true } : {}),
    ...(flags.memory ? { memoryLimit: bytes(flags.memory) } : {}),
    ...(flags.cpus ? { cpus: nonNegative('--cpus', flags.cpus, EXIT.daemon) } : {}),
  };
  const container = await createFromImage(client, id, image, o, flags);
  const removeContainer = async () => {
    if (flags.rm) await container.delete().catch(() => {});
  };
  let task: Task;
  try {
    if (logPath) {
      mkdirSync(dirname(logPath), { recursive: true });
      task = await container.newTask({ logFile: logPath });
    } else {
      task = await container.newTask({
        ...(flags.interactive ? { stdin: process.stdin } : {}),
        stdout: process.stdout,
        ...(flags.tty ? { terminal: true } : { stderr: process.stderr }),
      });
    }
  } catch (err) {
    await removeContainer();
    throw new CliError((err as Error).message, startFailureCode(err), { cause: err });
  }
  if (flags.detach) {
    try {
      await task.start();
    } catch (err) {
      await task.delete().catch(() => {});
      throw new CliError((err as Error).message, startFailureCode(err), { cause: err });
    }
    process.stdout.write(`${id}\n`);
    return 0;
  }
  return withRawTerminal(!!flags.tty && !!flags.interactive, async () => {
    const waiting = task.wait();
    try {
      await task.start();
    } catch (err) {
      await task.delete().catch(() => {});
      await removeContainer();
      throw new CliError((err as Error).message, startFailureCode(err), { cause: err });
    }
    const stopResizing = flags.tty ? followTerminalSize((w, h) => task.resize(w, h)) : () => {};
    // Signals reach the container, as `docker run --sig-proxy` does.
    const forward = (sig: NodeJS.Signals) => void task.kill(sig).catch(() => {});
    const signals: NodeJS.Signals[] = flags.tty ? [] : ['SIGINT', 'SIGTERM'];
    for (const s of signals) process.on(s, forward);
    try {
      const status = await waiting;
      await task.delete().catch(() => {});
      return status.code;
    } finally {
      stopResizing();
      for (const s of signals) process.off(s, forward);
      if (flags.interactive) process.stdin.pause();
      await removeContainer();
    }
  });
}

/** Reads the last `n` lines of a file (the whole file when n is undefined). */
function tailStart(path: string, n: number | undefined): number {
  if (n === undefined) return 0;
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    let pos = size;
    let lines = 0;
    const buf = Buffer.alloc(64 * 1024);
    while (pos > 0) {
      const len = Math.min(buf.length, pos);
      pos -= len;
      readSync(fd, buf, 0, len, pos);
      for (let i = len - 1; i >= 0; i--) {
        if (buf[i] === 0x0a && !(pos + i === size - 1)) {
          if (++lines >= n) return pos + i + 1;
        }
      }
    }
    return 0;
  } finally {
    closeSync(fd);
  }
}

async function copyFrom(path: string, start: number, out: NodeJS.WritableStream): Promise<number> {
  const size = statSync(path).size;
  if (size <= start) return start;
  await new Promise<void>((resolve, reject) => {
    const s = createReadStream(path, { start, end: size - 1 });
    s.on('error', reject);
    s.on('end', resolve);
    s.pipe(out, { end: false });
  });
  return size;
}

/** `berth run`, `ps`, `start`, `stop`, `kill`, `rm`, `inspect`, `exec`, `logs`, `top`. */
export function registerContainerCommands(program: Command): void {
  program
    .command('run')
    .description('create and start a container from an image (pulled if missing)')
    .argument('<image>')
    .argument('[command...]', 'the command, replacing the image\'s cmd')
    .passThroughOptions()
    .option('-d, --detach', 'run in the background and print the container id')
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a terminal')
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'the container id (random by default)')
    .option('-e, --env <KEY=value>', 'set an environment variable (repeatable)', collect, [])
    .option('-v, --volume <src:dst[:ro]>', 'bind mount a host path (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user (name or uid) and group')
    .option('--restart <policy>', 'no, always, unless-stopped or on-failure[:N] (needs -d)')
    .option('-l, --label <KEY=value>', 'container label (repeatable)', collect, [])
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint')
    .option('-h, --hostname <name>', 'hostname inside the container')
    .option('--read-only', 'mount the root filesystem read-only')
    .option('--net <mode>', '"host" to share the host\'s network')
    .option('-m, --memory <size>', 'memory limit (e.g. 64m)')
    .option('--cpus <n>', 'CPU limit')
    .option('--plain-http', 'speak plain HTTP to the registry when pulling')
    .option('--hosts-dir <dir>', 'hosts.toml directory for pulling')
    .action(async (image: string, command: string[], flags: RunFlags, cmd: Command) => {
      process.exitCode = await withClient(cmd, (client, g) => run(client, g.namespace, image, command, flags)).catch((err) => {
        if (err instanceof CliError) throw err;
        throw new CliError((err as Error).message, EXIT.daemon, { cause: err });
      });
    });

  program
    .command('ps')
    .description('list containers (running ones unless -a)')
    .option('-a, --all', 'show every container')
    .option('-q, --quiet', 'print ids only')
    .option('--format <format>', 'table (the default), json, or a template such as "{{.ID}} {{.Status}}"')
    .option('--json', 'print JSON (the same as --format json)')
    .option('-f, --filter <filter>', 'containerd filter, e.g. labels."app"==web (repeatable)', collect, [])
    .action(async (f: ListingFormat & { all?: boolean; filter: string[] }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const infos = (await client.containers.list(f.filter)).sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0));
        const rows = (await Promise.all(infos.map((i) => rowOf(client, i)))).filter((r) => f.all || r.status === 'running' || r.status === 'paused');
        printListing(process.stdout, rows, PS_COLUMNS, rowJson, f, (r) => r.info.id);
      });
    });

  program
    .command('start')
    .description('start stopped containers in the background (output to their log)')
    .argument('<container...>')
    .action(async (refs: string[], _f: unknown, cmd: Command) => {
      await withClient(cmd, async (client, g) => {
        for (const ref of refs) {
          const c = await findContainer(client, ref);
          try {
            const old = await c.task();
            const s = await old.status();
            if (s.status === 'running') throw new CliError(`container ${c.id} is already running`);
            await old.delete();
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          const logPath = c.info.labels[LOG_LABEL] ?? join(logDir(), g.namespace, `${c.id}.log`);
          mkdirSync(dirname(logPath), { recursive: true });
          if (!c.info.labels[LOG_LABEL]) await c.setLabels({ ...c.info.labels, [LOG_LABEL]: logPath });
          const task = await c.newTask({ logFile: logPath });
          await task.start();
          process.stdout.write(`${ref}\n`);
        }
      });
    });

  program
    .command('stop')
    .description('stop running containers: SIGTERM, then SIGKILL after the timeout')
    .argument('<container...>')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(async (refs: string[], f: { time: string }, cmd: Command) => {
      const timeout = nonNegative('--time', f.time) * 1000;
      await withClient(cmd, async (client) => {
        for (const ref of refs) {
          const c = await findContainer(client, ref);
          // The restart monitor must not start it again: told first, as Docker's stop does.
          if (c.info.labels[RESTART_STATUS]) await c.setLabels({ ...c.info.labels, [RESTART_STATUS]: 'stopped' });
          let task: Task;
          try {
            task = await c.task();
            if ((await task.status()).status !== 'running') {
              process.stdout.write(`${ref}\n`);
              continue; // already stopped (or between two restarts): nothing to signal
            }
          } catch (err) {
            if (!isNotFound(err)) throw err;
            process.stdout.write(`${ref}\n`);
            continue;
          }
          const exited = task.wait();
          try {
            await task.kill('SIGTERM');
          } catch (err) {
            if (!isNotFound(err)) throw err; // it exited meanwhile
          }
          let timer: NodeJS.Timeout | undefined;
          const killed = new Promise<void>((resolve) => {
            timer = setTimeout(() => void task.kill('SIGKILL', { all: true }).then(resolve, resolve), timeout);
          });
          await Promise.race([exited, killed.then(() => exited)]);
          clearTimeout(timer);
          process.stdout.write(`${ref}\n`);
        }
      });
    });

  program
    .command('kill')
    .description('send a signal to running containers')
    .argument('<container...>')
    .option('-s, --signal <signal>', 'signal name or number', 'SIGKILL')
    .action(async (refs: string[], f: { signal: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const signal = /^\d+$/.test(f.signal) ? Number(f.signal) : f.signal.startsWith('SIG') ? f.signal : `SIG${f.signal}`;
        for (const ref of refs) {
          const c = await findContainer(client, ref);
          await (await c.task()).kill(signal);
          process.stdout.write(`${ref}\n`);
        }
      });
    });

  program
    .command('rm')
    .description('remove containers (and their snapshots)')
    .argument('<container...>')
    .option('-f, --force', 'kill a running container first')
    .action(async (refs: string[], f: { force?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        for (const ref of refs) {
          const c = await findContainer(client, ref);
          try {
            const task = await c.task();
            const s = await task.status();
            if (s.status === 'running' || s.status === 'paused') {
              if (!f.force) throw new CliError(`container ${c.id} is running: stop it first or use --force`);
              const exited = task.wait();
              await task.kill('SIGKILL', { all: true });
              await exited;
            }
            await task.delete();
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          await c.delete();
          process.stdout.write(`${ref}\n`);
        }
      });
    });

  program
    .command('inspect')
    .description('show containers as JSON: record, spec and task state')
    .argument('<container...>')
    .action(async (refs: string[], _f: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const out = [];
        for (const ref of refs) {
          const c = await findContainer(client, ref);
          const row = await rowOf(client, c.info);
          out.push({ ...rowJson(row), Spec: c.spec });
        }
        printJson(process.stdout, out);
      });
    });

  program
    .command('exec')
    .description('run a command in a running container')
    .argument('<container>')
    .argument('<command...>')
    .passThroughOptions()
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a terminal')
    .option('-e, --env <KEY=value>', 'set an environment variable (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .action(async (ref: string, command: string[], f: { interactive?: boolean; tty?: boolean; env: string[]; workdir?: string }, cmd: Command) => {
      process.exitCode = await withClient(cmd, async (client) => {
        const c = await findContainer(client, ref);
        const task = await c.task();
        const base = c.spec.process;
        const env = f.env.length > 0 ? [...(base?.env ?? []).filter((e) => !f.env.some((o) => o.split('=')[0] === e.split('=')[0])), ...f.env] : undefined;
        const proc = await task.exec(`exec-${randomBytes(6).toString('hex')}`, {
          args: command,
          ...(env ? { env } : {}),
          ...(f.workdir ? { cwd: f.workdir } : {}),
          ...(f.interactive ? { stdin: process.stdin } : {}),
          stdout: process.stdout,
          ...(f.tty ? { terminal: true } : { stderr: process.stderr }),
        });
        return withRawTerminal(!!f.tty && !!f.interactive, async () => {
          const waiting = proc.wait();
          try {
            await proc.start();
          } catch (err) {
            await proc.delete().catch(() => {});
            throw new CliError((err as Error).message, startFailureCode(err), { cause: err });
          }
          const stop = f.tty ? followTerminalSize((w, h) => proc.resize(w, h)) : () => {};
          try {
            const s = await waiting;
            return s.code;
          } finally {
            stop();
            if (f.interactive) process.stdin.pause();
            await proc.delete().catch(() => {});
          }
        });
      });
    });

  program
    .command('logs')
    .description('print the output of a container started with -d (or by start)')
    .argument('<container>')
    .option('-f, --follow', 'keep printing until the container stops')
    .option('-n, --tail <lines>', 'only the last lines')
    .action(async (ref: string, f: { follow?: boolean; tail?: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const c = await findContainer(client, ref);
        const path = c.info.labels[LOG_LABEL];
        if (!path || !existsSync(path)) throw new CliError(`container ${c.id} has no log: only containers run with -d or started by berth start have one`);
        let pos = await copyFrom(path, tailStart(path, f.tail !== undefined && f.tail !== 'all' ? Math.floor(nonNegative('--tail', f.tail)) : undefined), process.stdout);
        if (!f.follow) return;
        let task: Task | undefined;
        try {
          task = await c.task();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        let running = task !== undefined && (await task.status()).status === 'running';
        const exited = running && task ? task.wait().then(() => (running = false)) : Promise.resolve();
        while (running) {
          await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
          pos = await copyFrom(path, pos, process.stdout);
        }
        await copyFrom(path, pos, process.stdout);
      });
    });

  program
    .command('top')
    .description('list the processes of a running container')
    .argument('<container>')
    .action(async (ref: string, _f: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const c = await findContainer(client, ref);
        const pids = await (await c.task()).pids();
        const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
        if (pids.length === 0) return;
        process.stdout.write(execFileSync('ps', ['-o', 'uid,pid,ppid,stime,time,args', '-p', pids.join(',')], { encoding: 'utf8' }));
      });
    });
}

export { shortId };
