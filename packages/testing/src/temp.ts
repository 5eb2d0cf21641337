import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Creates a temp directory; `remove` deletes it with everything in it. */
export function tempDir(prefix = 'berth-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Returns what a promise rejects with; fails when it resolves. For asserting error kinds. */
export async function rejectionOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/**
 * A gRPC call's outcome in a form two daemons' answers can be compared in: `{ ok: reply }` with
 * every time replaced by 'T', or `{ code, details }` as the status came off the wire.
 */
export async function callOutcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: JSON.parse(JSON.stringify(await p, (_, v) => (v instanceof Date || (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) ? 'T' : v))) };
  } catch (err) {
    const status = (err as { cause?: { code?: number; details?: string } }).cause;
    return { code: status?.code, details: status?.details };
  }
}
