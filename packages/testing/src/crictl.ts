import { runProgram } from './proc';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CRICTL_PATH, CRI_TOOLS_VERSION } from './reference-tools';

/** What a crictl run gave. */
export interface CrictlResult {
  code: number;
  stdout: string;
  /** stderr without crictl's warning that /etc/crictl.yaml is absent. */
  stderr: string;
}

// An empty config file, so that crictl never reads /etc/crictl.yaml (nor warns about it).
let emptyConfig: string | undefined;
function configFile(): string {
  if (emptyConfig && existsSync(emptyConfig)) return emptyConfig;
  const dir = mkdtempSync(join(tmpdir(), 'berth-crictl-'));
  emptyConfig = join(dir, 'crictl.yaml');
  writeFileSync(emptyConfig, '');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return emptyConfig;
}

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
  const argv = ['--config', configFile(), '--timeout', '60s', '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, ...args];
  return runProgram(bin, argv, { env: { PATH: process.env.PATH, HOME: process.env.HOME }, timeoutMs: options.timeoutMs ?? 120_000 });
}
