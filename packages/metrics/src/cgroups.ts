import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A `<key> <value>` cgroup file (memory.stat, cpu.stat, memory.events, oom_control) as numbers. */
export type FlatKeyed = Record<string, number>;

/** One blkio entry: a device and an operation. */
export interface BlkioEntry {
  major: number;
  minor: number;
  device: string;
  op: string;
  value: number;
}

/** The figures of one task's cgroup, read from its files at one moment. */
export interface CgroupStats {
  version: 1 | 2;
  cpu?: {
    /** v1: nanoseconds (cpuacct); v2: microseconds (cpu.stat usage_usec...). */
    total: number;
    kernel: number;
    user: number;
    perCpu: number[];
    periods: number;
    throttledPeriods: number;
    throttledTime: number;
  };
  memory?: {
    usage: number;
    limit: number;
    max: number;
    failcnt: number;
    /** memory.stat (v1 or v2 keys as the kernel writes them). */
    stat: FlatKeyed;
    swap?: { usage: number; limit: number; max: number; failcnt: number };
    kernel?: { usage: number; limit: number; max: number; failcnt: number };
    kernelTcp?: { usage: number; limit: number; max: number; failcnt: number };
    /** OOM kills in the cgroup (v1 memory.oom_control, v2 memory.events `oom_kill`). */
    oomKills: number;
  };
  pids?: { current: number; limit: number };
  blkio?: { serviceBytes: BlkioEntry[]; serviced: BlkioEntry[] };
}

/** Where a task's cgroup lives for each controller (v1), or its one directory (v2). */
export interface CgroupPaths {
  version: 1 | 2;
  /** v1: controller name -> directory; v2: `''` -> directory. */
  dirs: Record<string, string>;
}

interface CgroupMount {
  root: string;
  mountPoint: string;
  /** v1 controllers of the hierarchy (`cpu`, `cpuacct`, `name=systemd`); empty for cgroup2. */
  controllers: string[];
  v2: boolean;
}

/** Parses /proc/self/mountinfo's cgroup and cgroup2 mounts. */
export function cgroupMounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({
      root: unescape(pre[3]),
      mountPoint: unescape(pre[4]),
      controllers: fstype === 'cgroup' ? superOpts.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent') && o !== 'clone_children') : [],
      v2: fstype === 'cgroup2',
    });
  }
  return out;
}

const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'blkio'];

/**
 * Finds the cgroup directories of a process from /proc/<pid>/cgroup and the cgroup mounts. On a
 * v1 host each controller has its own hierarchy; on a v2 (unified) host there is one directory.
 * Undefined when the process is gone.
 */
export async function cgroupPathsOf(pid: number, mounts: CgroupMount[]): Promise<CgroupPaths | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  const v1: Record<string, string> = {};
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, , list, path] = m;
    if (list === '') {
      unified = path;
      continue;
    }
    for (const c of list.split(',')) {
      if (!V1_CONTROLLERS.includes(c)) continue;
      const mount = mounts.find((mt) => !mt.v2 && mt.controllers.includes(c));
      if (mount) v1[c] = within(mount, path);
    }
  }
  if (Object.keys(v1).length > 0) return { version: 1, dirs: v1 };
  const mount = mounts.find((mt) => mt.v2);
  if (unified !== undefined && mount) return { version: 2, dirs: { '': within(mount, unified) } };
  return undefined;
}

function within(mount: CgroupMount, path: string): string {
  const rel = mount.root !== '/' && path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
  return join(mount.mountPoint, rel);
}

