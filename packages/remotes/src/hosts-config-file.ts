import { isAbsolute, join, posix } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { InvalidArgumentError } from '@berth/errdefs';
import type { HostCapability } from './hosts';
import { splitHostPort } from './hosts-config-address';
import { parseGoDuration } from './hosts-config-duration';

/** Every capability, in the order hosts.toml documents them; the default when none are given. */
export const ALL_CAPABILITIES: readonly HostCapability[] = ['pull', 'resolve', 'push', 'referrers'];

/**
 * One endpoint as a hosts.toml (or a certs.d directory) describes it, before any certificate file
 * is read. `server` is absent for the top-level entry of a file without `server`, and for a
 * certs.d directory: that entry becomes the registry's default upstream.
 */
export interface HostEntry {
  server?: { scheme: 'http' | 'https'; host: string; path: string };
  /** Undefined when the file gives none (all, except that the default upstream always has all). */
  capabilities?: HostCapability[];
  /** Absolute paths of CA files; present (possibly empty) when `ca` was set. */
  caFiles?: string[];
  /** Absolute [cert, key] paths; an empty key means the key is in the cert file. */
  clientPairs?: Array<[cert: string, key: string]>;
  skipVerify?: boolean;
  headers?: Record<string, string[]>;
  dialTimeoutMs?: number;
  /**
   * Where the entry came from, as the start of an error message to which a key name is appended:
   * `hosts.toml <file>: host."<url>".`, `hosts.toml <file>: ` or `certs.d directory <dir>: `.
   */
  origin: string;
}

/** A parsed hosts.toml and the keys it had that Berth does not know (ignored, as containerd does). */
export interface HostsFile {
  /** `[host."<url>"]` entries in file order, then the top-level entry. */
  entries: HostEntry[];
  unknownKeys: string[];
}

const HOST_KEYS = new Set(['capabilities', 'ca', 'client', 'skip_verify', 'header', 'override_path', 'dial_timeout']);

// RFC 9110 token characters for header names; values must not break the header line.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/**
 * Parses the text of a hosts.toml. Relative certificate paths are resolved against `dir`, the
 * directory the file is in. Throws InvalidArgumentError naming `file` and the key for anything the
 * file gets wrong: TOML syntax, a value of the wrong type, an unknown capability, a server that is
 * not an http(s) URL, a bad duration.
 */
export function parseHostsFile(text: string, file: string, dir: string): HostsFile {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = err.message.split('\n')[0];
    throw new InvalidArgumentError(`hosts.toml ${file}: line ${err.line}, column ${err.column}: ${reason}`, { cause: err });
  }

  const unknownKeys: string[] = [];
  const entries: HostEntry[] = [];
  const hosts = doc.host;
  if (hosts !== undefined) {
    if (!isTable(hosts)) throw wrongType(file, 'host', 'a table of [host."<url>"] tables', hosts);
    // smol-toml builds tables as objects, which keep keys in insertion order, i.e. file order.
    // JavaScript lists integer-like keys ("5000") first, but those are no valid host (see
    // splitHostPort), so a file with one is rejected and its order never matters.
    for (const [url, value] of Object.entries(hosts)) {
      const key = `host.${JSON.stringify(url)}`;
      if (!isTable(value)) throw wrongType(file, key, 'a table', value);
      const entry = parseEntry(value, { file, dir, key: `${key}.` }, unknownKeys);
      entry.server = parseServer(url, value.override_path === true, file, key);
      entries.push(entry);
    }
  }

  const top = parseEntry(doc, { file, dir, key: '' }, unknownKeys, ['server', 'host']);
  if (doc.server !== undefined) {
    if (typeof doc.server !== 'string') throw wrongType(file, 'server', 'a string', doc.server);
    if (doc.server !== '') top.server = parseServer(doc.server, doc.override_path === true, file, 'server');
  }
  entries.push(top);
  return { entries, unknownKeys };
}

interface Where {
  file: string;
  dir: string;
  /** Key prefix for messages: '' at top level, `host."<url>".` in a host table. */
  key: string;
}

