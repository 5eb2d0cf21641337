/**
 * One registry endpoint to try for a repository, in order: what containerd's hosts.toml (or its
 * built-in default) says about a host. Produced by the hosts configuration (hosts-config.ts),
 * consumed by the resolver, fetcher and pusher.
 */
export interface RegistryHost {
  /** The registry host the reference names (`docker.io`, `localhost:5000`): what `?ns=` carries. */
  registry: string;
  /** `http` or `https`. */
  scheme: 'http' | 'https';
  /** host[:port] to connect to. */
  host: string;
  /** The API root path, `/v2` unless override_path kept the configured path. */
  path: string;
  /** What this endpoint may be used for. */
  capabilities: ReadonlySet<HostCapability>;
  /** TLS settings for https (ignored for http). */
  tls?: HostTls;
  /** Headers sent on every request to this endpoint. */
  headers: Readonly<Record<string, string[]>>;
  /** Connect timeout in milliseconds (hosts.toml `dial_timeout`); undefined: the client's default. */
  dialTimeoutMs?: number;
  /**
   * For an http endpoint that also has TLS settings on a non-80 port, and for loopback defaults:
   * try https first and fall back to http when the TLS handshake fails.
   */
  fallbackToHttp?: boolean;
}

export type HostCapability = 'pull' | 'resolve' | 'push' | 'referrers';

export interface HostTls {
  /** PEM CA certificates (contents, not paths), added to the system roots. */
  ca?: Buffer[];
  /** Client certificate and key pairs (PEM contents). */
  clientCerts?: Array<{ cert: Buffer; key: Buffer }>;
  /** Do not verify the server's certificate. */
  skipVerify?: boolean;
}

/** Returns the endpoints to try for a registry host, in order. */
export type RegistryHosts = (registry: string) => Promise<RegistryHost[]>;
