import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, isInvalidArgument, wrap } from '@berth/errdefs';
import type { RegistryHost, RegistryHosts } from './hosts';
import { isLoopback, splitHostPort, type HostPort } from './hosts-config-address';
import { errnoOf, loadCertsDir, loadTls } from './hosts-config-certs';
import { ALL_CAPABILITIES, parseHostsFile, type HostEntry } from './hosts-config-file';

/**
 * Receives what the hosts configuration has to report. `fields.level` is `error` (a hosts.toml
 * that was ignored), `warn` (keys that were ignored) or `info` (an http endpoint tried over https
 * first), so the callback can forward to a leveled logger.
 */
export type HostsLogger = (msg: string, fields?: Record<string, unknown>) => void;

/** Settings for configureHosts; all are optional. */
export interface ConfigureHostsOptions {
  /**
   * Root of the per-registry directories, containerd's `--hosts-dir` (for example
   * `/etc/containerd/certs.d`). Default: none, so every registry gets only its default upstream.
   */
  hostDir?: string;
  /**
   * Scheme of the default upstream for registries other than docker.io (which is always https).
   * Default: https, except for loopback registries, which get containerd's port-based rules.
   */
  defaultScheme?: 'http' | 'https';
  /** Headers sent to every endpoint, ahead of the values hosts.toml adds. Default: none. */
  headers?: Record<string, string>;
  /** Connect timeout in milliseconds for endpoints without a `dial_timeout`. Default: the client's. */
  dialTimeoutMs?: number;
  /** Where problems with the configuration are reported. Default: `error` level lines to stderr. */
  logger?: HostsLogger;
}

/**
 * Creates the function that tells the registry client which endpoints to use for a registry
 * host (`docker.io`, `localhost:5000`, `[::1]:5000`), as containerd's hosts.toml describes them.
 *
 * With `hostDir` set, each call looks for `<hostDir>/<host>_<port>_` (when the registry has a
 * port), `<hostDir>/<host[:port]>` and `<hostDir>/_default`, in that order; the first directory
 * that exists is used, alone. Its hosts.toml is read again on every call, so edits apply to the
 * next operation without a restart. A missing or empty hosts.toml means the directory is in
 * Docker's certs.d layout; a hosts.toml with an error is reported to the logger and treated as
 * missing. The endpoints are the `[host."<url>"]` tables in file order, then the top-level entry:
 * `server`, or the registry's default upstream when there is none.
 *
 * The returned function rejects with InvalidArgumentError for a registry name that is not
 * `host[:port]`, and for certificate files that the configuration names but that cannot be read
 * or hold no PEM block of the right kind.
 */
