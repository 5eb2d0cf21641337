import { runProgram } from './proc';
import { existsSync } from 'node:fs';
import { CTR2_PATH } from './reference-tools';

export interface CtrResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CtrOptions {
  namespace?: string;
  input?: string | Buffer;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** The ctr binary to run: the stock one ({@link CTR_PATH}) by default. */
  ctr?: string;
}

/** The stock ctr binary (Debian's containerd package). */
export const CTR_PATH = ['/usr/bin/ctr', '/usr/local/bin/ctr'].find((p) => existsSync(p)) ?? 'ctr';

/**
 * Runs `ctr` (the stock one unless `options.ctr` names another) against a socket and collects its
 * output. Never touches the system daemon.
 */
export function runCtr(address: string, args: readonly string[], options: CtrOptions = {}): Promise<CtrResult> {
  const argv = ['--address', address, ...(options.namespace ? ['--namespace', options.namespace] : []), ...args];
  return runProgram(options.ctr ?? CTR_PATH, argv, {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env },
    ...(options.input !== undefined ? { input: options.input } : {}),
    timeoutMs: options.timeoutMs ?? 30_000,
  });
}

/**
 * Runs ctr 2.x ({@link CTR2_PATH}, built by tools/reference-tools.sh) against a socket. Its image
 * commands use the Transfer service unless given `--local`.
 *
 * @throws Error when ctr 2.x is not installed.
 */
export function runCtr2(address: string, args: readonly string[], options: CtrOptions = {}): Promise<CtrResult> {
  if (!CTR2_PATH) throw new Error('ctr 2.x is not installed: run tools/reference-tools.sh (tools/setup.sh does)');
  return runCtr(address, args, { ...options, ctr: CTR2_PATH });
}
