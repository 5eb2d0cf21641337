import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run';

/** FIFOs made per mkfifo(1) run when the pool refills. */
const DEFAULT_BATCH = 16;

/**
 * FIFOs without a fork on the caller's path. Node has no mkfifo(2), and every spawn from a daemon
 * of some hundred MiB costs 5 to 15 ms of fork here (the page tables are copied). The pool keeps
 * FIFOs made ahead, a batch per mkfifo(1) run, in a directory of its own, and links one into place
 * when asked: link(2) is a syscall Node has, it refuses an existing path as mkfifo(2) does, and
 * the FIFO keeps the mode it was made with (0700). A path on another filesystem (EXDEV) gets a
 * FIFO of its own from mkfifo(1).
 *
 * The directory is the pool's alone: it is emptied when the pool is made (FIFOs of an earlier
 * run are only files) and should be on the filesystem of the paths asked for.
 */
export class FifoPool {
  private readonly ready: string[] = [];
  private filling: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly batch = DEFAULT_BATCH,
  ) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.refill();
  }

  /** How many FIFOs wait in the pool now. */
  get size(): number {
    return this.ready.length;
  }

  /**
   * Makes a FIFO (mode 0700) at each path, in order. Rejects as mkfifo would (EEXIST when a path
   * exists, ENOENT when its directory does not); the paths made before the failing one stay.
   */
  async make(paths: readonly string[]): Promise<void> {
    for (const path of paths) {
      let fifo = this.ready.pop();
      if (fifo === undefined) {
        await this.fill().catch(() => undefined);
        fifo = this.ready.pop();
      }
      if (fifo === undefined) {
        await mkfifo([path]);
        continue;
      }
      try {
        linkSync(fifo, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') {
          this.ready.push(fifo); // still unused
          throw err;
        }
        this.ready.push(fifo);
        await mkfifo([path]);
        continue;
      }
      unlinkSync(fifo);
    }
    if (this.ready.length < this.batch / 2) this.refill();
  }

  /** Removes the pool's directory and the FIFOs in it. */
  close(): void {
    this.ready.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }

  private refill(): void {
    this.fill().catch(() => undefined); // make() falls back to mkfifo(1) for each path
  }

  /** One mkfifo(1) run for a batch; concurrent callers share it. */
  private fill(): Promise<void> {
    this.filling ??= (async () => {
      try {
        const names = Array.from({ length: this.batch }, () => join(this.dir, randomBytes(8).toString('hex')));
        const res = await run('mkfifo', ['-m', '0700', ...names], { stdout: false });
        // mkfifo makes what it can and reports the rest; only the ones that exist are used.
        const made = names.filter((n) => existsSync(n));
        this.ready.push(...made);
        if (made.length === 0) throw new Error(`mkfifo: ${res.stderr.toString().trim() || `exit status ${res.code}`}`);
      } finally {
        this.filling = undefined;
      }
    })();
    return this.filling;
  }
}

/** mkfifo(1) for the given paths, mode 0700; rejects with what it printed. */
async function mkfifo(paths: readonly string[]): Promise<void> {
  const res = await run('mkfifo', ['-m', '0700', ...paths], { stdout: false });
  if (res.code !== 0) {
    const text = res.stderr.toString().trim();
    throw Object.assign(new Error(text || `mkfifo: exit status ${res.code}`), /File exists/.test(text) ? { code: 'EEXIST' } : /No such file/.test(text) ? { code: 'ENOENT' } : {});
  }
}
