import type { DependencyContainer } from 'tsyringe';
import type { Logger } from '@berth/log';
import type { Token } from './token';

/** An OCI platform as containerd reports it for a plugin. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** How a plugin's TOML section (`[plugins."<type>.<id>"]`) becomes its typed config. */
export interface PluginConfig<C> {
  /** The defaults, also what `berthd config default` prints. Keys are the TOML keys. */
  defaults: () => C;
  /**
   * Builds the config from the user's section merged over the defaults. Throws to refuse it; the
   * plugin is then reported as failed. Defaults to a check that each key has the default's type.
   */
  parse?: (section: Record<string, unknown>, defaults: C) => C;
}

/** What a plugin's `init` receives. */
export interface InitContext<C = unknown> {
  readonly type: string;
  readonly id: string;
  /** `<root>/<type>.<id>`; the plugin creates it if it needs it. */
  readonly root: string;
  /** `<state>/<type>.<id>`; the plugin creates it if it needs it. */
  readonly state: string;
  /** The daemon's gRPC socket path and its ttrpc sibling. */
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly config: C;
  readonly logger: Logger;
  /** Key/values shown by introspection (e.g. `root`); init may add to it. */
  readonly exports: Record<string, string>;
  /** A child of the daemon's container for the plugin's own classes. */
  readonly container: DependencyContainer;
  /**
   * The daemon's plugin set as it loads: reports of every plugin so far, and all of them once
   * startup is done (introspection reads it at call time).
   */
  readonly plugins: PluginSetView;
  /** Returns the instance of the first loaded plugin of a required type. */
  getSingle<T>(type: string): T;
  /** Returns the instances of all loaded plugins of a required type, by id. */
  getAll<T>(type: string): Map<string, T>;
  /** Returns the instance of one plugin of a required type. */
  getById<T>(type: string, id: string): T;
  /** Resolves a token provided by a required plugin type. */
  get<T>(t: Token<T>): T;
  /** Resolves all instances registered under a token of a required plugin type. */
  getAllOf<T>(t: Token<T>): T[];
  /**
   * Registers a value under one of this plugin type's tokens (besides the instance), made
   * available to later plugins once init succeeds.
   */
  provide<T>(t: Token<T>, value: T): void;
  /** Registers a cleanup that runs when the daemon closes plugins (in reverse load order). */
  onClose(fn: () => void | Promise<void>): void;
}

/** The read-only view of the loaded plugins that init contexts get. */
export interface PluginSetView {
  readonly reports: ReadonlyArray<PluginReport>;
}

/** A plugin: what it is, what it needs and how it starts. Plugins are values. */
export interface Registration<C = any, I = unknown> {
  /** Reverse-DNS type as containerd's (`io.containerd.grpc.v1`). */
  readonly type: string;
  readonly id: string;
  /** Plugin types this one needs loaded first; `*` means every other type. */
  readonly requires?: readonly string[];
  readonly config?: PluginConfig<C>;
  readonly platforms?: readonly Platform[];
  readonly capabilities?: readonly string[];
  /** Tokens under which the instance is registered in the daemon's container. */
  readonly provides?: readonly Token<I>[];
  init(ctx: InitContext<C>): Promise<I> | I;
}

/** Identifies a plugin in configs and messages: `<type>.<id>`. */
export function pluginKey(r: { type: string; id: string }): string {
  return `${r.type}.${r.id}`;
}

/** Defines a plugin, keeping its config and instance types for `init`. */
export function definePlugin<C = undefined, I = unknown>(r: Registration<C, I>): Registration<C, I> {
  return r;
}

/** The platform of this process in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: process.platform, architecture: arch[process.arch] ?? process.arch };
}

/** Thrown by a plugin's init when it cannot run here; reported as `skip`, not as an error. */
export class SkipPluginError extends Error {
  constructor(reason: string) {
    super(reason.endsWith(': skip plugin') ? reason : `${reason}: skip plugin`);
    Object.defineProperty(this, 'name', { value: 'SkipPluginError', enumerable: false });
  }
}

export type PluginStatus = 'ok' | 'skip' | 'error';

/** What became of one plugin at startup: the startup log line and the introspection entry. */
export interface PluginReport {
  readonly type: string;
  readonly id: string;
  readonly requires: readonly string[];
  readonly platforms: readonly Platform[];
  readonly capabilities: readonly string[];
  readonly exports: Readonly<Record<string, string>>;
  readonly status: PluginStatus;
  /** Why it was skipped or failed; skip messages end in ": skip plugin" as ctr expects. */
  readonly error?: string;
  readonly ms: number;
}

