import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, MethodDescriptor, createClient } from '@berth/grpc';
import { CtrOptions, CtrResult, runCtr } from './ctr';
import { tempDir } from './temp';

/**
 * The berthd program in this repository, as the README's quick start runs it: bin/berthd, which
 * runs the bundle the build makes (apps/berthd/dist/berthd.js).
 */
export const BERTHD_MAIN = resolve(__dirname, '../../../apps/berthd/bin/berthd');
const BERTHD_BUNDLE = resolve(__dirname, '../../../apps/berthd/dist/berthd.js');

export interface TestDaemonOptions {
  /** Extra TOML appended to the generated config (root, state and address are set). */
  config?: string;
  logLevel?: string;
  /** Reuse an existing directory (to restart on the same root); a temp dir by default. */
  dir?: string;
  /** The root directory; `<dir>/root` by default. */
  root?: string;
  /** Expect startup to fail: resolve once the process exits instead of once it serves. */
  expectExit?: boolean;
  timeoutMs?: number;
  /** Environment variables for the daemon, over the test's own. */
  env?: Record<string, string>;
  /** Node options before berthd's script (say `--max-semi-space-size=2`). */
  nodeArgs?: string[];
}

/**
 * A real berthd in its own process, on a temp root, state and unix socket; never the system's
 * paths. Tests get typed clients and a ctr runner, and must call `stop()` (or `cleanup()`).
 */
export class TestDaemon {
  private exited?: Promise<number | null>;
  private logs = '';
  readonly clients: Array<{ close(): void }> = [];

  private constructor(
    readonly dir: string,
    private readonly options: TestDaemonOptions,
    private child?: ChildProcess,
  ) {}

  get root(): string {
    return this.options.root ?? join(this.dir, 'root');
  }
  get state(): string {
    return join(this.dir, 'state');
  }
  get address(): string {
    return join(this.dir, 'state', 'berthd.sock');
  }
  get configPath(): string {
    return join(this.dir, 'config.toml');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  /** What the daemon has written to stderr so far (its log). */
  get output(): string {
    return this.logs;
  }

  /** Starts a daemon and waits until its socket serves. */
  static async start(options: TestDaemonOptions = {}): Promise<TestDaemon> {
    if (!existsSync(BERTHD_BUNDLE)) throw new Error(`${BERTHD_BUNDLE} is missing: build first (npm run build)`);
    const dir = options.dir ?? tempDir('berthd-test-').path;
    const d = new TestDaemon(dir, options);
    await d.launch();
    return d;
  }

  private async launch(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(
      this.configPath,
      // The caller's text goes between the top-level keys and [grpc], so that its own top-level
      // keys (disabled_plugins...) stay top-level and its tables stay its own.
      `version = 2\nroot = ${JSON.stringify(this.root)}\nstate = ${JSON.stringify(this.state)}\n` +
        (this.options.config ?? '') +
        `\n[grpc]\naddress = ${JSON.stringify(this.address)}\n`,
    );
    this.logs = '';
    const child = spawn(process.execPath, [...(this.options.nodeArgs ?? []), BERTHD_MAIN, '--config', this.configPath, '--log-level', this.options.logLevel ?? 'debug'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.options.env ? { ...process.env, ...this.options.env } : process.env,
    });
    this.child = child;
    child.stdout!.on('data', (b: Buffer) => (this.logs += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.logs += b.toString()));
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
    if (this.options.expectExit) return;
    const deadline = Date.now() + (this.options.timeoutMs ?? 20_000);
    let gone = false;
    void this.exited.then(() => (gone = true));
    // The boot line comes after every socket is bound and after the per-plugin lines (logfmt or JSON).
    while (!/msg="berthd successfully booted|"msg":"berthd successfully booted/.test(this.logs)) {
      if (gone) throw new Error(`berthd exited during startup:\n${this.logs}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`berthd did not start in time:\n${this.logs}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Resolves with the exit code once the process has exited. */
  async waitExit(): Promise<number | null> {
    return this.exited ?? null;
  }

  /** Creates a typed client for one service, sending `namespace` on every call. */
  client<D extends Record<string, MethodDescriptor<any, any>>>(definition: D, namespace?: string): Client<D> {
    const c = createClient(definition, this.address, { namespace });
    this.clients.push(c);
    return c;
  }

  /** Runs the stock ctr against this daemon. */
  ctr(args: readonly string[], options?: CtrOptions): Promise<CtrResult> {
    return runCtr(this.address, args, options);
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    for (const c of this.clients.splice(0)) c.close();
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.waitExit();
  }

  /** Starts the daemon again on the same directory (after kill or stop). */
  async restart(): Promise<void> {
    await this.kill('SIGTERM');
    await this.launch();
  }

  /** Stops the daemon (SIGTERM, then SIGKILL after a grace period). */
  async stop(): Promise<number | null> {
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 15_000);
    try {
      return await this.kill('SIGTERM');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the daemon and removes its directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
