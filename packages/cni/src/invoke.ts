import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, DeadlineExceededError, FailedPreconditionError, UnknownError } from '@berth/errdefs';
import { run } from '@berth/exec';
import { goJson } from './config';

/** The three CNI commands a runtime sends (spec 1.0; VERSION is not used). */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

/** What one plugin run gets: the CNI_* environment and its stdin configuration. */
export interface PluginCall {
  command: CniCommand;
  /** Plugin type: the binary's file name. */
  type: string;
  containerId: string;
  /** CNI_NETNS; '' on a DEL whose namespace is gone. */
  netns: string;
  ifName: string;
  /** CNI_ARGS pairs, in order. */
  args: [string, string][];
  /** The complete stdin configuration (name, cniVersion, prevResult, runtimeConfig injected). */
  config: Record<string, unknown>;
}

/** Where plugins are found and how long they may run. */
export interface InvokeOptions {
  binDirs: readonly string[];
  /** SIGKILL a plugin after this many milliseconds. */
  timeoutMs: number;
}

/** CNI error codes of the spec (1-99 are reserved for it). */
export const CNI_ERROR_CODES: Readonly<Record<number, string>> = {
  1: 'incompatible CNI version',
  2: 'unsupported field in network configuration',
  3: 'container unknown or does not exist',
  4: 'invalid necessary environment variables',
  5: 'I/O failure',
  6: 'failed to decode content',
  7: 'invalid network config',
  11: 'try again later',
};

/**
 * Returned when a plugin exits non-zero. The message is `plugin type="<type>" failed (<cmd>): <msg>[; <details>]`
 * as libcni words it; `code`, `msg` and `details` are the plugin's error object (code 0 and the
 * stderr text when it printed none).
 */
export class CniPluginError extends BerthError {
  readonly kind = 'unknown' as const;
  readonly plugin: string;
  readonly command: CniCommand;
  readonly code: number;
  readonly msg: string;
  readonly details: string;

  constructor(call: Pick<PluginCall, 'type' | 'command'>, e: { code: number; msg: string; details: string }) {
    super(`plugin type="${call.type}" failed (${call.command.toLowerCase()}): ${e.msg}${e.details ? `; ${e.details}` : ''}`, 'unknown', { bare: true });
    this.plugin = call.type;
    this.command = call.command;
    this.code = e.code;
    this.msg = e.msg;
    this.details = e.details;
  }
}

/** Finds a plugin binary in the bin dirs, first match wins, as libcni's FindInPath. */
export function findPlugin(type: string, binDirs: readonly string[]): string {
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      if (!statSync(path).isFile()) continue;
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here; try the next directory
    }
  }
  throw new FailedPreconditionError(`failed to find plugin "${type}" in path [${binDirs.join(' ')}]`);
}

function pluginError(call: PluginCall, stdout: string, stderr: string, status: string): CniPluginError {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (e && typeof e === 'object' && typeof e.msg === 'string') {
      const code = typeof e.code === 'number' ? e.code : 0;
      return new CniPluginError(call, { code, msg: e.msg, details: typeof e.details === 'string' ? e.details : '' });
    }
  } catch {
    // not an error object: fall back to what it wrote on stderr
  }
  const text = stderr.trim() || stdout.trim();
  return new CniPluginError(call, { code: 0, msg: text ? `netplugin failed: ${JSON.stringify(text)}` : `netplugin failed with no error message: ${status}`, details: '' });
}

const STRUCT_CAPABILITIES = ['portMappings', 'dns', 'bandwidth'];

/**
 * Writes a plugin's stdin byte for byte as containerd 1.6 does (checked with recording plugins
 * under its CRI plugin): libcni marshals the configuration as a map (keys sorted), while the
 * port mappings, dns and bandwidth inside runtimeConfig are go-cni structs (field order).
 */
export function stdinText(config: Record<string, unknown>): string {
  return goJson(config, (p) => p[0] === 'runtimeConfig' && STRUCT_CAPABILITIES.includes(p[1]) && (p.length === 2 || (p[1] === 'portMappings' && p.length === 3)));
}

/**
 * Runs one plugin with the CNI environment (added to this process's, so that plugins find
 * iptables and friends on PATH) and its configuration on stdin. Resolves with the parsed stdout
 * for ADD (undefined for DEL and CHECK); rejects with a {@link CniPluginError} when it fails, a
 * DeadlineExceededError when it runs past the timeout.
 */
export async function invokePlugin(call: PluginCall, options: InvokeOptions): Promise<unknown> {
  const path = findPlugin(call.type, options.binDirs);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName,
    CNI_ARGS: call.args.map(([k, v]) => `${k}=${v}`).join(';'),
    CNI_PATH: options.binDirs.join(':'),
  };
  const res = await run(path, [], { env, input: stdinText(call.config), timeoutMs: options.timeoutMs });
  if (res.timedOut) throw new DeadlineExceededError(`plugin type="${call.type}" (${call.command.toLowerCase()}) was killed after ${options.timeoutMs} ms`);
  const stdout = res.stdout.toString();
  if (res.code !== 0) throw pluginError(call, stdout, res.stderr.toString(), res.signal ? `signal ${res.signal}` : `exit status ${res.code}`);
  if (call.command !== 'ADD') return undefined;
  try {
    return JSON.parse(stdout);
  } catch (err) {
    throw new UnknownError(`plugin type="${call.type}" (add) printed a result that is not JSON: ${(err as Error).message}`);
  }
}
