import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CTR_PATH, CtrOptions, CtrResult, runCtr } from './ctr';
import { CONTAINERD2_PATH, CTR2_PATH, REFERENCE_CONTAINERD2_VERSION } from './reference-tools';
import { tempDir } from './temp';

/** The containerd binary from Debian's package, the reference Berth is compared with. */
export const CONTAINERD_PATH = ['/usr/bin/containerd', '/usr/local/bin/containerd'].find((p) => existsSync(p));

export interface ReferenceContainerdOptions {
  /** Reuse a directory; a temp dir by default. */
  dir?: string;
  /**
   * Extra TOML placed between the generated top-level keys and `[grpc]`: top-level keys of its
   * own stay top-level, and tables (`[plugins.'...']`) stay its own. It must not repeat
   * `version`, `root`, `state`, `imports` or `disabled_plugins`.
   */
  config?: string;
  /** Plugins to disable besides the ones the flavor disables (CRI...). */
  disabled?: readonly string[];
  /** Extra daemon flags, e.g. `['--log-level', 'debug']`. */
  args?: readonly string[];
  /** Startup deadline in ms; 20000 by default. */
  timeoutMs?: number;
  /**
   * Keep the CRI plugin enabled: 1.6's `io.containerd.grpc.v1.cri`, or 2.x's
   * `io.containerd.cri.v1.{images,runtime}`, `io.containerd.grpc.v1.cri` and the pod sandbox
   * controller (config version 3 names: `plugins."io.containerd.cri.v1.runtime".cni`...).
   * `config` must then set `cni.conf_dir` under the test's directory: its default,
   * /etc/cni/net.d, would be created and watched on the machine.
   */
  cri?: boolean;
}

/** What differs between the reference daemons: the binaries and the top of the config. */
interface Flavor {
  /** For error messages, e.g. "containerd 2.4.2". */
  name: string;
  containerd: string | undefined;
  ctr: string | undefined;
  /** How to get the binary when it is missing. */
  install: string;
  /** Config lines before the caller's text: version, imports, disabled plugins. */
  header: string;
}

const toml = (values: readonly string[]): string => `[${values.map((v) => JSON.stringify(v)).join(', ')}]`;

const CONTAINERD_1_6: Flavor = {
  name: 'containerd',
  containerd: CONTAINERD_PATH,
  ctr: CTR_PATH,
  install: 'apt-get install containerd',
  header: `version = 2\ndisabled_plugins = ${toml(['io.containerd.grpc.v1.cri'])}\n`,
};

const CONTAINERD_2: Flavor = {
  name: `containerd ${REFERENCE_CONTAINERD2_VERSION ?? '2.x'}`,
  containerd: CONTAINERD2_PATH,
  ctr: CTR2_PATH,
  install: 'run tools/reference-tools.sh (tools/setup.sh does)',
  // Version 3 keeps the [grpc] table the shared config tail writes; containerd 2.4 migrates it
  // to version 4 (where the listeners are plugins, io.containerd.server.v1.grpc...) and logs a
  // warning. A version 4 file with [grpc] would silently serve on /run/containerd. `imports` is
  // emptied because the 2.x default imports /etc/containerd/conf.d/*.toml, the system's drop-ins.
  header:
    `version = 3\nimports = []\ndisabled_plugins = ${toml([
      // CRI: the image and runtime services, the gRPC API, and the pod sandbox controller that
      // fails to load without them.
      'io.containerd.cri.v1.images',
      'io.containerd.cri.v1.runtime',
      'io.containerd.grpc.v1.cri',
      'io.containerd.podsandbox.controller.v1.podsandbox',
      // NRI would serve /var/run/nri/nri.sock, shared by the whole machine.
      'io.containerd.nri.v1.nri',
    ])}\n`,
};

