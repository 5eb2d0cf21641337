import { promises as fsp, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type NetworkConfigList, parseConfigList } from './config';
import type { CniResult } from './result';

/** Where libcni keeps its cache; host-local keeps its allocations under `<this>/networks`. */
export const DEFAULT_CACHE_DIR = '/var/lib/cni';

/**
 * What ADD leaves for DEL and CHECK, one file per (network, container, interface), in libcni's
 * layout (`<dir>/results/<network>-<container>-<ifname>`, kind `cniCacheV1`), so DEL finds the
 * configuration, arguments and result of an ADD made before the caller restarted.
 */
export interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  /** The network configuration list ADD used, as JSON, base64. */
  config: string;
  ifName: string;
  networkName: string;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  result: CniResult;
}

/** The result cache under one directory. */
export class ResultCache {
  private readonly dir: string;
  private writes = 0;

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'results');
  }

  private path(networkName: string, containerId: string, ifName: string): string {
    return join(this.dir, `${networkName}-${containerId}-${ifName}`);
  }

  /**
   * Writes an entry atomically (a crash leaves the old file or the new, never half of one). Off
   * the event loop: creating a file can wait for the disk's journal while others sync.
   */
  async put(entry: CacheEntry): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = this.path(entry.networkName, entry.containerId, entry.ifName);
    // Unique per write: two ADDs of one container (a retry beside a slow first) never share it.
    const tmp = `${path}.tmp-${process.pid}-${++this.writes}`;
    await fsp.writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
    await fsp.rename(tmp, path);
  }

  /** Returns the entry, or undefined when there is none or it cannot be read. */
  get(networkName: string, containerId: string, ifName: string): CacheEntry | undefined {
    try {
      const e = JSON.parse(readFileSync(this.path(networkName, containerId, ifName), 'utf8')) as CacheEntry;
      return e.kind === 'cniCacheV1' && e.containerId === containerId ? e : undefined;
    } catch {
      return undefined;
    }
  }

  /** Lists the entries of one container (every network and interface it was attached with). */
  list(containerId: string): CacheEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: CacheEntry[] = [];
    for (const n of names) {
      if (!n.includes(`-${containerId}-`) || n.includes('.tmp-')) continue;
      try {
        const e = JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as CacheEntry;
        if (e.kind === 'cniCacheV1' && e.containerId === containerId) out.push(e);
      } catch {
        // unreadable: not ours to interpret
      }
    }
    return out;
  }

  async delete(networkName: string, containerId: string, ifName: string): Promise<void> {
    await fsp.rm(this.path(networkName, containerId, ifName), { force: true });
  }
}

/** Encodes a configuration list for a cache entry. */
export function encodeConfig(config: NetworkConfigList): string {
  return Buffer.from(config.text).toString('base64');
}

/** Decodes a cache entry's configuration list; undefined when it is not a valid one. */
export function decodeConfig(config: string): NetworkConfigList | undefined {
  try {
    return parseConfigList(Buffer.from(config, 'base64').toString('utf8'), '(cached)');
  } catch {
    return undefined;
  }
}
