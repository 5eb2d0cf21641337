/**
 * The OCI runtime spec of a CRI container, as containerd 1.6's CRI plugin builds it from the
 * ContainerConfig, the pod's config and the image config: its default unix spec, then the CRI
 * options in containerd's order. Pure over its inputs except for what has to be asked of the
 * host (host paths of mounts and devices, their propagation, the daemon's capabilities).
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import type * as Cri from '@berth/api/cri';
import { NotImplementedError, UnknownError } from '@berth/errdefs';
import { hostname as osHostname } from 'node:os';
import { DEFAULT_CAPABILITIES, type ResolvedUser, resolveUser } from '@berth/oci-spec';
import { runtimeDefaultSeccomp } from './seccomp';
import type { NamespaceModeName } from './sandbox-spec';
import { restrictOomScoreAdj } from './sandbox-spec';

/** containerd 1.6's masked paths (as the sandbox's). */
export const CONTAINER_MASKED_PATHS = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'];
export const CONTAINER_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Linux capability names by number (as the kernel's capability.h). */
const CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE',
  'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE',
  'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
].map((n) => `CAP_${n}`);

/** The capabilities this process has (CapEff), by name: what a privileged container gets, as containerd's WithAllCurrentCapabilities. */
export function currentCapabilities(): string[] {
  const m = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  const eff = m ? BigInt(`0x${m[1]}`) : 0n;
  const lastCap = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  return CAP_NAMES.filter((_n, i) => i <= lastCap && (eff & (1n << BigInt(i))) !== 0n);
}

/** What a container's spec is built from. */
export interface ContainerSpecInput {
  id: string;
  config: Cri.ContainerConfig;
  sandboxConfig: Cri.PodSandboxConfig;
  sandboxId: string;
  /** The pause process: `/proc/<pid>/ns/...` are joined. */
  sandboxPid: number;
  /** For TARGET pid mode: the target container's pid. */
  targetPid?: number;
  imageName: string;
  imageConfig: { User?: string; Env?: string[] | null; Entrypoint?: string[] | null; Cmd?: string[] | null; WorkingDir?: string };
  /** Reads a file of the container's rootfs (for /etc/passwd and /etc/group). */
  readRootfsFile: (path: string) => Buffer | undefined;
  /** The sandbox's files, bound into the container when the config does not mount these paths. */
  sandboxFiles: { hostname?: string; hosts?: string; resolvConf?: string; shm: string };
  /** The sandbox's hostname (HOSTNAME env); '' for the host's. */
  hostname: string;
  restrictOomScoreAdj: boolean;
  /** Whether a privileged container gets no host devices (the handler's setting). */
  privilegedWithoutHostDevices: boolean;
  /** Looks a host path's mount up (for propagation checks); default: /proc/self/mountinfo. */
  lookupMount?: (path: string) => { mountPoint: string; optional: string[] };
  /** Defaults: this machine's. */
  capabilities?: { current: string[]; all: string[] };
  /** The host's devices a privileged container gets; default: those under /dev. */
  hostDevices?: () => Array<Record<string, unknown>>;
}

const MODES: NamespaceModeName[] = ['POD', 'CONTAINER', 'NODE', 'TARGET'];
const modeName = (m: number | undefined): NamespaceModeName => MODES[m ?? 0] ?? 'POD';

/** containerd's generateUserString: `user[:group]` from run_as_username / run_as_user / run_as_group. */
export function userString(sc: Cri.LinuxContainerSecurityContext | undefined): string {
  const username = sc?.runAsUsername ?? '';
  const uid = sc?.runAsUser;
  const gid = sc?.runAsGroup;
  if (username === '' && uid === undefined) {
    if (gid !== undefined) throw new UnknownError(`failed to generate user string: user group ${JSON.stringify(String(gid.value))} is specified without user`, { bare: true });
    return '';
  }
  let s = username !== '' ? username : String(uid!.value);
  if (gid !== undefined) s += `:${gid.value}`;
  return s;
}

