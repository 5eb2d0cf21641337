import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { wrap } from '@berth/errdefs';
import { MAX_LABEL_SIZE as METADATA_MAX_LABEL_SIZE, validateLabels as validateMetadataLabels } from '@berth/metadata';
import { parseDigest, type Digest } from './digest';
import { isErrno } from './fs-util';
import type { Labels } from './types';

/** Largest label key plus value, in bytes, as containerd enforces. */
export const MAX_LABEL_SIZE = METADATA_MAX_LABEL_SIZE;

/** A blob's labels and when they last changed. */
export interface LabelRecord {
  labels: Labels;
  updatedAt: Date;
}

/**
 * Where a {@link LocalContentStore} keeps blob labels, if anywhere. The daemon passes none (its
 * metadata layer owns labels per namespace); a program using the store alone may pass a
 * {@link FileLabelStore}.
 */
export interface LabelStore {
  /** Returns the record for a digest, or undefined when it has none. */
  get(digest: Digest): Promise<LabelRecord | undefined>;
  /**
   * Replaces the labels of a digest with what `change` returns given the current ones ({} when
   * none), atomically with respect to other calls for the same digest, and stamps `updatedAt`.
   */
  update(digest: Digest, change: (current: Labels) => Labels): Promise<LabelRecord>;
  /** Forgets a digest's labels; no error when it has none. */
  delete(digest: Digest): Promise<void>;
}

/**
 * Checks labels as the metadata stores do (sizes; the key `__proto__` is refused): InvalidArgument
 * `info.Labels: label key and value greater than maximum size (4096 bytes), key: <first 10 bytes
 * of key>` as containerd words it.
 */
export function validateLabels(labels: Labels): void {
  try {
    validateMetadataLabels(labels);
  } catch (err) {
    throw wrap(err, 'info.Labels');
  }
}

/** Returns a copy without the entries whose value is empty (an empty value means "no label"). */
export function dropEmptyLabels(labels: Labels | undefined): Labels {
  const out: Labels = {};
  for (const [key, value] of Object.entries(labels ?? {})) if (value !== '') out[key] = value;
  return out;
}

/**
 * Keeps labels in one small JSON file per digest, `<dir>/<alg>/<hex>.json`, replaced atomically
 * (written to a temporary name, synced, renamed). Leftover `*.tmp` files from a crash are never
 * read. Serialises changes per digest within this instance; use one instance per directory.
 */
export class FileLabelStore implements LabelStore {
  private readonly queues = new Map<string, Promise<void>>();

  constructor(readonly dir: string) {}

  async get(digest: Digest): Promise<LabelRecord | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.path(digest), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    const parsed = JSON.parse(text) as { labels?: Labels; updatedAt?: string };
    return { labels: { ...(parsed.labels ?? {}) }, updatedAt: new Date(parsed.updatedAt ?? 0) };
  }

  update(digest: Digest, change: (current: Labels) => Labels): Promise<LabelRecord> {
    const path = this.path(digest);
    return this.serialise(digest, async () => {
      const current = (await this.get(digest))?.labels ?? {};
      const record: LabelRecord = { labels: dropEmptyLabels(change({ ...current })), updatedAt: new Date() };
      await fsp.mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      const fh = await fsp.open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(JSON.stringify({ labels: record.labels, updatedAt: record.updatedAt.toISOString() }));
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await fsp.rename(tmp, path);
      } catch (err) {
        await fsp.rm(tmp, { force: true });
        throw err;
      }
      return record;
    });
  }

  delete(digest: Digest): Promise<void> {
    const path = this.path(digest);
    return this.serialise(digest, () => fsp.rm(path, { force: true }));
  }

  private path(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, algorithm, `${hex}.json`);
  }

  private serialise<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const result = previous.then(fn);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return result;
  }
}
