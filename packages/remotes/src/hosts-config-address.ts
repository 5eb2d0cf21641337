import { isIPv4, isIPv6 } from 'node:net';

/** A `host[:port]` split into its parts; `host` keeps IPv6 brackets when they were written. */
export interface HostPort {
  host: string;
  /** Decimal port as written, or undefined when there is none. */
  port?: string;
}

// Letters, digits, '-' and '_' in dot-separated labels. Nothing that could act as a path
// component ('/', '..', '.'), since registry names become directory names under the hosts dir.
const HOSTNAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/**
 * Splits and checks `host[:port]`: a DNS name, an IPv4 address, a bracketed IPv6 address with an
 * optional port, or a bare IPv6 address (`::1`, which then has no port). Returns undefined when
 * the text is none of these.
 */
export function splitHostPort(text: string): HostPort | undefined {
  let host: string;
  let port: string | undefined;
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
    if (!m || !isIPv6(m[1])) return undefined;
    host = `[${m[1]}]`;
    port = m[2];
  } else if (text.indexOf(':') !== text.lastIndexOf(':')) {
    if (!isIPv6(text)) return undefined;
    host = text;
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(text);
    if (!m || !HOSTNAME.test(m[1])) return undefined;
    // A name whose last label is a number is an IPv4 address to URL parsers ("5000" is 0.0.19.136).
    if (/(?:^|\.)\d+$/.test(m[1]) && !isIPv4(m[1])) return undefined;
    host = m[1];
    port = m[2];
  }
  if (port !== undefined && (port.length > 5 || Number(port) > 65535)) return undefined;
  return port === undefined ? { host } : { host, port };
}

/**
 * Reports whether a registry host names this machine: `localhost`, an address in 127.0.0.0/8,
 * or `::1` (also IPv4-mapped loopback), with or without a port.
 */
export function isLoopback(hostPort: HostPort): boolean {
  const host = hostPort.host.toLowerCase();
  if (host === 'localhost') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  if (!isIPv6(bare)) return false;
  // The URL parser prints IPv6 in its shortest canonical form (and IPv4-mapped as ::ffff:7f..).
  const canonical = new URL(`http://[${bare.replace(/%.*$/, '')}]/`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}
