/**
 * A pod's resource use as containerd 1.6's PodSandboxStats reports it: CPU, memory and process
 * count of the pod's cgroup (its cgroup parent), the network use of the pod's `eth0`, and its
 * containers' stats.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** CPU, memory and processes of a cgroup, read from the cgroupfs (v1 or v2). */
export interface CgroupUsage {
  cpuNs: number;
  memory: { usage: number; workingSet: number; rss: number; pageFaults: number; majorPageFaults: number };
  processes: number;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};
const statOf = (text: string | undefined): Record<string, number> =>
  Object.fromEntries(
    (text ?? '')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [k, v] = l.split(/\s+/);
        return [k, Number(v)];
      }),
  );

/** The usage of the cgroup at `path` (as in `/proc/<pid>/cgroup`); undefined when it does not exist. */
export function cgroupUsage(path: string, root = '/sys/fs/cgroup'): CgroupUsage | undefined {
  if (existsSync(join(root, 'cgroup.controllers'))) {
    const dir = join(root, path);
    if (!existsSync(dir)) return undefined;
    const cpu = statOf(read(join(dir, 'cpu.stat')));
    const mem = statOf(read(join(dir, 'memory.stat')));
    const usage = Number(read(join(dir, 'memory.current')) ?? 0);
    const inactive = mem.inactive_file ?? 0;
    return {
      cpuNs: (cpu.usage_usec ?? 0) * 1000,
      memory: { usage, workingSet: inactive < usage ? usage - inactive : 0, rss: mem.anon ?? 0, pageFaults: mem.pgfault ?? 0, majorPageFaults: mem.pgmajfault ?? 0 },
      processes: Number(read(join(dir, 'pids.current')) ?? 0),
    };
  }
  const memDir = join(root, 'memory', path);
  if (!existsSync(memDir)) return undefined;
  const mem = statOf(read(join(memDir, 'memory.stat')));
  const usage = Number(read(join(memDir, 'memory.usage_in_bytes')) ?? 0);
  const inactive = mem.total_inactive_file ?? 0;
  return {
    cpuNs: Number(read(join(root, 'cpuacct', path, 'cpuacct.usage')) ?? 0),
    memory: { usage, workingSet: inactive < usage ? usage - inactive : 0, rss: mem.total_rss ?? 0, pageFaults: mem.total_pgfault ?? 0, majorPageFaults: mem.total_pgmajfault ?? 0 },
    processes: Number(read(join(root, 'pids', path, 'pids.current')) ?? 0),
  };
}

/** Bytes and errors of a network interface seen from a process's network namespace (`/proc/<pid>/net/dev`). */
export function interfaceUsage(pid: number, name: string): { rxBytes: number; rxErrors: number; txBytes: number; txErrors: number } | undefined {
  const text = read(`/proc/${pid}/net/dev`);
  if (!text) return undefined;
  for (const line of text.split('\n').slice(2)) {
    const [iface, rest] = line.split(':');
    if (!rest || iface.trim() !== name) continue;
    const f = rest.trim().split(/\s+/).map(Number);
    return { rxBytes: f[0], rxErrors: f[2], txBytes: f[8], txErrors: f[10] };
  }
  return undefined;
}
