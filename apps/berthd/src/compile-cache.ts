import { dirname, join } from 'node:path';
import { activeCompileCache, installCompileCache } from '@berth/compile-cache';

/*
 * berthd's V8 code cache (see @berth/compile-cache): installed before any other module loads,
 * when berthd runs as a program (not when a test or a program imports its modules), and written
 * when the daemon stops, so that the next start finds its modules and its first calls compiled.
 * BERTH_COMPILE_CACHE names the directory, or turns the cache off (`off`).
 */

const APP_ROOT = dirname(__dirname);
const entry = require.main?.filename;
if (entry !== undefined && (entry === join(__dirname, 'main.js') || dirname(entry) === join(APP_ROOT, 'bin'))) installCompileCache();

/** Writes the cache when it was missing or incomplete at start, or is older than a minute. */
export function saveCompileCache(): boolean {
  return activeCompileCache()?.saveIfStale() ?? false;
}
