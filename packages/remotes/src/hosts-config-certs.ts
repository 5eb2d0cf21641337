import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, wrap } from '@berth/errdefs';
import type { HostTls } from './hosts';
import type { HostEntry } from './hosts-config-file';

/**
 * Reads a host directory in Docker's certs.d layout, used when it has no hosts.toml (or an empty
 * or unusable one): `*.crt` files are CA certificates; `*.cert` files are client certificates,
 * each with the `*.key` file of the same base name when there is one, and otherwise with its key
 * inside the `.cert` file. Files are taken in name order. The entry has no server: it configures
 * the registry's default upstream.
 */
export async function loadCertsDir(dir: string): Promise<HostEntry> {
  const entry: HostEntry = { origin: `certs.d directory ${dir}: ` };
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return entry; // removed since the lookup; nothing to apply
    throw wrap(err, `reading certs.d directory ${dir}`);
  }
  const caFiles: string[] = [];
  const clientPairs: Array<[string, string]> = [];
  for (const name of names) {
    const path = join(dir, name);
    if (name.endsWith('.crt') && (await isFile(path))) caFiles.push(path);
    if (name.endsWith('.cert') && (await isFile(path))) {
      const key = join(dir, `${name.slice(0, -'.cert'.length)}.key`);
      clientPairs.push([path, (await isFile(key)) ? key : '']);
    }
  }
  if (caFiles.length > 0) entry.caFiles = caFiles;
  if (clientPairs.length > 0) entry.clientPairs = clientPairs;
  return entry;
}

/** Reports whether an entry sets anything about TLS: `ca`, `client` or `skip_verify`, even if empty or false. */
export function hasTlsSettings(entry: HostEntry): boolean {
  return entry.caFiles !== undefined || entry.clientPairs !== undefined || entry.skipVerify !== undefined;
}

/**
 * Reads the certificate files an entry names and returns its TLS settings, or undefined when it
 * has none. CA files keep only their CERTIFICATE blocks; a client pair becomes the certificate
 * chain and the first private key (from the key file, or from the cert file when the key path is
 * empty). Throws InvalidArgumentError naming the entry's origin, the key and the file when a file
 * cannot be read or holds no usable PEM block, as containerd fails the operation then.
 */
export async function loadTls(entry: HostEntry): Promise<HostTls | undefined> {
  if (!hasTlsSettings(entry)) return undefined;
  const tls: HostTls = {};
  if (entry.caFiles) {
    tls.ca = [];
    for (const path of entry.caFiles) {
      const certs = pemBlocks(await readPem(entry, 'ca', path)).filter((b) => b.label === 'CERTIFICATE');
      if (certs.length === 0) throw noBlock(entry, 'ca', path, 'CERTIFICATE');
      tls.ca.push(joinBlocks(certs));
    }
  }
  if (entry.clientPairs) {
    tls.clientCerts = [];
    for (const [certPath, keyPath] of entry.clientPairs) {
      const certText = await readPem(entry, 'client', certPath);
      const chain = pemBlocks(certText).filter((b) => b.label === 'CERTIFICATE');
      if (chain.length === 0) throw noBlock(entry, 'client', certPath, 'CERTIFICATE');
      const keyFrom = keyPath === '' ? certPath : keyPath;
      const keyText = keyPath === '' ? certText : await readPem(entry, 'client', keyPath);
      const key = pemBlocks(keyText).find((b) => b.label === 'PRIVATE KEY' || b.label.endsWith(' PRIVATE KEY'));
      if (!key) throw noBlock(entry, 'client', keyFrom, 'PRIVATE KEY');
      tls.clientCerts.push({ cert: joinBlocks(chain), key: joinBlocks([key]) });
    }
  }
  if (entry.skipVerify !== undefined) tls.skipVerify = entry.skipVerify;
  return tls;
}

interface PemBlock {
  label: string;
  text: string;
}

const PEM_BLOCK = /-----BEGIN ([^\r\n-]+)-----\r?\n[\s\S]*?-----END \1-----/g;

function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1], text: m[0] }));
}

function joinBlocks(blocks: PemBlock[]): Buffer {
  return Buffer.from(blocks.map((b) => `${b.text}\n`).join(''));
}

async function readPem(entry: HostEntry, key: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${entry.origin}${key}: cannot read ${JSON.stringify(path)} (${errnoOf(err) ?? String(err)})`, { cause: err });
  }
}

function noBlock(entry: HostEntry, key: string, path: string, label: string): InvalidArgumentError {
  return new InvalidArgumentError(`${entry.origin}${key}: no PEM ${label} block in ${JSON.stringify(path)}`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw wrap(err, `reading certs.d file ${path}`);
  }
}

/** The errno code of a Node file system error (`ENOENT`), if it is one. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
