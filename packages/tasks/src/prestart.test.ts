import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { task as taskTypes, types } from '@berth/api';
import { Context, context } from '@berth/context';
import { Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { LmdbContainerStore, MetadataDb } from '@berth/metadata';
import { ShimTaskManager } from '@berth/runtime';
import { TestDaemon, tempDir } from '@berth/testing';
import { TasksService } from './tasks-service';
import { cleanupShims, eventually, ociSpec, populateBusybox, shimSocket, shimsOf } from './test-support';

const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const RUNC = 'io.containerd.runc.v2';

/**
 * A shim started ahead of its task's Create (what the CRI's RunPodSandbox does while it makes the
 * pause container): the real runc-v2 shim, the runtime v2 task manager and the tasks service in
 * this process, as berthd wires them.
 */
describe('TasksService.prestart: a shim started before its container exists', () => {
  const dir = tempDir('berth-prestart-');
  const rootfs = populateBusybox(join(dir.path, 'rootfs'));
  // A berthd for the shims to forward their events to (a shim whose forwards fail retries them,
  // and its shutdown waits for that); the tasks themselves are this process's.
  let d: TestDaemon;
  let address: string;
  const state = join(dir.path, 'state');
  const ctx: Context = context({ namespace: 'default' });
  const mounts: types.Mount[] = [{ type: 'bind', source: rootfs, target: '', options: ['rbind', 'rw'] }];
  let db: MetadataDb;
  let containers: LmdbContainerStore;
  let runtime: ShimTaskManager;
  let tasks: TasksService;

  beforeAll(async () => {
    d = await TestDaemon.start();
    address = d.address;
    db = MetadataDb.open(join(dir.path, 'meta'));
    containers = new LmdbContainerStore(db);
    runtime = new ShimTaskManager({
      state,
      root: join(dir.path, 'root'),
      address,
      ttrpcAddress: `${address}.ttrpc`,
      publishBinary: process.execPath,
      publisher: new Exchange(),
      containers,
      logger: nullLogger,
    });
    tasks = new TasksService(containers, runtime, nullLogger);
  });
  afterAll(async () => {
    const leaked = d ? await cleanupShims(address, dir.path) : 0;
    runtime?.close();
    await db?.close();
    await d?.cleanup();
    dir.remove();
    expect(leaked).toBe(0);
  });

  const specOf = (id: string, args: string[]) => Buffer.from(JSON.stringify(ociSpec(args, (s) => (s.linux.cgroupsPath = `/berth-prestart/${id}`))));
  const record = (id: string, spec: Buffer) =>
    containers.create(ctx, { id, labels: {}, image: '', runtime: { name: RUNC }, spec: { typeUrl: SPEC_TYPE_URL, value: spec }, snapshotter: '', snapshotKey: '', extensions: {} });
  const shimPids = (id: string) => shimsOf(address).filter((s) => s.id === id).map((s) => s.pid);
  const create = (id: string) => tasks.create(ctx, { containerId: id, rootfs: mounts, stdin: '', stdout: '', stderr: '', terminal: false, runtimePath: '' });
  /** Kills and deletes the task, removes the container, and waits for its shim to go. */
  const finish = async (id: string) => {
    await tasks.kill(ctx, { containerId: id, execId: '', signal: 9, all: false });
    await tasks.wait(ctx, { containerId: id, execId: '' });
    await tasks.delete(ctx, { containerId: id });
    await containers.delete(ctx, id);
    await eventually(() => shimPids(id).length === 0);
  };

  it("runs the task in the prestarted shim when the record matches what it was started for", async () => {
    const id = `pre-${process.pid}`;
    const spec = specOf(id, ['/bin/sleep', '1000']);
    await tasks.prestart(ctx, id, { spec, runtime: RUNC });
    const [shim] = shimPids(id);
    expect(shim).toBeGreaterThan(0);
    expect(existsSync(join(state, 'default', id, 'config.json'))).toBe(true);

    await record(id, spec);
    const { pid } = await create(id);
    expect(pid).toBeGreaterThan(0);
    await tasks.start(ctx, { containerId: id, execId: '' });
    // The same shim process serves it: none was started in Create.
    expect(shimPids(id)).toEqual([shim]);
    expect((await tasks.get(ctx, { containerId: id, execId: '' })).process?.status).toBe(taskTypes.Status.RUNNING);
    await finish(id);
    expect(existsSync(join(state, 'default', id))).toBe(false);
  });

  it('shuts the prestarted shim down and starts another when the record holds a different spec', async () => {
    const id = `diff-${process.pid}`;
    await tasks.prestart(ctx, id, { spec: specOf(id, ['/bin/sleep', '1']), runtime: RUNC });
    const [first] = shimPids(id);
    expect(first).toBeGreaterThan(0);

    await record(id, specOf(id, ['/bin/sleep', '1000']));
    await create(id);
    await tasks.start(ctx, { containerId: id, execId: '' });
    const now = shimPids(id);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(first);
    await finish(id);
    expect(shimsOf(address).map((s) => s.pid)).not.toContain(first);
  });

  it('abandonPrestart shuts down a shim no Create took, and removes its bundle and socket', async () => {
    const id = `gone-${process.pid}`;
    await tasks.prestart(ctx, id, { spec: specOf(id, ['/bin/sleep', '1000']), runtime: RUNC });
    const [shim] = shimPids(id);
    expect(shim).toBeGreaterThan(0);
    await tasks.abandonPrestart(ctx, id);
    await eventually(() => shimPids(id).length === 0);
    expect(existsSync(join(state, 'default', id))).toBe(false);
    expect(existsSync(shimSocket(address, 'default', id))).toBe(false);
    // Nothing is left to abandon a second time, and no task exists.
    await tasks.abandonPrestart(ctx, id);
    await expect(tasks.get(ctx, { containerId: id, execId: '' })).rejects.toThrow(/not found/);
  });

  it("never rejects: a runtime that is not installed fails in Create, with Create's own error", async () => {
    const id = `missing-${process.pid}`;
    const spec = specOf(id, ['/bin/true']);
    await expect(tasks.prestart(ctx, id, { spec, runtime: 'io.example.missing.v1' })).resolves.toBeUndefined();
    expect(existsSync(join(state, 'default', id))).toBe(false);
    await containers.create(ctx, { id, labels: {}, image: '', runtime: { name: 'io.example.missing.v1' }, spec: { typeUrl: SPEC_TYPE_URL, value: spec }, snapshotter: '', snapshotKey: '', extensions: {} });
    await expect(create(id)).rejects.toThrow('failed to start shim: failed to resolve runtime path: runtime "io.example.missing.v1" binary not installed');
    await containers.delete(ctx, id);
  });
});
