import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The containerd 2.x reference tools that tools/reference-tools.sh builds (tools/setup.sh runs
 * it): ctr and containerd from the Go module proxy, installed outside the repository so that
 * every clone on the machine shares them. The version is pinned once, in that script.
 */
const SCRIPT = resolve(__dirname, '../../../tools/reference-tools.sh');

function pinnedVersion(): string | undefined {
  if (!existsSync(SCRIPT)) return undefined;
  return /^containerd_version=v?(\S+)$/m.exec(readFileSync(SCRIPT, 'utf8'))?.[1];
}

/** The containerd 2.x version of the reference tools, e.g. "2.4.2" (undefined outside the repo). */
export const REFERENCE_CONTAINERD2_VERSION = pinnedVersion();

/** Where the script installs them: `$BERTH_REFERENCE_DIR/containerd-<version>/bin`. */
export const REFERENCE_TOOLS_BIN = REFERENCE_CONTAINERD2_VERSION
  ? join(process.env.BERTH_REFERENCE_DIR ?? '/usr/local/lib/berth-reference', `containerd-${REFERENCE_CONTAINERD2_VERSION}`, 'bin')
  : undefined;

const installed = (name: string): string | undefined => {
  const path = REFERENCE_TOOLS_BIN && join(REFERENCE_TOOLS_BIN, name);
  return path && existsSync(path) ? path : undefined;
};

/** ctr 2.x, or undefined when tools/reference-tools.sh has not run. */
export const CTR2_PATH = installed('ctr');

/** containerd 2.x, or undefined when tools/reference-tools.sh has not run. */
export const CONTAINERD2_PATH = installed('containerd');
