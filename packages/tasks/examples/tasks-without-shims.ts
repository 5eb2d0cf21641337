import { join } from 'node:path';
import { context } from '@berth/context';
import { Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { LmdbContainerStore, MetadataDb } from '@berth/metadata';
import { ShimTaskManager } from '@berth/runtime';
import { TasksService } from '@berth/tasks';

/**
 * Wires the tasks service as berthd does, over a container store and the runtime v2 task manager
 * in `dir`, and asks it what ctr asks before and instead of starting a task: the tasks of the
 * namespace, the task of a container that has none (NotFound, which ctr relies on), and a create
 * whose runtime is not installed (refused before any shim starts).
 */
export async function tasksWithoutShims(dir: string): Promise<{ tasks: number; get: string; create: string }> {
  const db = MetadataDb.open(join(dir, 'meta'));
  const containers = new LmdbContainerStore(db);
  const runtime = new ShimTaskManager({
    state: join(dir, 'state'),
    root: join(dir, 'root'),
    address: join(dir, 'berthd.sock'),
    ttrpcAddress: join(dir, 'berthd.sock.ttrpc'),
    publishBinary: process.execPath,
    publisher: new Exchange(),
    containers,
    logger: nullLogger,
  });
  try {
    const tasks = new TasksService(containers, runtime, nullLogger);
    const ctx = context({ namespace: 'default' });
    await containers.create(ctx, {
      id: 'web',
      labels: {},
      image: '',
      runtime: { name: 'io.example.missing.v1' },
      spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{"ociVersion":"1.0.2"}') },
      snapshotter: '',
      snapshotKey: '',
      extensions: {},
    });
    const failure = (err: Error) => err.message;
    return {
      tasks: (await tasks.list(ctx)).tasks.length,
      get: await tasks.get(ctx, { containerId: 'web', execId: '' }).then(() => 'found', failure),
      create: await tasks
        .create(ctx, { containerId: 'web', rootfs: [], stdin: '', stdout: '', stderr: '', terminal: false, runtimePath: '' })
        .then(() => 'created', failure),
    };
  } finally {
    runtime.close();
    await db.close();
  }
}
