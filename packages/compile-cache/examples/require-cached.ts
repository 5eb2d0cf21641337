import { CompileCache } from '@berth/compile-cache';

/**
 * Loads the module `entry` through a code cache kept in `dir`, then writes the cache back for the
 * program's next run; returns the module and how many of the files it loaded came from the cache.
 */
export function requireCached<T>(dir: string, entry: string): { module: T; fromCache: number } {
  const cache = new CompileCache(dir).install();
  try {
    const module = require(entry) as T;
    cache.save();
    return { module, fromCache: cache.stats.hits };
  } finally {
    cache.uninstall();
  }
}