/** The mount a path is on, with its propagation fields (`shared:N`, `master:N`), from /proc/self/mountinfo. */
function defaultMountLookup(path: string): { mountPoint: string; optional: string[] } {
  let best: { mountPoint: string; optional: string[] } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 7) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    const dash = f.indexOf('-', 6);
    const optional = f.slice(6, dash < 0 ? undefined : dash);
    const under = path === mp || mp === '/' || path.startsWith(`${mp}/`);
    // The last (most recently mounted) of the longest matching mount points wins.
    if (under && (!best || mp.length >= best.mountPoint.length)) best = { mountPoint: mp, optional };
  }
  if (!best) throw new UnknownError(`failed to find the mount of ${JSON.stringify(path)}`);
  return best;
}

/** Device type, numbers and mode of a host device node. */
function deviceOf(path: string): { type: string; major: number; minor: number; fileMode: number; uid: number; gid: number } {
  const st = statSync(path);
  const type = st.isBlockDevice() ? 'b' : st.isCharacterDevice() ? 'c' : st.isFIFO() ? 'p' : '';
  if (type === '') throw new UnknownError(`${path} is not a device`);
  const rdev = st.rdev;
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn);
  const minor = Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));
  return { type, major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

/** The supplementary gids of a user from the image's /etc/group (containerd 1.6.20's WithAdditionalGIDs: the primary gid first). */
function additionalGids(user: string, primaryGid: number, read: (p: string) => Buffer | undefined): number[] {
  const lines = (b: Buffer | undefined) => (b?.toString('utf8') ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  let name = user;
  if (/^\d+$/.test(user)) {
    const entry = lines(read('/etc/passwd')).map((l) => l.split(':')).find((f) => Number(f[2]) === Number(user));
    if (!entry) return [primaryGid];
    name = entry[0];
  }
  const gids = [primaryGid];
  for (const l of lines(read('/etc/group'))) {
    const f = l.split(':');
    if (f[0] === name) continue;
    const members = (f[3] ?? '').split(',');
    const gid = Number(f[2]);
    if (members.includes(name) && !gids.includes(gid)) gids.push(gid);
  }
  return gids;
}

/** Builds the container's spec (the `linux` resources and namespaces included). */
export function containerSpec(input: ContainerSpecInput): Record<string, any> {
  const { config, sandboxConfig } = input;
  const sc = config.linux?.securityContext;
  const image = input.imageConfig;

  // Process args: containerd's WithProcessArgs.
  let args: string[];
  if (config.command.length > 0) args = [...config.command, ...config.args];
  else if (config.args.length > 0) args = [...(image.Entrypoint ?? []), ...config.args];
  else args = [...(image.Entrypoint ?? []), ...(image.Cmd ?? [])];
  if (args.length === 0) throw new UnknownError('no command specified', { bare: true });

  // Env as containerd orders it: the default PATH, TERM for a tty, HOSTNAME, then the image's
  // and the config's, each replacing an earlier value of the same key in place.
  const env: string[] = [];
  const setEnv = (kv: string) => {
    const key = kv.split('=')[0];
    const i = env.findIndex((e) => e.split('=')[0] === key);
    if (i >= 0) env[i] = kv;
    else env.push(kv);
  };
  setEnv('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  if (config.tty) setEnv('TERM=xterm');
  setEnv(`HOSTNAME=${input.hostname !== '' ? input.hostname : osHostname()}`);
  for (const e of image.Env ?? []) setEnv(e);
  for (const e of config.envs) setEnv(`${e.key}=${Buffer.isBuffer(e.value) ? e.value.toString('utf8') : String(e.value)}`);

  const cwd = config.workingDir !== '' ? config.workingDir : image.WorkingDir || '/';

  // User and groups.
  let userstr = userString(sc);
  if (userstr === '') userstr = image.User ?? '';
  let user: ResolvedUser = { uid: 0, gid: 0 };
  if (userstr !== '') {
    try {
      user = resolveUser(userstr, input.readRootfsFile);
    } catch (err) {
      throw new UnknownError(`failed to generate spec: ${(err as Error).message}`, { bare: true, cause: err });
    }
  }
  const gidsUser = sc?.runAsUsername ? sc.runAsUsername : String(sc?.runAsUser?.value ?? 0);
  let gids = additionalGids(gidsUser, user.gid, input.readRootfsFile);
  for (const g of sc?.supplementalGroups ?? []) gids.push(Number(g));
  gids = gids.filter((g, i) => gids.indexOf(g) === i);

  const privileged = !!sc?.privileged;
  if (privileged && !sandboxConfig.linux?.securityContext?.privileged) throw new UnknownError('no privileged container allowed in sandbox', { bare: true });
  // `ALL` is every capability this daemon has, as containerd 1.6's allCaps (cap.Current()).
  const caps = input.capabilities ?? { current: currentCapabilities(), all: currentCapabilities() };

  // Capabilities.
  let bounding = [...DEFAULT_CAPABILITIES];
  if (privileged) bounding = [...caps.current];
  else if (sc?.capabilities) {
    const add = sc.capabilities.addCapabilities;
    const drop = sc.capabilities.dropCapabilities;
    if (add.some((c) => c.toUpperCase() === 'ALL')) bounding = [...caps.all];
    if (drop.some((c) => c.toUpperCase() === 'ALL')) bounding = [];
    for (const c of add) {
      if (c.toUpperCase() === 'ALL') continue;
      const name = `CAP_${c.toUpperCase()}`;
      if (!bounding.includes(name)) bounding.push(name);
    }
    for (const c of drop) {
      if (c.toUpperCase() === 'ALL') continue;
      const name = `CAP_${c.toUpperCase()}`;
      bounding = bounding.filter((b) => b !== name);
    }
  }

  // Mounts: the default ones (less those the config or the sandbox files replace), cgroup, then binds.
  type CriMount = { containerPath: string; hostPath: string; readonly: boolean; propagation: number };
  const criMounts: CriMount[] = config.mounts.map((m) => ({ containerPath: m.containerPath, hostPath: m.hostPath, readonly: m.readonly, propagation: m.propagation }));
  const inCri = (p: string) => criMounts.some((m) => m.containerPath.replace(/\/+$/, '') === p);
  const ro = !!sc?.readonlyRootfs;
  const extra: CriMount[] = [];
  const files = input.sandboxFiles;
  if (files.hostname && !inCri('/etc/hostname') && existsSync(files.hostname)) extra.push({ containerPath: '/etc/hostname', hostPath: files.hostname, readonly: ro, propagation: 0 });
  if (files.hosts && !inCri('/etc/hosts')) extra.push({ containerPath: '/etc/hosts', hostPath: files.hosts, readonly: ro, propagation: 0 });
  if (files.resolvConf && !inCri('/etc/resolv.conf')) extra.push({ containerPath: '/etc/resolv.conf', hostPath: files.resolvConf, readonly: ro, propagation: 0 });
  if (!inCri('/dev/shm')) extra.push({ containerPath: '/dev/shm', hostPath: modeName(sc?.namespaceOptions?.ipc) === 'NODE' ? '/dev/shm' : files.shm, readonly: false, propagation: 0 });
  const all = [...extra, ...criMounts];
  const dests = new Set(all.map((m) => m.containerPath.replace(/\/+$/, '') || '/'));
  const defaults: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
  ];
  const mounts: Array<Record<string, unknown>> = defaults.filter((m) => {
    const d = m.destination as string;
    if (dests.has(d)) return false;
    if (dests.has('/dev') && d.startsWith('/dev/')) return false;
    return true;
  });
  if (privileged) for (const m of mounts) if (m.destination === '/sys') m.options = (m.options as string[]).filter((o) => o !== 'ro').concat([]);
  let rootfsPropagation: string | undefined;
  const lookup = input.lookupMount ?? defaultMountLookup;
  // Fewer path parts first, so that a mount never hides one below it (a stable sort).
  const parts = (p: string) => p.split('/').filter(Boolean).length;
  const ordered = all.map((m, i) => ({ m, i })).sort((a, b) => parts(a.m.containerPath) - parts(b.m.containerPath) || a.i - b.i).map((x) => x.m);
  // cgroup read-only, as Docker (rw for privileged).
  mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] });
  for (const m of ordered) {
    let src = m.hostPath;
    if (!existsSync(src)) {
      try {
        mkdirSync(src, { recursive: true, mode: 0o755 });
      } catch (err) {
        throw new UnknownError(`failed to generate spec: failed to mkdir ${JSON.stringify(src)}: ${(err as Error).message}`, { bare: true });
      }
    }
    try {
      src = realpathSync(src);
    } catch (err) {
      throw new UnknownError(`failed to generate spec: failed to resolve symlink ${JSON.stringify(m.hostPath)}: ${(err as Error).message}`, { bare: true });
    }
    const options = ['rbind'];
    if (m.propagation === 2) {
      const info = lookup(src);
      if (!info.optional.some((o) => o.startsWith('shared:'))) throw new UnknownError(`failed to generate spec: path ${JSON.stringify(src)} is mounted on ${JSON.stringify(info.mountPoint)} but it is not a shared mount`, { bare: true });
      options.push('rshared');
      rootfsPropagation = 'rshared';
    } else if (m.propagation === 1) {
      const info = lookup(src);
      if (!info.optional.some((o) => o.startsWith('shared:') || o.startsWith('master:'))) throw new UnknownError(`failed to generate spec: path ${JSON.stringify(src)} is mounted on ${JSON.stringify(info.mountPoint)} but it is not a shared or slave mount`, { bare: true });
      options.push('rslave');
      if (rootfsPropagation !== 'rshared' && rootfsPropagation !== 'rslave') rootfsPropagation = 'rslave';
    } else options.push('rprivate');
    options.push(m.readonly ? 'ro' : 'rw');
    mounts.push({ destination: m.containerPath, type: 'bind', source: src, options });
  }

  // Devices.
  const devices: Array<Record<string, unknown>> = [];
  const deviceRules: Array<Record<string, unknown>> = [{ allow: false, access: 'rwm' }];
  if (privileged) {
    if (!input.privilegedWithoutHostDevices) {
      devices.push(...(input.hostDevices ?? hostDevices)());
      deviceRules.length = 0;
      deviceRules.push({ allow: true, access: 'rwm' });
    }
  } else {
    for (const d of config.devices) {
      let host: string;
      try {
        host = realpathSync(d.hostPath);
      } catch (err) {
        throw new UnknownError(`failed to generate spec: failed to resolve symlink ${JSON.stringify(d.hostPath)}: ${(err as Error).message}`, { bare: true });
      }
      const dev = deviceOf(host);
      devices.push({ path: d.containerPath, type: dev.type, major: dev.major, minor: dev.minor, fileMode: dev.fileMode, uid: dev.uid, gid: dev.gid });
      deviceRules.push({ allow: true, type: dev.type, major: dev.major, minor: dev.minor, access: d.permissions });
    }
  }

  // Resources.
  const r = config.linux?.resources;
  const resources: Record<string, any> = r ? specResources(r, deviceRules) : { devices: deviceRules };

  // Namespaces: the pod's (its pause process's), by path, per the container's own namespace
  // options (as containerd's WithPodNamespaces; a host-namespace pod's pause process is in the
  // host's namespaces anyway).
  const own = sc?.namespaceOptions;
  const pidMode = modeName(own?.pid);
  const nsPath = (t: string) => `/proc/${input.sandboxPid}/ns/${t}`;
  const namespaces: Array<Record<string, string>> = [];
  if (pidMode === 'POD') namespaces.push({ type: 'pid', path: nsPath('pid') });
  else if (pidMode === 'TARGET') {
    if (!input.targetPid) throw new UnknownError(`failed to generate spec: no target container ${JSON.stringify(own?.targetId ?? '')} for the pid namespace`, { bare: true });
    namespaces.push({ type: 'pid', path: `/proc/${input.targetPid}/ns/pid` });
  } else if (pidMode === 'CONTAINER') namespaces.push({ type: 'pid' });
  if (modeName(own?.ipc) !== 'NODE') namespaces.push({ type: 'ipc', path: nsPath('ipc') });
  if (modeName(own?.network) !== 'NODE') namespaces.push({ type: 'uts', path: nsPath('uts') });
  namespaces.push({ type: 'mount' });
  if (modeName(own?.network) !== 'NODE') namespaces.push({ type: 'network', path: nsPath('net') });

  // OOM score: only when the config has resources (as containerd's WithOOMScoreAdj).
  const oomScoreAdj = r ? (input.restrictOomScoreAdj ? restrictOomScoreAdj(r.oomScoreAdj) : r.oomScoreAdj) : undefined;

  // Masked and read-only paths: those the config gives (kubelet always gives them; containerd
  // 1.6.20 sets none of its own for a container, as seen side by side).
  const maskedPaths: string[] = privileged ? [] : (sc?.maskedPaths ?? []);
  const readonlyPaths: string[] = privileged ? [] : (sc?.readonlyPaths ?? []);

  // Seccomp: RuntimeDefault, Unconfined or a Localhost profile (never for privileged).
  let seccomp: unknown;
  if (!privileged) {
    const profile = sc?.seccomp;
    const path = sc?.seccompProfilePath ?? '';
    let kind: 'default' | 'localhost' | 'none' = 'none';
    let ref = '';
    if (profile) {
      if (profile.profileType !== 2 && profile.localhostRef !== '') throw new UnknownError('failed to generate seccomp spec opts: seccomp config invalid LocalhostRef must only be set if ProfileType is Localhost', { bare: true });
      if (profile.profileType === 0) kind = 'default';
      else if (profile.profileType === 2) {
        kind = 'localhost';
        ref = profile.localhostRef.replace(/^localhost\//, '');
      }
    } else if (path === 'runtime/default' || path === 'docker/default') kind = 'default';
    else if (path.startsWith('localhost/')) {
      kind = 'localhost';
      ref = path.slice('localhost/'.length);
    } else if (path !== '' && path !== 'unconfined') throw new UnknownError(`failed to generate seccomp spec opts: unsupported seccomp profile ${JSON.stringify(path)}`, { bare: true });
    if (kind === 'default') seccomp = runtimeDefaultSeccomp(bounding);
    else if (kind === 'localhost') {
      try {
        seccomp = JSON.parse(readFileSync(ref, 'utf8'));
      } catch (err) {
        throw new UnknownError(`failed to generate seccomp spec opts: cannot load seccomp profile ${JSON.stringify(ref)}: ${(err as Error).message}`, { bare: true });
      }
    }
  }

  const sm = sandboxConfig.metadata!;
  const annotations: Record<string, string> = {
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.sandbox-id': input.sandboxId,
    'io.kubernetes.cri.sandbox-namespace': sm.namespace,
    'io.kubernetes.cri.sandbox-uid': sm.uid,
    'io.kubernetes.cri.sandbox-name': sm.name,
    'io.kubernetes.cri.container-name': config.metadata?.name ?? '',
    'io.kubernetes.cri.image-name': input.imageName,
  };

  const process: Record<string, unknown> = {
    ...(config.tty ? { terminal: true } : {}),
    user: { uid: user.uid, gid: user.gid, ...(gids.length > 0 ? { additionalGids: gids } : {}) },
    args,
    env,
    cwd,
    capabilities: { bounding, effective: [...bounding], permitted: [...bounding] },
    ...(sc?.noNewPrivs ? { noNewPrivileges: true } : {}),
    ...(oomScoreAdj !== undefined ? { oomScoreAdj } : {}),
  };
  return {
    ociVersion: '1.0.2-dev',
    process,
    root: { path: 'rootfs', ...(ro ? { readonly: true } : {}) },
    mounts,
    annotations,
    linux: {
      resources,
      cgroupsPath: containerCgroupsPath(sandboxConfig.linux?.cgroupParent ?? '', input.id),
      namespaces,
      ...(devices.length > 0 ? { devices } : {}),
      ...(seccomp ? { seccomp } : {}),
      ...(maskedPaths.length > 0 ? { maskedPaths } : {}),
      ...(readonlyPaths.length > 0 ? { readonlyPaths } : {}),
      ...(rootfsPropagation ? { rootfsPropagation } : {}),
    },
  };
}