function parseEntry(table: Record<string, unknown>, where: Where, unknownKeys: string[], alsoKnown: string[] = []): HostEntry {
  const entry: HostEntry = { origin: `hosts.toml ${where.file}: ${where.key}` };
  const { file, dir, key } = where;
  for (const name of Object.keys(table)) {
    if (!HOST_KEYS.has(name) && !alsoKnown.includes(name)) unknownKeys.push(`${key}${name}`);
  }

  const caps = table.capabilities;
  if (caps !== undefined) {
    const list = stringArray(caps, file, `${key}capabilities`);
    if (list.length > 0) {
      // containerd compares capabilities case-insensitively; an empty list means the default (all).
      entry.capabilities = list.map((c) => {
        const cap = c.toLowerCase() as HostCapability;
        if (!ALL_CAPABILITIES.includes(cap)) {
          throw invalid(file, `${key}capabilities`, `unknown capability ${JSON.stringify(c)}`);
        }
        return cap;
      });
    }
  }

  const ca = table.ca;
  if (ca !== undefined) {
    const files = typeof ca === 'string' ? [ca] : Array.isArray(ca) ? stringArray(ca, file, `${key}ca`) : undefined;
    if (!files) throw wrongType(file, `${key}ca`, 'a string or an array of strings', ca);
    entry.caFiles = files.map((p) => resolvePath(p, dir, file, `${key}ca`));
  }

  const client = table.client;
  if (client !== undefined) entry.clientPairs = parseClient(client, where);

  const skipVerify = table.skip_verify;
  if (skipVerify !== undefined) {
    if (typeof skipVerify !== 'boolean') throw wrongType(file, `${key}skip_verify`, 'a boolean', skipVerify);
    entry.skipVerify = skipVerify;
  }

  const override = table.override_path;
  if (override !== undefined && typeof override !== 'boolean') {
    throw wrongType(file, `${key}override_path`, 'a boolean', override);
  }

  const header = table.header;
  if (header !== undefined) {
    if (!isTable(header)) throw wrongType(file, `${key}header`, 'a table', header);
    const headers: Array<[string, string[]]> = [];
    for (const [name, value] of Object.entries(header)) {
      const hkey = `${key}header.${JSON.stringify(name)}`;
      if (!HEADER_NAME.test(name)) throw invalid(file, hkey, 'not a valid header name');
      const values = typeof value === 'string' ? [value] : Array.isArray(value) ? stringArray(value, file, hkey) : undefined;
      if (!values) throw wrongType(file, hkey, 'a string or an array of strings', value);
      if (!values.every((v) => HEADER_VALUE.test(v))) throw invalid(file, hkey, 'a header value must not contain CR, LF or NUL');
      headers.push([name, values]);
    }
    // fromEntries defines own properties, so a header named __proto__ stays a header.
    entry.headers = Object.fromEntries(headers);
  }

  const dial = table.dial_timeout;
  if (dial !== undefined) {
    if (typeof dial !== 'string') throw wrongType(file, `${key}dial_timeout`, 'a duration string such as "1s"', dial);
    if (dial !== '') {
      const ms = parseGoDuration(dial);
      if (ms === undefined || ms < 0) {
        throw invalid(file, `${key}dial_timeout`, `${JSON.stringify(dial)} is not a non-negative duration such as "1s" or "1m30s"`);
      }
      entry.dialTimeoutMs = ms;
    }
  }
  return entry;
}

/** `client`: a path, an array of paths, or an array of [cert, key] pairs (mixed is allowed). */
function parseClient(value: unknown, { file, dir, key }: Where): Array<[string, string]> {
  const k = `${key}client`;
  const items = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (!items) throw wrongType(file, k, 'a path, an array of paths or an array of [cert, key] pairs', value);
  return items.map((item): [string, string] => {
    if (typeof item === 'string') return [resolvePath(item, dir, file, k), ''];
    if (Array.isArray(item)) {
      const pair = stringArray(item, file, k);
      if (pair.length !== 2) throw invalid(file, k, `a pair needs exactly 2 paths, [cert, key], got ${pair.length}`);
      return [resolvePath(pair[0], dir, file, k), pair[1] === '' ? '' : resolvePath(pair[1], dir, file, k)];
    }
    throw wrongType(file, k, 'a path or a [cert, key] pair', item);
  });
}

/**
 * Parses a `server` value or a `[host."<url>"]` key. No scheme means https; the path is cleaned
 * and gets `/v2` unless it already ends with it or override_path is set.
 */
function parseServer(raw: string, overridePath: boolean, file: string, key: string): NonNullable<HostEntry['server']> {
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(raw) ? raw : `https://${raw}`;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(withScheme);
  const scheme = m?.[1].toLowerCase();
  if (!m || (scheme !== 'http' && scheme !== 'https')) {
    throw invalid(file, key, `${JSON.stringify(raw)} is not an http or https URL`);
  }
  // The port is kept as written, not dropped when it is the scheme's default: whether an http
  // endpoint said ":80" decides whether it may be tried over https first.
  if (!splitHostPort(m[2])) throw invalid(file, key, `${JSON.stringify(raw)} has no valid host[:port]`);

  let path = m[3] === '' ? '' : posix.normalize(m[3]).replace(/\/+$/, '');
  if (!overridePath && !path.endsWith('/v2')) path += '/v2';
  return { scheme, host: m[2], path };
}

function resolvePath(p: string, dir: string, file: string, key: string): string {
  if (p === '') throw invalid(file, key, 'an empty path');
  return isAbsolute(p) ? p : join(dir, p);
}

function stringArray(value: unknown, file: string, key: string): string[] {
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw wrongType(file, key, 'an array of strings', value);
  }
  return value;
}

function isTable(value: unknown): value is Record<string, unknown> {
  // smol-toml's date-times are Date objects.
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function invalid(file: string, key: string, problem: string): InvalidArgumentError {
  return new InvalidArgumentError(`hosts.toml ${file}: ${key}: ${problem}`);
}

/** An InvalidArgumentError for a value of the wrong TOML type. */
function wrongType(file: string, key: string, expected: string, value: unknown): InvalidArgumentError {
  return invalid(file, key, `expected ${expected}, got ${tomlType(value)}`);
}

function tomlType(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) return 'an integer';
  if (typeof value === 'number') return 'a float';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'string') return 'a string';
  if (isTable(value)) return 'a table';
  return 'a date-time';
}
