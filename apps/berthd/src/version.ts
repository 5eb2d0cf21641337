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

/**
 * The containerd API level berthd answers to, for clients that gate features on the server's
 * version (nerdctl 2.x pulls and pushes through the Transfer API only from 2.0.0 on). Berth
 * serves containerd 1.6's v1 services and 2.x's Transfer and Streaming services.
 */
export const CONTAINERD_API_VERSION = '2.0.0';

/**
 * What the Version service answers: the containerd API level, with Berth's own version as semver
 * build metadata (`2.0.0+berth.0.1.0`), so that a semver parse gives the API level and a person
 * still sees which Berth it is.
 */
export const SERVER_VERSION = `${CONTAINERD_API_VERSION}+berth.${BERTH_VERSION}`;