/** The cgroups path of a container: beside its sandbox's, as containerd 1.6 on cgroupfs. */
export function containerCgroupsPath(parent: string, id: string): string {
  if (parent === '') return `/k8s.io/${id}`;
  if (parent.endsWith('.slice')) return `${parent.split('/').pop()}:cri-containerd:${id}`;
  return `${parent.replace(/\/+$/, '')}/${id}`;
}

/** Whether the memory cgroup limits swap (cgroup v1's memsw files, v2's memory.swap.max). */
function swapLimitable(): boolean {
  return existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes') || existsSync('/sys/fs/cgroup/cgroup.controllers');
}

/**
 * The OCI resources of CRI's LinuxContainerResources, as containerd's WithResources sets them:
 * only what is non-zero; with a memory limit and no swap limit, swap is limited to the memory
 * limit where the cgroup can limit swap.
 */
export function specResources(r: Cri.LinuxContainerResources, devices: unknown): Record<string, any> {
  const out: Record<string, any> = { devices };
  const cpu: Record<string, unknown> = {};
  if (r.cpuShares) cpu.shares = r.cpuShares;
  if (r.cpuQuota) cpu.quota = r.cpuQuota;
  if (r.cpuPeriod) cpu.period = r.cpuPeriod;
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;
  if (r.memoryLimitInBytes) {
    const swap = r.memorySwapLimitInBytes ? r.memorySwapLimitInBytes : swapLimitable() ? r.memoryLimitInBytes : 0;
    out.memory = { limit: r.memoryLimitInBytes, ...(swap ? { swap } : {}) };
  }
  if (r.hugepageLimits.length > 0) out.hugepageLimits = r.hugepageLimits.map((h) => ({ pageSize: h.pageSize, limit: h.limit }));
  if (Object.keys(r.unified).length > 0) out.unified = { ...r.unified };
  return out;
}

/**
 * The host's device nodes under /dev, depth first in name order, as containerd's HostDevices
 * lists them for a privileged container (pts, shm, fd, mqueue and console left out).
 */
export function hostDevices(): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const skipDirs = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = `${dir}/${name}`;
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (!skipDirs.has(name)) walk(path);
        continue;
      }
      if (path === '/dev/console') continue;
      if (!st.isCharacterDevice() && !st.isBlockDevice()) continue;
      const dev = deviceOf(path);
      out.push({ path, type: dev.type, major: dev.major, minor: dev.minor, fileMode: dev.fileMode, uid: dev.uid, gid: dev.gid });
    }
  };
  walk('/dev');
  return out;
}

/** Validates a mount for CreateContainer before anything is made (an empty path is refused). */
export function checkMounts(config: Cri.ContainerConfig): void {
  for (const m of config.mounts) {
    if (m.image && m.image.image !== '') throw new NotImplementedError('image volume mounts are not supported', { bare: true });
    if (m.hostPath === '') throw new UnknownError(`failed to generate spec: mount host path of ${JSON.stringify(m.containerPath)} is empty`, { bare: true });
  }
}

