import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CtrOptions, CtrResult, runCtr } from './ctr';
import { tempDir } from './temp';

/** The containerd binary from Debian's package, the reference Berth is compared with. */
export const CONTAINERD_PATH = ['/usr/bin/containerd', '/usr/local/bin/containerd'].find((p) => existsSync(p));

/**
 * A real containerd on a temp root, state and socket (never the system's), with the CRI plugin
 * disabled as in the reference traces. For side-by-side compatibility tests and benchmarks.
 */
export class ReferenceContainerd {
  private logs = '';
  private exited!: Promise<void>;

  private constructor(readonly dir: string, private child?: ChildProcess) {}

  get address(): string {
    return join(this.dir, 'state', 'containerd.sock');
  }
  get root(): string {
    return join(this.dir, 'root');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get output(): string {
    return this.logs;
  }

  static async start(options: { dir?: string; config?: string; timeoutMs?: number } = {}): Promise<ReferenceContainerd> {
    if (!CONTAINERD_PATH) throw new Error('containerd is not installed (apt-get install containerd)');
    const dir = options.dir ?? tempDir('containerd-ref-').path;
    const c = new ReferenceContainerd(dir);
    mkdirSync(join(dir, 'state'), { recursive: true });
    const configPath = join(dir, 'config.toml');
    writeFileSync(
      configPath,
      `version = 2\nroot = ${JSON.stringify(c.root)}\nstate = ${JSON.stringify(join(dir, 'state'))}\n` +
        `disabled_plugins = ["io.containerd.grpc.v1.cri"]\n` +
        (options.config ?? '') +
        `\n[grpc]\naddress = ${JSON.stringify(c.address)}\n`,
    );
    const child = spawn(CONTAINERD_PATH, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.child = child;
    child.stdout!.on('data', (b: Buffer) => (c.logs += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (c.logs += b.toString()));
    c.exited = new Promise((res) => child.once('exit', () => res()));
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    while (!/containerd successfully booted/.test(c.logs)) {
      if (child.exitCode !== null) throw new Error(`containerd exited during startup:\n${c.logs}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`containerd did not start in time:\n${c.logs}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return c;
  }

  ctr(args: readonly string[], options?: CtrOptions): Promise<CtrResult> {
    return runCtr(this.address, args, options);
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
