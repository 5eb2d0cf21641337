import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TarEntry, TarHeaderInit, TarWriter, readTar } from './tar';

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix = 'berth-diff-'): string {
  return fs.mkdtempSync(join(tmpdir(), prefix));
}

export function sh(cmd: string, cwd?: string): string {
  return execFileSync('/bin/sh', ['-c', cmd], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Builds a tar in memory from entries (test data only). */
export async function buildTar(entries: Array<[TarHeaderInit, (Buffer | string)?]>, format: 'pax' | 'gnu' = 'pax'): Promise<Buffer> {
  const parts: Buffer[] = [];
  const tw = new TarWriter((b) => {
    parts.push(Buffer.from(b));
  }, { format });
  for (const [h, body] of entries) {
    const data = body === undefined ? undefined : Buffer.from(body);
    await tw.add({ ...h, size: data?.length ?? h.size ?? 0 }, data);
  }
  await tw.finish();
  return Buffer.concat(parts);
}

/** Reads a whole tar (test data only): headers and bodies. */
export async function readAll(data: Buffer | AsyncIterable<Uint8Array>): Promise<Array<{ header: TarEntry['header']; data: Buffer }>> {
  const src = Buffer.isBuffer(data) ? chunks(data, 777) : data;
  const out = [];
  for await (const e of readTar(src)) out.push({ header: e.header, data: await e.body.buffer(64 << 20) });
  return out;
}

/** Splits a buffer into odd-sized chunks, to exercise block boundaries. */
export async function* chunks(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
