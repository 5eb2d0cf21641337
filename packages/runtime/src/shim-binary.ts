import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { InvalidArgumentError, UnknownError, wrap } from '@berth/errdefs';
import { run } from '@berth/exec';

/**
 * Returns the shim binary name of a runtime name, from its last two dot-separated parts:
 * `io.containerd.runc.v2` -> `containerd-shim-runc-v2`. An absolute path is used as is.
 */
export function shimBinaryName(runtime: string): string {
  if (isAbsolute(runtime)) return runtime;
  const parts = runtime.split('.');
  if (parts.length < 2) return '';
  return `containerd-shim-${parts[parts.length - 2]}-${parts[parts.length - 1]}`;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the shim of a runtime: `runtimePath` when given, else its binary name on PATH, else next
 * to this daemon's executable. The errors read as containerd's.
 */
export function resolveShimBinary(runtime: string, runtimePath = '', env: NodeJS.ProcessEnv = process.env): string {
  if (runtimePath !== '') return runtimePath;
  const name = shimBinaryName(runtime);
  if (name === '') throw new InvalidArgumentError(`invalid runtime name ${runtime}, correct runtime name should be either format like \`io.containerd.runc.v1\` or a full path to the binary`);
  if (isAbsolute(name)) return name;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (executable(candidate)) return candidate;
  }
  throw wrap(new UnknownError(`runtime ${JSON.stringify(runtime)} binary not installed ${JSON.stringify(name)}: file does not exist`, { bare: true }), 'failed to resolve runtime path');
}

/** Where and how a shim command runs: containerd's global shim flags and environment. */
export interface ShimCommandConfig {
  binary: string;
  namespace: string;
  /** The daemon's gRPC socket (`-address`); TTRPC_ADDRESS is `<address>.ttrpc`. */
  address: string;
  ttrpcAddress: string;
  publishBinary: string;
  /** The bundle: the command's working directory. */
  cwd: string;
  debug?: boolean;
}

export interface ShimCommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * Runs `<shim> -namespace NS -address A -publish-binary P [-debug] <args...>` in the bundle with
 * GOMAXPROCS=2 and TTRPC_ADDRESS, writing `stdin` (the options Any, possibly empty) to it, off
 * the event loop.
 */
export function runShimCommand(config: ShimCommandConfig, args: readonly string[], stdin: Uint8Array = new Uint8Array()): Promise<ShimCommandResult> {
  const argv = ['-namespace', config.namespace, '-address', config.address, '-publish-binary', config.publishBinary, ...(config.debug ? ['-debug'] : []), ...args];
  // Started from @berth/exec's worker thread: a fork of the daemon blocks the forking thread.
  return run(config.binary, argv, {
    cwd: config.cwd,
    env: { ...process.env, GOMAXPROCS: '2', TTRPC_ADDRESS: config.ttrpcAddress },
    input: stdin,
  });
}
