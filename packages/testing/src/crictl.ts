import { runProgram } from './proc';
import { existsSync } from 'node:fs';
import { CRICTL_PATH, CRI_TOOLS_VERSION } from './reference-tools';

/** What a crictl run gave. */
export interface CrictlResult {
  code: number;
  stdout: string;
  /** stderr without crictl's warning that /etc/crictl.yaml is absent. */
  stderr: string;
}

// An empty config (/dev/null reads as one), so that crictl never reads /etc/crictl.yaml (nor
// warns about it), and no file of ours to clean up.
const EMPTY_CONFIG = '/dev/null';

/**
 * Runs crictl (cri-tools, built by tools/reference-tools.sh) against a unix socket, as both its
 * runtime and image endpoint, with a 60 s per-call timeout (crictl's default is 2 s), and
 * collects its output.
 *
 * @throws Error when crictl is not installed.
 */
export function runCrictl(socket: string, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<CrictlResult> {
  const bin = CRICTL_PATH;
  if (!bin || !existsSync(bin)) return Promise.reject(new Error(`crictl ${CRI_TOOLS_VERSION} is not at ${bin}: run tools/reference-tools.sh`));
  const endpoint = `unix://${socket}`;
  const argv = ['--config', EMPTY_CONFIG, '--timeout', '60s', '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, ...args];
  return runProgram(bin, argv, { env: { PATH: process.env.PATH, HOME: process.env.HOME }, timeoutMs: options.timeoutMs ?? 120_000 });
}
