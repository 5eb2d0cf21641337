import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { Server, createServer } from 'node:net';
import { join } from 'node:path';
import { FailedPreconditionError } from '@berth/errdefs';

/**
 * Holds a root directory for one berthd at a time. The lock is an abstract unix socket named
 * after the root: the kernel frees it when the process dies, so a kill -9 leaves no stale lock.
 * The pid file next to it only serves the error message.
 */
export class RootLock {
  private constructor(private readonly server: Server, private readonly pidFile: string) {}

  static async acquire(root: string): Promise<RootLock> {
    const real = realpathSync(root);
    const name = `\0berthd-root-${createHash('sha256').update(real).digest('hex').slice(0, 32)}`;
    const pidFile = join(real, 'berthd.pid');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EADDRINUSE') return reject(err);
        let holder = '';
        try {
          holder = ` (pid ${readFileSync(pidFile, 'utf8').trim()})`;
        } catch {
          // The other daemon may not have written its pid yet.
        }
        reject(new FailedPreconditionError(`another berthd is already running on root ${real}${holder}`));
      });
      server.listen(name, () => resolve());
    });
    server.unref();
    writeFileSync(pidFile, `${process.pid}\n`);
    return new RootLock(server, pidFile);
  }

  release(): void {
    rmSync(this.pidFile, { force: true });
    this.server.close();
  }
}