async function text(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads one number; `max` (no limit) reads as `unlimited`; a missing file as undefined. */
async function num(path: string, unlimited = 0): Promise<number | undefined> {
  const s = (await text(path))?.trim();
  if (s === undefined || s === '') return undefined;
  if (s === 'max') return unlimited;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** Parses a flat keyed file (`key value` per line). */
export function parseFlatKeyed(s: string | undefined): FlatKeyed {
  const out: FlatKeyed = {};
  for (const line of (s ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

const deviceNames = new Map<string, string>();

/** The /dev path of a block device, as containerd's label shows it (empty when unknown). */
function deviceName(major: number, minor: number): string {
  const key = `${major}:${minor}`;
  let name = deviceNames.get(key);
  if (name === undefined) {
    try {
      const uevent = readFileSync(`/sys/dev/block/${key}/uevent`, 'utf8');
      const dev = /^DEVNAME=(.*)$/m.exec(uevent)?.[1];
      name = dev ? `/dev/${dev}` : '';
    } catch {
      name = '';
    }
    deviceNames.set(key, name);
  }
  return name;
}

/** Parses a v1 blkio recursive file (`maj:min Op value`, then `Total n`). */
function parseBlkio(s: string | undefined): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (s ?? '').split('\n')) {
    const m = /^(\d+):(\d+)\s+(\S+)\s+(\d+)$/.exec(line.trim());
    if (!m) continue;
    const major = Number(m[1]);
    const minor = Number(m[2]);
    out.push({ major, minor, device: deviceName(major, minor), op: m[3], value: Number(m[4]) });
  }
  return out;
}

async function v1Counters(dir: string, prefix: string): Promise<{ usage: number; limit: number; max: number; failcnt: number } | undefined> {
  const usage = await num(join(dir, `${prefix}usage_in_bytes`));
  if (usage === undefined) return undefined;
  return {
    usage,
    limit: (await num(join(dir, `${prefix}limit_in_bytes`))) ?? 0,
    max: (await num(join(dir, `${prefix}max_usage_in_bytes`))) ?? 0,
    failcnt: (await num(join(dir, `${prefix}failcnt`))) ?? 0,
  };
}

/** Reads the v1 figures containerd's cgroups monitor reports. */
async function readV1(dirs: Record<string, string>): Promise<CgroupStats> {
  const stats: CgroupStats = { version: 1 };
  const cpuacct = dirs.cpuacct;
  if (cpuacct) {
    const total = await num(join(cpuacct, 'cpuacct.usage'));
    if (total !== undefined) {
      // cpuacct.stat counts USER_HZ ticks (100 a second on Linux); containerd reports nanoseconds.
      const ticks = parseFlatKeyed(await text(join(cpuacct, 'cpuacct.stat')));
      const throttle = dirs.cpu ? parseFlatKeyed(await text(join(dirs.cpu, 'cpu.stat'))) : {};
      stats.cpu = {
        total,
        kernel: (ticks.system ?? 0) * 1e7,
        user: (ticks.user ?? 0) * 1e7,
        perCpu: ((await text(join(cpuacct, 'cpuacct.usage_percpu'))) ?? '').trim().split(/\s+/).filter(Boolean).map(Number),
        periods: throttle.nr_periods ?? 0,
        throttledPeriods: throttle.nr_throttled ?? 0,
        throttledTime: throttle.throttled_time ?? 0,
      };
    }
  }
  const mem = dirs.memory;
  if (mem) {
    const usage = await v1Counters(mem, 'memory.');
    if (usage) {
      stats.memory = {
        ...usage,
        stat: parseFlatKeyed(await text(join(mem, 'memory.stat'))),
        swap: await v1Counters(mem, 'memory.memsw.'),
        kernel: await v1Counters(mem, 'memory.kmem.'),
        kernelTcp: await v1Counters(mem, 'memory.kmem.tcp.'),
        oomKills: parseFlatKeyed(await text(join(mem, 'memory.oom_control'))).oom_kill ?? 0,
      };
    }
  }
  if (dirs.pids) {
    const current = await num(join(dirs.pids, 'pids.current'));
    if (current !== undefined) stats.pids = { current, limit: (await num(join(dirs.pids, 'pids.max'))) ?? 0 };
  }
  if (dirs.blkio) {
    // As containerd: the CFQ files when the kernel fills them, else the throttle layer's.
    let serviceBytes = parseBlkio(await text(join(dirs.blkio, 'blkio.io_service_bytes_recursive')));
    let serviced = parseBlkio(await text(join(dirs.blkio, 'blkio.io_serviced_recursive')));
    if (serviceBytes.length === 0 && serviced.length === 0) {
      serviceBytes = parseBlkio(await text(join(dirs.blkio, 'blkio.throttle.io_service_bytes_recursive')));
      serviced = parseBlkio(await text(join(dirs.blkio, 'blkio.throttle.io_serviced_recursive')));
    }
    stats.blkio = { serviceBytes, serviced };
  }
  return stats;
}

/** Reads the v2 (unified) figures. */
async function readV2(dir: string): Promise<CgroupStats> {
  const stats: CgroupStats = { version: 2 };
  const cpu = parseFlatKeyed(await text(join(dir, 'cpu.stat')));
  if (cpu.usage_usec !== undefined) {
    stats.cpu = {
      total: cpu.usage_usec,
      kernel: cpu.system_usec ?? 0,
      user: cpu.user_usec ?? 0,
      perCpu: [],
      periods: cpu.nr_periods ?? 0,
      throttledPeriods: cpu.nr_throttled ?? 0,
      throttledTime: cpu.throttled_usec ?? 0,
    };
  }
  const usage = await num(join(dir, 'memory.current'));
  if (usage !== undefined) {
    const swap = await num(join(dir, 'memory.swap.current'));
    stats.memory = {
      usage,
      limit: (await num(join(dir, 'memory.max'), Number.MAX_SAFE_INTEGER)) ?? 0,
      max: (await num(join(dir, 'memory.peak'))) ?? 0,
      failcnt: 0,
      stat: parseFlatKeyed(await text(join(dir, 'memory.stat'))),
      swap: swap === undefined ? undefined : { usage: swap, limit: (await num(join(dir, 'memory.swap.max'), Number.MAX_SAFE_INTEGER)) ?? 0, max: 0, failcnt: 0 },
      oomKills: parseFlatKeyed(await text(join(dir, 'memory.events'))).oom_kill ?? 0,
    };
  }
  const current = await num(join(dir, 'pids.current'));
  if (current !== undefined) stats.pids = { current, limit: (await num(join(dir, 'pids.max'))) ?? 0 };
  return stats;
}

/** Reads a task's cgroup figures; undefined when its cgroup is gone. */
export async function readCgroupStats(paths: CgroupPaths): Promise<CgroupStats | undefined> {
  const stats = paths.version === 1 ? await readV1(paths.dirs) : await readV2(paths.dirs['']);
  return stats.cpu || stats.memory || stats.pids ? stats : undefined;
}

/** Reads only the OOM kill count of a task's cgroup (cheap enough to poll). */
export async function readOomKills(paths: CgroupPaths): Promise<number | undefined> {
  if (paths.version === 1) {
    if (!paths.dirs.memory) return undefined;
    const s = await text(join(paths.dirs.memory, 'memory.oom_control'));
    return s === undefined ? undefined : (parseFlatKeyed(s).oom_kill ?? 0);
  }
  const s = await text(join(paths.dirs[''], 'memory.events'));
  return s === undefined ? undefined : (parseFlatKeyed(s).oom_kill ?? 0);
}
