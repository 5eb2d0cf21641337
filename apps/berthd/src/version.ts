import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Berth's version, from the berthd package. */
export const BERTH_VERSION = String(readJson(join(__dirname, '..', 'package.json'))?.version ?? '0.0.0');

/** The source revision the build came from (written into dist by the build), or "unknown". */
export const BERTH_REVISION = String(readJson(join(__dirname, 'revision.json'))?.revision ?? 'unknown');
