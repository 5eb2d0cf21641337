/**
 * Acceptance against a real berthd: kill -9 with three running pods. Each pod runs a container
 * writing a numbered log line every 200 ms; berthd is SIGKILLed and started again on the same
 * root. The pods are READY with the same IPs, the containers RUNNING with the same pids, exec
 * works in each, every log keeps growing with no line lost or repeated; once everything is
 * stopped and removed nothing is left on the host: network namespaces, veths, host-local IP
 * allocations, cgroups, mounts, shim processes.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { shimPids, useCriTestBed, waitFor } from './test-bed';
import { json } from './test-support';

jest.setTimeout(180_000);

const bed = useCriTestBed({
  name: 'accept',
  pullBusybox: true,
  pod: { hostname: (name) => name, logs: 'own', makeLogDir: true },
  container: (name) => ({ log_path: `${name}.log` }),
});
const { ok } = bed;
const podConfig = () => bed.pod().path;
const containerConfig = (name: string, command: string[]) => bed.containerConfig(name, { command });
/** Processes whose command line names this daemon's socket: its shims. */
const shims = () => shimPids(bed.berthd.address);
/** What pods may leave on the host: compared before and after. */
const hostState = () => bed.hostState(['netns', 'veths', 'allocations', 'cgroups', 'mounts', 'shims']);

/** The numbers of a ticker's log lines (`<time> stdout F tick <n>`), in file order. */
function ticks(path: string): number[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\S+ stdout F tick (\d+)$/.exec(l);
      if (!m) throw new Error(`unexpected log line in ${path}: ${JSON.stringify(l)}`);
      return Number(m[1]);
    });
}

describe('berthd killed with kill -9 while 3 pods run', () => {
  it('comes back with the 3 pods READY on the same IPs, their containers RUNNING with the same pids, exec working, logs growing without loss or repeat; removing them leaves nothing', async () => {
    const before = hostState();
    const script = 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done';
    const pods: Array<{ pod: string; ctr: string; ip: string; pid: number; podPid: number; log: string }> = [];
    for (let i = 0; i < 3; i++) {
      const config = podConfig();
      const pod = (await ok('runp', config)).trim();
      const ctr = (await ok('create', '--no-pull', pod, containerConfig(`ticker-${i}`, ['sh', '-c', script]), config)).trim();
      await ok('start', ctr);
      const p = json(await ok('inspectp', pod));
      const c = json(await ok('inspect', ctr));
      pods.push({ pod, ctr, ip: p.status.network.ip, pid: c.info.pid, podPid: p.info.pid, log: c.status.logPath });
    }
    expect(new Set(pods.map((p) => p.ip)).size).toBe(3);
    const shimsBefore = shims();
    expect(shimsBefore.length).toBeGreaterThan(0);
    for (const p of pods) await waitFor(`ticks in ${p.log}`, () => ticks(p.log).length >= 3);

    const berthdPid = bed.berthd.pid!;
    await bed.berthd.kill('SIGKILL');
    expect(existsSync(`/proc/${berthdPid}`)).toBe(false);
    // The containers run on without berthd: their shims hold the FIFOs' other ends, and what
    // they write meanwhile waits in the FIFOs for the restarted berthd to copy it to the log.
    const down = pods.map((p) => ticks(p.log).length);
    await new Promise((r) => setTimeout(r, 2000));
    expect(pods.map((p) => ticks(p.log).length)).toEqual(down);
    for (const p of pods) expect(existsSync(`/proc/${p.pid}`) && existsSync(`/proc/${p.podPid}`)).toBe(true);
    await bed.berthd.restart();
    // The same shims serve the tasks: none restarted, none added.
    expect(shims()).toEqual(shimsBefore);

    const listed = json(await ok('pods', '-o', 'json')).items;
    expect(listed.map((p: any) => [p.id, p.state]).sort()).toEqual(pods.map((p) => [p.pod, 'SANDBOX_READY']).sort());
    const running = json(await ok('ps', '-o', 'json')).containers;
    expect(running.map((c: any) => [c.id, c.podSandboxId, c.state]).sort()).toEqual(pods.map((p) => [p.ctr, p.pod, 'CONTAINER_RUNNING']).sort());
    for (const p of pods) {
      const ip = json(await ok('inspectp', p.pod));
      expect({ state: ip.status.state, ip: ip.status.network.ip, pid: ip.info.pid }).toEqual({ state: 'SANDBOX_READY', ip: p.ip, pid: p.podPid });
      const c = json(await ok('inspect', p.ctr));
      expect({ state: c.status.state, pid: c.info.pid }).toEqual({ state: 'CONTAINER_RUNNING', pid: p.pid });
      expect((await ok('exec', '-s', p.ctr, 'sh', '-c', 'echo alive in $(hostname)')).trim()).toBe(`alive in ${ip.status.metadata.name}`);
    }
    // Every log: holds the lines written while berthd was down, grows after, its numbers
    // contiguous from 0 (none lost, none repeated).
    for (const [i, p] of pods.entries()) {
      const seen = ticks(p.log).length;
      expect(seen).toBeGreaterThan(down[i]);
      await waitFor(`more ticks in ${p.log}`, () => ticks(p.log).length >= seen + 5);
      const all = ticks(p.log);
      expect(all).toEqual(all.map((_n, k) => k));
    }

    for (const p of pods) {
      await ok('stop', '--timeout', '0', p.ctr);
      await ok('rm', p.ctr);
      await ok('stopp', p.pod);
      await ok('rmp', p.pod);
    }
    expect(json(await ok('pods', '-o', 'json')).items).toEqual([]);
    expect(json(await ok('ps', '-a', '-o', 'json')).containers).toEqual([]);
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'leases', 'ls', '-q'])).stdout.trim()).toBe('');
    for (const dir of ['sandboxes', 'containers']) expect(readdirSync(join(bed.berthd.root, 'io.containerd.grpc.v1.cri', dir))).toEqual([]);
    // Shims exit a moment after their task is deleted.
    await waitFor('the shims to exit', () => shims().length === before.shims.length || undefined, 10_000).catch(() => undefined);
    expect(hostState()).toEqual(before);
  });
});
