import { spawn } from 'node:child_process';
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

/**
 * containerd 2.x's runc shim, or undefined when tools/reference-tools.sh has not run. containerd
 * 2.x's CRI pods need it (it cannot start Debian's 1.6 shim): name it as the runtime's
 * `runtime_path`.
 */
export const CONTAINERD2_SHIM_PATH = installed('containerd-shim-runc-v2');

function pinned(name: string): string | undefined {
  if (!existsSync(SCRIPT)) return undefined;
  return new RegExp(`^${name}=v?(\\S+)$`, 'm').exec(readFileSync(SCRIPT, 'utf8'))?.[1];
}

/** The pinned version of Prometheus' prom2json, e.g. "1.4.2". */
export const PROM2JSON_VERSION = pinned('prom2json_version');

/** Where tools/reference-tools.sh installs prom2json. */
export const PROM2JSON_PATH = PROM2JSON_VERSION
  ? join(process.env.BERTH_REFERENCE_DIR ?? '/usr/local/lib/berth-reference', `prom2json-${PROM2JSON_VERSION}`, 'bin', 'prom2json')
  : undefined;

/** The pinned cri-tools version (crictl and critest), e.g. "1.37.0". */
export const CRI_TOOLS_VERSION = pinned('critools_version');

const criTool = (name: string): string | undefined =>
  CRI_TOOLS_VERSION
    ? join(process.env.BERTH_REFERENCE_DIR ?? '/usr/local/lib/berth-reference', `cri-tools-${CRI_TOOLS_VERSION}`, 'bin', name)
    : undefined;

/** Where tools/reference-tools.sh installs crictl, the CRI command-line client. */
export const CRICTL_PATH = criTool('crictl');

/** Where tools/reference-tools.sh installs critest, the CRI conformance suite (a Go test binary). */
export const CRITEST_PATH = criTool('critest');

/**
 * Debian's dynamically linked busybox, which tools/reference-tools.sh unpacks (the package
 * conflicts with busybox-static): unlike busybox-static, its sh runs what PATH finds. Undefined
 * when the script has not (or could not) put it in place.
 */
export const BUSYBOX_DYNAMIC_PATH = ((p) => (existsSync(p) ? p : undefined))(
  join(process.env.BERTH_REFERENCE_DIR ?? '/usr/local/lib/berth-reference', 'busybox-deb', 'bin', 'busybox'),
);

/** One sample as prom2json prints it: labels and value (a string, as Prometheus writes numbers). */
export interface PromSample {
  labels?: Record<string, string>;
  value?: string;
  count?: string;
  sum?: string;
  buckets?: Record<string, string>;
}

/** One metric family as prom2json prints it. */
export interface PromFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: PromSample[];
}

/**
 * Parses Prometheus text exposition with Prometheus' own parser (prom2json, built from the Go
 * module proxy by tools/reference-tools.sh). Rejects when the text does not parse.
 */
export function parsePrometheusText(text: string): Promise<PromFamily[]> {
  const bin = PROM2JSON_PATH;
  if (!bin || !existsSync(bin)) {
    return Promise.reject(new Error(`prom2json ${PROM2JSON_VERSION} is not at ${bin}: run tools/reference-tools.sh`));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      // prom2json reports a parse error on stderr and still exits 0 (printing []).
      if (code !== 0 || err.trim() !== '') return reject(new Error(`prom2json exited ${code}: ${err.trim()}`));
      try {
        resolve(JSON.parse(out) as PromFamily[]);
      } catch (e) {
        reject(e);
      }
    });
    child.stdin.end(text);
  });
}

/** Fetches `http://<address>/v1/metrics` and parses it with prom2json: the families by name. */
export async function scrapeMetrics(address: string): Promise<Map<string, PromFamily>> {
  const res = await fetch(`http://${address}/v1/metrics`);
  if (res.status !== 200) throw new Error(`GET /v1/metrics answered ${res.status}`);
  return new Map((await parsePrometheusText(await res.text())).map((f) => [f.name, f]));
}
