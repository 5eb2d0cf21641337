import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tasks as tapi } from '@berth/api';
import { TestDaemon, removeNamespaceLeftovers, tempDir } from '@berth/testing';
import { cleanupShims, eventually, populateBusybox, shimsOf } from './test-support';

/*
 * runc-v2 serves a pod's containers from its sandbox's shim: a task whose spec carries the
 * annotation io.kubernetes.cri.sandbox-id=<id> joins the shim of task <id>. Deleting such a task
 * must not wait for the shim to exit (it stays for the others); that wait cost every CRI
 * StopContainer 5 s.
 */
describe('tasks that share one shim (runc-v2 grouping by sandbox id)', () => {
  const dir = tempDir('berth-tasks-shared-');
  const rootfs = populateBusybox(join(dir.path, 'rootfs'));
  let d: TestDaemon;
  // Its own namespace, so that its cgroups (/<namespace>/<id>) meet no other suite's.
  const namespace = `shared-shim-${process.pid}`;
  const ctr = (args: string[]) => d.ctr(args, { namespace });

  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    const leaked = d ? await cleanupShims(d.address, d.dir) : 0;
    await d?.cleanup();
    dir.remove();
    removeNamespaceLeftovers(namespace);
    expect(leaked).toBe(0);
  });

  it('deletes a member at once while the shim serves on; the last delete ends the shim', async () => {
    const sandbox = `sb-${process.pid}`;
    const member = `member-${process.pid}`;
    const first = await ctr(['run', '-d', '--rootfs', rootfs, sandbox, '/bin/sleep', '1000']);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const joined = await ctr(['run', '-d', '--annotation', `io.kubernetes.cri.sandbox-id=${sandbox}`, '--rootfs', rootfs, member, '/bin/sleep', '1000']);
    expect({ code: joined.code, stderr: joined.stderr }).toEqual({ code: 0, stderr: '' });
    expect(shimsOf(d.address).map((s) => s.id)).toEqual([sandbox]);
    // berthd joined the running shim itself (no `start` forked to print its address): the
    // member's bundle records the sandbox's shim address, and has no shim log of its own.
    const bundle = (id: string) => join(d.state, 'io.containerd.runtime.v2.task', namespace, id);
    expect(readFileSync(join(bundle(member), 'address'), 'utf8').trim()).toBe(readFileSync(join(bundle(sandbox), 'address'), 'utf8').trim());
    expect(existsSync(join(bundle(member), 'log'))).toBe(false);

    const tasks = d.client(tapi.TasksService, namespace);
    const exited = tasks.wait({ containerId: member, execId: '' });
    expect(await ctr(['tasks', 'kill', '-s', 'SIGKILL', member])).toMatchObject({ code: 0 });
    expect((await exited).exitStatus).toBe(137);
    const t0 = performance.now();
    expect((await tasks.delete({ containerId: member })).exitStatus).toBe(137);
    // Well under the 5 s a wait for the shim's exit would take; it is tens of ms.
    expect(performance.now() - t0).toBeLessThan(2_500);
    expect(shimsOf(d.address).map((s) => s.id)).toEqual([sandbox]);
    expect((await ctr(['tasks', 'ls'])).stdout).toMatch(new RegExp(`^${sandbox}\\s+\\d+\\s+RUNNING$`, 'm'));

    await ctr(['tasks', 'kill', '-s', 'SIGKILL', sandbox]);
    await tasks.wait({ containerId: sandbox, execId: '' });
    await tasks.delete({ containerId: sandbox });
    await eventually(() => shimsOf(d.address).length === 0);
    for (const id of [member, sandbox]) expect(await ctr(['containers', 'rm', id])).toMatchObject({ code: 0 });
  });
});
