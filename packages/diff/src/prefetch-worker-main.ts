/**
 * The prefetcher's worker thread starts here: it takes the daemon's code cache (see
 * @berth/compile-cache) when the thread that started it has one, before the modules that do the
 * work load, and writes it once the first job is done.
 */
import { workerData } from 'node:worker_threads';
import { installCompileCache } from '@berth/compile-cache';

const dir = (workerData as { compileCache?: unknown } | null)?.compileCache;
if (typeof dir === 'string') installCompileCache(dir);
require('./prefetch-worker');
