import { GROUP_SYNC_ENV_OPTIONS, GroupSync, NOSYNC_TXN_FLAGS } from '@berth/group-sync';
import { open } from 'lmdb';

/**
 * Writes `count` records, each in its own transaction, then waits until they are all on disk:
 * one flush on a worker thread for all of them, instead of one flush per commit on this thread.
 * Returns how many commits were waiting for that flush.
 */
export async function writeGrouped(path: string, count: number): Promise<number> {
  const env = open<string, string>({ path, ...GROUP_SYNC_ENV_OPTIONS });
  const sync = new GroupSync(env, `example database ${path}`);
  try {
    for (let i = 0; i < count; i++) {
      env.transactionSync(() => env.putSync(`key-${i}`, `value ${i}`), NOSYNC_TXN_FLAGS);
      sync.committedOne();
    }
    const waiting = sync.unsynced;
    await sync.durable();
    return waiting;
  } finally {
    await sync.close();
    await env.close();
  }
}
