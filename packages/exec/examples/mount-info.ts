import { run } from '@berth/exec';

/**
 * Runs `findmnt` for a path from the worker thread and returns the file system type mounted
 * there; the event loop that awaits it keeps serving while the child forks and runs.
 */
export async function fileSystemOf(path: string): Promise<string> {
  const res = await run('/usr/bin/findmnt', ['--noheadings', '--output', 'FSTYPE', '--target', path]);
  if (res.code !== 0) throw new Error(`findmnt ${path}: ${res.stderr.toString().trim() || `exit status ${res.code}`}`);
  return res.stdout.toString().trim();
}
