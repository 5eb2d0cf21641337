import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

interface Entry {
  opening: Promise<{ fh: FileHandle; size: number }>;
  refs: number;
  stale: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * Shares open handles of blob files between readers. Blobs never change once committed, so one
 * descriptor serves every concurrent and successive read of a digest; clients that read a blob
 * in many small ranges (`ctr content get` asks for 32 KiB per call) then cost one positional
 * read per call instead of open + fstat + read + close. A handle is closed after `idleMs` with
 * no reader, or as soon as its last reader is done once the blob was deleted.
 */
export class BlobHandles {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly idleMs = 2000) {}

  /** Opens (or shares) the handle of `path`; `release` must be called exactly once. */
  async acquire(path: string): Promise<{ fh: FileHandle; size: number; release: () => void }> {
    let entry = this.entries.get(path);
    if (!entry) {
      const opening = (async () => {
        const fh = await fsp.open(path, 'r');
        try {
          return { fh, size: (await fh.stat()).size };
        } catch (err) {
          await fh.close();
          throw err;
        }
      })();
      entry = { opening, refs: 0, stale: false };
      this.entries.set(path, entry);
    }
    const e = entry;
    // An idle timer left armed is harmless: it finds a reader and does nothing.
    e.refs++;
    let opened;
    try {
      opened = await e.opening;
    } catch (err) {
      e.refs--;
      if (this.entries.get(path) === e) this.entries.delete(path);
      throw err;
    }
    let released = false;
    return {
      ...opened,
      release: () => {
        if (released) return;
        released = true;
        e.refs--;
        if (e.refs > 0) return;
        if (e.stale) return void this.drop(path, e);
        // One timer per handle, re-armed: a client reading in small ranges releases the handle
        // once per call, and a new timer each time (insert and expiry) was about 1.5% of the
        // daemon CPU of `ctr content get`.
        if (e.timer) e.timer.refresh();
        else {
          e.timer = setTimeout(() => {
            if (e.refs === 0) void this.drop(path, e);
          }, this.idleMs);
          e.timer.unref();
        }
      },
    };
  }

  /** Forgets the handle of a deleted blob; it closes when its last reader is done. */
  invalidate(path: string): void {
    const e = this.entries.get(path);
    if (!e) return;
    this.entries.delete(path);
    e.stale = true;
    if (e.refs === 0) this.drop(path, e);
  }

  /** Closes every handle no reader holds. */
  async closeIdle(): Promise<void> {
    await Promise.all([...this.entries].filter(([, e]) => e.refs === 0).map(([p, e]) => this.drop(p, e)));
  }

  private async drop(path: string, e: Entry): Promise<void> {
    if (e.timer) clearTimeout(e.timer);
    if (this.entries.get(path) === e) this.entries.delete(path);
    try {
      await (await e.opening).fh.close();
    } catch {
      // Opening failed (the acquirer saw the error) or the handle is already closed.
    }
  }
}
