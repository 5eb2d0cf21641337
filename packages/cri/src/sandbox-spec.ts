/**
 * The OCI runtime spec of a pod sandbox's pause container, as containerd 1.6's CRI plugin builds
 * it (its default unix spec, then the sandbox options).
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_CAPABILITIES } from '@berth/oci-spec';


/** containerd 1.6's masked paths (2.x masks more; @berth/oci-spec follows 2.x). */
const MASKED_PATHS = [
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
];

const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The OOM score adjustment of every pause process (containerd's defaultSandboxOOMAdj). */
export const SANDBOX_OOM_SCORE_ADJ = -998;
/** CPU shares of the pause container (containerd's defaultSandboxCPUshares). */
export const SANDBOX_CPU_SHARES = 2;

/** How a pod shares a namespace: its own (POD), the host's (NODE). CONTAINER and TARGET apply to containers. */
export type NamespaceModeName = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

/** What the pause container's spec is built from. */
export interface SandboxSpecInput {
  id: string;
  /** The image config's `config` section (Entrypoint, Cmd, Env, WorkingDir). */
  imageConfig: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string };
  hostname: string;
  /** The pod's network namespace (a bind-mounted file); '' for host network. */
  netnsPath: string;
  namespaces: { network: NamespaceModeName; pid: NamespaceModeName; ipc: NamespaceModeName };
  /** `<parent>/<id>`, `<slice>:cri-containerd:<id>` or `/k8s.io/<id>` (see {@link sandboxCgroupsPath}). */
  cgroupsPath: string;
  sysctls: Record<string, string>;
  /** Bound read-only onto /dev/shm: the sandbox's shm directory (a tmpfs), or the host's /dev/shm for host IPC. */
  shmPath: string;
  /** The sandbox's resolv.conf, bound read-only onto /etc/resolv.conf. */
  resolvConfPath: string;
  user?: { uid: number; gid: number; additionalGids: number[] };
  annotations: Record<string, string>;
  /** The pause process's OOM score adjustment. Default {@link SANDBOX_OOM_SCORE_ADJ}. */
  oomScoreAdj?: number;
}

/**
 * The cgroups path of a sandbox on cgroupfs (containerd 1.6): `<parent>/<id>`; a systemd slice
 * parent gives `<slice>:cri-containerd:<id>`; no parent gives `/k8s.io/<id>`.
 */
export function sandboxCgroupsPath(parent: string, id: string): string {
  if (parent === '') return `/k8s.io/${id}`;
  if (parent.endsWith('.slice')) return `${parent.split('/').pop()}:cri-containerd:${id}`;
  return `${parent.replace(/\/+$/, '')}/${id}`;
}

/**
 * containerd's restrictOOMScoreAdj: a wanted OOM score adjustment, or this process's own when
 * that is higher (lowering one's score needs CAP_SYS_RESOURCE).
 */
export function restrictOomScoreAdj(wanted: number): number {
  const current = Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
  return Number.isFinite(current) && wanted < current ? current : wanted;
}

/** Builds the pause container's spec. */
export function sandboxSpec(input: SandboxSpecInput): Record<string, unknown> {
  const args = [...(input.imageConfig.Entrypoint ?? []), ...(input.imageConfig.Cmd ?? [])];
  const env = input.imageConfig.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  // containerd's default mounts (no cgroup mount for a sandbox), then the sandbox's binds: its
  // /dev/shm over the default one, and resolv.conf.
  const mounts: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
  mounts.push(
    { destination: '/dev/shm', type: 'bind', source: input.shmPath, options: ['rbind', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: input.resolvConfPath, options: ['rbind', 'ro'] },
  );

  // containerd's order: pid, ipc, uts, mount, network.
  const namespaces: Array<Record<string, string>> = [];
  if (input.namespaces.pid !== 'NODE') namespaces.push({ type: 'pid' });
  if (input.namespaces.ipc !== 'NODE') namespaces.push({ type: 'ipc' });
  if (input.namespaces.network !== 'NODE') namespaces.push({ type: 'uts' });
  namespaces.push({ type: 'mount' });
  if (input.namespaces.network !== 'NODE') namespaces.push({ type: 'network', path: input.netnsPath });

  const user = input.user ?? { uid: 0, gid: 0, additionalGids: [] };
  return {
    ociVersion: '1.0.2-dev',
    process: {
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length > 0 ? { additionalGids: user.additionalGids } : {}) },
      args,
      env,
      cwd: input.imageConfig.WorkingDir || '/',
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      noNewPrivileges: true,
      oomScoreAdj: input.oomScoreAdj ?? SANDBOX_OOM_SCORE_ADJ,
    },
    root: { path: 'rootfs', readonly: true },
    ...(input.namespaces.network !== 'NODE' ? { hostname: input.hostname } : {}),
    mounts,
    annotations: input.annotations,
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }], cpu: { shares: SANDBOX_CPU_SHARES } },
      cgroupsPath: input.cgroupsPath,
      namespaces,
      ...(Object.keys(input.sysctls).length > 0 ? { sysctl: input.sysctls } : {}),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}
