import type { HostTls, RegistryHost, RegistryHosts } from './hosts';
import { ALL_CAPABILITIES } from './hosts-config-file';

/** Options of {@link staticHosts}. */
export interface StaticHostsOptions {
  /** `https` (default) or `http`. */
  scheme?: 'http' | 'https';
  /** TLS settings for https. */
  tls?: HostTls;
  /** Headers sent on every request. */
  headers?: Record<string, string[]>;
  /** Connect timeout in milliseconds; undefined: the client's default. */
  dialTimeoutMs?: number;
}

/**
 * Returns the hosts for the case without a hosts directory: one endpoint per registry, the
 * registry itself at `/v2` with every capability (`docker.io` is served by
 * `registry-1.docker.io`), over https unless `scheme` says http.
 */
export function staticHosts(options: StaticHostsOptions = {}): RegistryHosts {
  return async (registry: string): Promise<RegistryHost[]> => [
    {
      registry,
      scheme: options.scheme ?? 'https',
      host: registry === 'docker.io' ? 'registry-1.docker.io' : registry,
      path: '/v2',
      capabilities: new Set(ALL_CAPABILITIES),
      tls: options.tls,
      headers: options.headers ?? {},
      dialTimeoutMs: options.dialTimeoutMs,
    },
  ];
}