export function configureHosts(options: ConfigureHostsOptions = {}): RegistryHosts {
  const log = options.logger ?? stderrLogger;
  return async (registry) => {
    const address = splitHostPort(registry);
    if (!address) throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(registry)}: expected host[:port]`);

    let entries: HostEntry[] = [{ origin: 'default upstream: ' }];
    if (options.hostDir !== undefined) {
      const dir = await findHostDir(options.hostDir, registry, address);
      if (dir !== undefined) entries = await loadHostDir(dir, log);
    }

    const last = entries[entries.length - 1];
    if (!last.server) setDefaultUpstream(last, registry, address, options.defaultScheme);

    const hosts: RegistryHost[] = [];
    for (const entry of entries) hosts.push(await toRegistryHost(entry, registry, options, log));
    return hosts;
  };
}

/**
 * Returns the value for the `?ns=` query parameter of requests to this endpoint: its registry
 * (`docker.io`, `localhost:5000`) when the endpoint is another host, such as a mirror, and
 * undefined when the endpoint is the registry itself. registry-1.docker.io counts as docker.io.
 */
export function nsParam(host: RegistryHost): string | undefined {
  const registry = canonicalAuthority(host.registry);
  const endpoint = canonicalAuthority(host.host);
  if (registry === endpoint) return undefined;
  const dockerHub = ['docker.io', 'registry-1.docker.io'];
  if (dockerHub.includes(registry) && dockerHub.includes(endpoint)) return undefined;
  return host.registry;
}

async function findHostDir(root: string, registry: string, address: HostPort): Promise<string | undefined> {
  const names = [registry, '_default'];
  if (address.port !== undefined) names.unshift(`${address.host}_${address.port}_`);
  for (const name of names) {
    // Windows cannot have ':' in a file name; containerd skips those candidates there too.
    if (process.platform === 'win32' && name.includes(':')) continue;
    const dir = join(root, name);
    try {
      if ((await stat(dir)).isDirectory()) return dir;
    } catch (err) {
      const code = errnoOf(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw wrap(err, `looking up hosts directory ${dir}`);
    }
  }
  return undefined;
}

async function loadHostDir(dir: string, log: HostsLogger): Promise<HostEntry[]> {
  const file = join(dir, 'hosts.toml');
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw wrap(err, `reading ${file}`);
  }
  if (text === '') return [await loadCertsDir(dir)];

  try {
    const { entries, unknownKeys } = parseHostsFile(text, file, dir);
    if (unknownKeys.length > 0) log('ignoring unknown keys in hosts.toml', { level: 'warn', file, keys: unknownKeys });
    return entries;
  } catch (err) {
    if (!isInvalidArgument(err)) throw err;
    // As containerd: a broken file must not stop pulls, so it counts as absent.
    log('failed to decode hosts.toml, using the certificate files in its directory instead', { level: 'error', file, error: err });
    return [await loadCertsDir(dir)];
  }
}

/**
 * Makes the top-level entry of a registry without `server` its default upstream. Its TLS, header
 * and timeout settings stay; its capabilities become all of them.
 */
function setDefaultUpstream(entry: HostEntry, registry: string, address: HostPort, defaultScheme: 'http' | 'https' | undefined): void {
  const authority = canonicalAuthority(registry);
  entry.capabilities = undefined;
  if (authority === 'docker.io') {
    entry.server = { scheme: 'https', host: 'registry-1.docker.io', path: '/v2' };
  } else if (isLoopback(address) && defaultScheme === undefined) {
    // 443 or no port: https. 80: http. Any other port could be either: http with a TLS setting,
    // which toRegistryHost turns into https first, then http.
    const https = address.port === undefined || address.port === '443';
    entry.server = { scheme: https ? 'https' : 'http', host: authority, path: '/v2' };
    // A local registry seldom has a trusted certificate. An explicit top-level skip_verify wins.
    if (address.port !== '80') entry.skipVerify ??= true;
  } else {
    entry.server = { scheme: defaultScheme ?? 'https', host: authority, path: '/v2' };
  }
}

async function toRegistryHost(entry: HostEntry, registry: string, options: ConfigureHostsOptions, log: HostsLogger): Promise<RegistryHost> {
  const server = entry.server!;
  let scheme = server.scheme;
  const tls = await loadTls(entry);
  let fallbackToHttp = false;
  if (scheme === 'http' && tls && splitHostPort(server.host)?.port !== '80') {
    // With a TLS setting the scheme is ambiguous unless port 80 says http. containerd treats a
    // missing port the same way: https on 443 first, then http on 80.
    log('host will try https first since it is configured for http with a TLS configuration', { level: 'info', host: server.host });
    scheme = 'https';
    fallbackToHttp = true;
  }

  const host: RegistryHost = {
    registry,
    scheme,
    host: server.host,
    path: server.path,
    capabilities: new Set(entry.capabilities ?? ALL_CAPABILITIES),
    headers: mergeHeaders(options.headers, entry.headers),
  };
  if (tls) host.tls = tls;
  const dialTimeoutMs = entry.dialTimeoutMs ?? options.dialTimeoutMs;
  if (dialTimeoutMs !== undefined) host.dialTimeoutMs = dialTimeoutMs;
  if (fallbackToHttp) host.fallbackToHttp = true;
  return host;
}

/** Appends the file's header values to the caller's, matching names without regard to case. */
function mergeHeaders(base: Record<string, string> | undefined, extra: Record<string, string[]> | undefined): Record<string, string[]> {
  const merged = new Map<string, [name: string, values: string[]]>();
  for (const [name, value] of Object.entries(base ?? {})) merged.set(name.toLowerCase(), [name, [value]]);
  for (const [name, values] of Object.entries(extra ?? {})) {
    const known = merged.get(name.toLowerCase());
    if (known) known[1].push(...values);
    else merged.set(name.toLowerCase(), [name, [...values]]);
  }
  return Object.fromEntries(merged.values());
}

/** Lower case, with brackets around a bare IPv6 address so it can stand in a URL. */
function canonicalAuthority(text: string): string {
  const address = splitHostPort(text);
  if (!address) return text.toLowerCase();
  const host = address.host.includes(':') && !address.host.startsWith('[') ? `[${address.host}]` : address.host;
  return (address.port === undefined ? host : `${host}:${address.port}`).toLowerCase();
}

function stderrLogger(msg: string, fields?: Record<string, unknown>): void {
  if (fields?.level !== 'error') return;
  const detail = fields.error instanceof Error ? `: ${fields.error.message}` : '';
  process.stderr.write(`berth remotes: ${msg}${detail}\n`);
}
