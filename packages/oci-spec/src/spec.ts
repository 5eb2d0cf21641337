/*
 * The OCI runtime spec a container runs with: containerd's default Linux spec, the image's
 * config applied to it, then the caller's options. Pure functions over plain objects (no daemon,
 * no gRPC), so a CLI can print a spec without connecting.
 */
import { InvalidArgumentError } from '@berth/errdefs';

/** An OCI runtime spec mount. */
export interface SpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/** The part of the OCI runtime spec (runtime-spec 1.0) Berth's client writes and reads. */
export interface Spec {
  ociVersion: string;
  process?: {
    terminal?: boolean;
    consoleSize?: { height: number; width: number };
    user: { uid: number; gid: number; umask?: number; additionalGids?: number[]; username?: string };
    args?: string[];
    env?: string[];
    cwd: string;
    capabilities?: { bounding?: string[]; effective?: string[]; inheritable?: string[]; permitted?: string[]; ambient?: string[] };
    rlimits?: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges?: boolean;
    apparmorProfile?: string;
    [key: string]: unknown;
  };
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: SpecMount[];
  annotations?: Record<string, string>;
  linux?: {
    resources?: {
      devices?: Array<{ allow: boolean; type?: string; major?: number; minor?: number; access?: string }>;
      memory?: { limit?: number; reservation?: number; swap?: number };
      cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
      pids?: { limit: number };
      [key: string]: unknown;
    };
    cgroupsPath?: string;
    namespaces?: Array<{ type: string; path?: string }>;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** What containerd puts in PATH when the image sets none. */
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The capabilities containerd grants by default (Docker's set). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * Returns containerd's default Linux spec for container `id` in `namespace` (what `ctr oci
 * spec` prints, with containerd 2.x's masked paths, which add /proc/interrupts and
 * /sys/devices/virtual/powercap to 1.6's): the five namespaces, proc/dev/sys mounts, the default
 * capabilities, RLIMIT_NOFILE 1024, no new privileges, every device denied, the rootfs at
 * `rootfs` and the cgroup `/<namespace>/<id>` (`/<namespace>` without an id, as ctr prints it).
 */
export function defaultSpec(namespace: string, id: string): Spec {
  const caps = () => [...DEFAULT_CAPABILITIES];
  return {
    ociVersion: '1.0.2-dev',
    process: {
      user: { uid: 0, gid: 0 },
      cwd: '/',
      capabilities: { bounding: caps(), effective: caps(), permitted: caps() },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs' },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      cgroupsPath: id ? `/${namespace}/${id}` : `/${namespace}`,
      namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })),
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
        '/proc/interrupts',
        '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** The `config` of an OCI image config blob (the fields a spec takes from it). */
export interface ImageRuntimeConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
}

/** A user as the spec needs it, resolved from a name or numbers. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

/** Options of a container's process and resources, over the image's config. */
export interface SpecOptions {
  /** The whole argv, replacing entrypoint and cmd (as `ctr run IMAGE ID ARGS...`). */
  args?: string[];
  /** Replaces the image's cmd and keeps its entrypoint (as `docker run IMAGE ARGS...`). */
  command?: string[];
  /** Replaces the image's entrypoint (and drops its cmd unless `command` is given). */
  entrypoint?: string[];
  /** `KEY=value` entries, replacing the image's value of the same key. */
  env?: string[];
  /** Working directory; the image's, else `/`. */
  cwd?: string;
  /** Allocates a terminal (and sets TERM=xterm, as containerd's WithTTY does). */
  tty?: boolean;
  /** Extra mounts; a bind mount without options gets `rbind,rw`. */
  mounts?: SpecMount[];
  /** Memory limit in bytes. */
  memoryLimit?: number;
  /** CPU limit in CPUs (1.5 = a quota of 150 ms per 100 ms period). */
  cpus?: number;
  /** CPU shares (relative weight). */
  cpuShares?: number;
  /** The hostname inside the container. */
  hostname?: string;
  /** Runs with the root filesystem read-only. */
  readonlyRootfs?: boolean;
  /** Drops the network namespace: the container shares the host's network. */
  hostNetwork?: boolean;
}

/** Sets or replaces `KEY=value` entries by key, keeping the first list's order. */
export function mergeEnv(base: readonly string[], over: readonly string[]): string[] {
  const out = [...base];
  for (const entry of over) {
    const key = entry.includes('=') ? entry.slice(0, entry.indexOf('=')) : entry;
    const at = out.findIndex((e) => e === key || e.startsWith(`${key}=`));
    if (at >= 0) out[at] = entry;
    else out.push(entry);
  }
  return out;
}

/**
 * Applies an image's config as containerd's WithImageConfig does: env over the default PATH,
 * args from entrypoint and cmd, working directory. The image's user is left to the caller (it
 * needs the rootfs to resolve names; see {@link applyUser}).
 */
export function applyImageConfig(spec: Spec, config: ImageRuntimeConfig): Spec {
  const p = spec.process!;
  p.env = mergeEnv([DEFAULT_PATH_ENV], config.Env ?? []);
  p.args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  p.cwd = config.WorkingDir || '/';
  return spec;
}

/** Sets the process user (uid, gid, supplementary groups). */
export function applyUser(spec: Spec, user: ResolvedUser): Spec {
  const p = spec.process!;
  p.user = { uid: user.uid, gid: user.gid, ...(user.additionalGids && user.additionalGids.length > 0 ? { additionalGids: user.additionalGids } : {}) };
  return spec;
}

/** Applies the caller's options over a spec that already has the image's config. */
export function applySpecOptions(spec: Spec, options: SpecOptions, image: ImageRuntimeConfig = {}): Spec {
  const p = spec.process!;
  if (options.entrypoint || options.command) p.args = [...(options.entrypoint ?? image.Entrypoint ?? []), ...(options.command ?? (options.entrypoint ? [] : (image.Cmd ?? [])))];
  if (options.args) p.args = [...options.args];
  if (options.env) p.env = mergeEnv(p.env ?? [], options.env);
  if (options.cwd) p.cwd = options.cwd;
  if (options.tty) {
    p.terminal = true;
    p.env = mergeEnv(p.env ?? [], ['TERM=xterm']);
  }
  for (const m of options.mounts ?? []) {
    const bind = (m.type ?? 'bind') === 'bind';
    spec.mounts = [...(spec.mounts ?? []).filter((x) => x.destination !== m.destination), { destination: m.destination, type: m.type ?? 'bind', source: m.source, options: m.options ?? (bind ? ['rbind', 'rw'] : []) }];
  }
  const resources = (spec.linux!.resources ??= {});
  if (options.memoryLimit !== undefined) resources.memory = { ...resources.memory, limit: options.memoryLimit };
  if (options.cpus !== undefined) resources.cpu = { ...resources.cpu, period: 100_000, quota: Math.round(options.cpus * 100_000) };
  if (options.cpuShares !== undefined) resources.cpu = { ...resources.cpu, shares: options.cpuShares };
  if (options.hostname !== undefined) spec.hostname = options.hostname;
  if (options.readonlyRootfs) spec.root = { ...spec.root!, readonly: true };
  if (options.hostNetwork) spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== 'network');
  if (!p.args || p.args.length === 0) throw new InvalidArgumentError('the container has no command: the image sets no entrypoint or cmd, and no args were given');
  return spec;
}