/** The flavor's config header with more plugins in its `disabled_plugins` list. */
function withDisabled(header: string, more: readonly string[]): string {
  if (more.length === 0) return header;
  return header.replace(/disabled_plugins = \[/, `disabled_plugins = [${more.map((p) => JSON.stringify(p)).join(', ')}, `);
}

/**
 * A real containerd 1.6 (Debian's) on a temp root, state and socket (never the system's), with
 * the CRI plugin disabled as in the reference traces. For side-by-side compatibility tests and
 * benchmarks. {@link ReferenceContainerd2} is the same for containerd 2.x.
 */
export class ReferenceContainerd {
  private logs = '';
  private exited!: Promise<void>;
  private child?: ChildProcess;

  protected constructor(
    readonly dir: string,
    private readonly flavor: Flavor,
  ) {}

  get address(): string {
    return join(this.dir, 'state', 'containerd.sock');
  }
  get root(): string {
    return join(this.dir, 'root');
  }
  get state(): string {
    return join(this.dir, 'state');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  /** The ctr binary that matches this daemon's version. */
  get ctrPath(): string {
    return this.flavor.ctr ?? CTR_PATH;
  }
  /** What the daemon has written so far (its log). */
  get output(): string {
    return this.logs;
  }

  /** Starts Debian's containerd 1.6 and waits until it has booted. */
  static start(options: ReferenceContainerdOptions = {}): Promise<ReferenceContainerd> {
    return ReferenceContainerd.launch(new ReferenceContainerd(options.dir ?? tempDir('containerd-ref-').path, CONTAINERD_1_6), options);
  }

  protected static async launch<T extends ReferenceContainerd>(c: T, options: ReferenceContainerdOptions): Promise<T> {
    const { flavor } = c;
    if (!flavor.containerd || !flavor.ctr) throw new Error(`${flavor.name} is not installed (${flavor.install})`);
    mkdirSync(c.state, { recursive: true });
    const configPath = join(c.dir, 'config.toml');
    let header = withDisabled(flavor.header, options.disabled ?? []);
    if (options.cri) {
      if (!/conf_dir\s*=/.test(options.config ?? '')) throw new Error('cri: the config must set cni.conf_dir under the test directory');
      // 2.x splits CRI into four plugins (NRI stays disabled); 1.6 has the one.
      header = header.replace(/"io\.containerd\.(grpc\.v1\.cri|cri\.v1\.images|cri\.v1\.runtime|podsandbox\.controller\.v1\.podsandbox)",? ?/g, '');
    }
    writeFileSync(
      configPath,
      `${header}root = ${JSON.stringify(c.root)}\nstate = ${JSON.stringify(c.state)}\n` +
        (options.config ?? '') +
        `\n[grpc]\naddress = ${JSON.stringify(c.address)}\n`,
    );
    const child = spawn(flavor.containerd, ['--config', configPath, ...(options.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.child = child;
    child.stdout!.on('data', (b: Buffer) => (c.logs += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (c.logs += b.toString()));
    c.exited = new Promise((res) => child.once('exit', () => res()));
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    while (!/containerd successfully booted/.test(c.logs)) {
      if (child.exitCode !== null) throw new Error(`${flavor.name} exited during startup:\n${c.logs}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${flavor.name} did not start in time:\n${c.logs}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    // A config the daemon read differently than meant must never leave it on the system's sockets.
    const elsewhere = [...c.logs.matchAll(/msg="?serving\.\.\."? address="?([^"\s]+)/g)].map((m) => m[1]).filter((a) => !a.startsWith(c.dir));
    if (elsewhere.length > 0) {
      child.kill('SIGKILL');
      await c.exited;
      throw new Error(`${flavor.name} serves outside ${c.dir} (${elsewhere.join(', ')}); stopped it:\n${c.logs}`);
    }
    return c;
  }

  /** Runs the matching ctr (1.6 for this class, 2.x for ReferenceContainerd2) against this daemon. */
  ctr(args: readonly string[], options?: CtrOptions): Promise<CtrResult> {
    return runCtr(this.address, args, { ctr: this.ctrPath, ...options });
  }

  /** Stops the daemon (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** Stops the daemon and removes its directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A real containerd 2.x (built by tools/reference-tools.sh) on a temp root, state and socket,
 * never the system's, with CRI and NRI disabled. It serves the Transfer and Streaming APIs that
 * ctr 2.x uses for pull, push, import, export and tag; `ctr()` runs ctr 2.x.
 */
export class ReferenceContainerd2 extends ReferenceContainerd {
  /** Starts containerd 2.x and waits until it has booted. */
  static override start(options: ReferenceContainerdOptions = {}): Promise<ReferenceContainerd2> {
    return ReferenceContainerd.launch(new ReferenceContainerd2(options.dir ?? tempDir('containerd2-ref-').path, CONTAINERD_2), options);
  }
}
