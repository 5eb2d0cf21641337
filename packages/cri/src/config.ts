import { InvalidArgumentError } from '@berth/errdefs';

/** One `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>]` table. */
export interface CriRuntimeConfig {
  /** The shim: `io.containerd.runc.v2` for runc. Required. */
  runtime_type: string;
  /** Shim options (for runc: `BinaryName`, `SystemdCgroup`...), passed on as given. Default {}. */
  options: Record<string, unknown>;
  /** A CNI config dir for sandboxes of this handler; '' (default): `cni.conf_dir`. */
  cni_conf_dir: string;
  /** Whether privileged containers get no host devices. Default false. */
  privileged_without_host_devices: boolean;
}

/**
 * `[plugins."io.containerd.grpc.v1.cri"]`, containerd 1.6's keys and defaults (`containerd config
 * default`). Parsed and checked as a whole at start, also the keys nothing reads yet (pods,
 * containers and streaming come later), so a config that containerd refuses is refused here too.
 */
export interface CriConfig {
  /** The pause image of pod sandboxes. Default `registry.k8s.io/pause:3.6`. */
  sandbox_image: string;
  /**
   * Never ask for an OOM score below berthd's own (containerd's key): for hosts where lowering it
   * is not allowed (no CAP_SYS_RESOURCE, as in many containers). Default false.
   */
  restrict_oom_score_adj: boolean;
  /** Where pods' network namespaces are bind-mounted (later containerd's key). Default `/var/run/netns`. */
  netns_mounts_under: string;
  /** Address of the streaming server (Exec, Attach, PortForward URLs). Default `127.0.0.1`. */
  stream_server_address: string;
  /** Its port, a string as in containerd; "0" (default) picks a free one. */
  stream_server_port: string;
  /** Longest container log line in bytes before it is split; <= 0: no limit. Default 16384. */
  max_container_log_line_size: number;
  containerd: {
    /** Snapshotter images are unpacked into. Default `overlayfs`. */
    snapshotter: string;
    /** The runtime of the empty handler. Default `runc`; must name a `runtimes` table. */
    default_runtime_name: string;
    /** Runtime handlers by name. Default: `runc` with `io.containerd.runc.v2`. */
    runtimes: Record<string, CriRuntimeConfig>;
  };
  cni: {
    /** Where CNI plugin binaries are. Default `/opt/cni/bin` (Debian's containerd config sets `/usr/lib/cni`). */
    bin_dir: string;
    /** Where network configs are read from. Default `/etc/cni/net.d`. */
    conf_dir: string;
    /** Network configs loaded from conf_dir, in name order. Default 1. */
    max_conf_num: number;
    /** A template a config is written from when pods get a CIDR (unused by Berth). Default ''. */
    conf_template: string;
    /** Which pod IP is reported first (`ipv4`, `ipv6`, `cni`; '' = ipv4). Default ''. */
    ip_pref: string;
    /** Berth's own key: libcni's result cache (containerd always uses `/var/lib/cni`). Default `/var/lib/cni`. */
    cache_dir: string;
  };
  registry: {
    /** Root of `<host>/hosts.toml` registry configs (mirrors, TLS, headers); '' (default): none. */
    config_path: string;
  };
}

export const CRI_DEFAULT_RUNTIME_TYPE = 'io.containerd.runc.v2';

/** containerd 1.6's defaults for the keys above. */
export function defaultCriConfig(): CriConfig {
  return {
    sandbox_image: 'registry.k8s.io/pause:3.6',
    restrict_oom_score_adj: false,
    netns_mounts_under: '/var/run/netns',
    stream_server_address: '127.0.0.1',
    stream_server_port: '0',
    max_container_log_line_size: 16384,
    containerd: {
      snapshotter: 'overlayfs',
      default_runtime_name: 'runc',
      runtimes: { runc: { runtime_type: CRI_DEFAULT_RUNTIME_TYPE, options: {}, cni_conf_dir: '', privileged_without_host_devices: false } },
    },
    cni: { bin_dir: '/opt/cni/bin', conf_dir: '/etc/cni/net.d', max_conf_num: 1, conf_template: '', ip_pref: '', cache_dir: '/var/lib/cni' },
    registry: { config_path: '' },
  };
}

type Section = Record<string, unknown>;

function table(section: Section, key: string, where: string): Section {
  const v = section[key];
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${where}${key} must be a table`);
  return v as Section;
}

function str(section: Section, key: string, fallback: string, where: string): string {
  const v = section[key] ?? fallback;
  if (typeof v !== 'string') throw new InvalidArgumentError(`${where}${key} must be a string, not ${JSON.stringify(v)}`);
  return v;
}

function int(section: Section, key: string, fallback: number, where: string): number {
  const v = section[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new InvalidArgumentError(`${where}${key} must be an integer, not ${JSON.stringify(v)}`);
  return v;
}

function bool(section: Section, key: string, fallback: boolean, where: string): boolean {
  const v = section[key] ?? fallback;
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${where}${key} must be a boolean, not ${JSON.stringify(v)}`);
  return v;
}

function absolute(path: string, key: string): string {
  if (path !== '' && !path.startsWith('/')) throw new InvalidArgumentError(`${key} must be an absolute path, not ${JSON.stringify(path)}`);
  return path;
}

/**
 * Parses and checks the plugin's section over the defaults. Checks what containerd 1.6 checks
 * (the default runtime must be configured; `registry.mirrors` and `config_path` exclude each
 * other) and the types and ranges of every key it knows. Unknown keys are left alone, as
 * containerd leaves them.
 */
export function parseCriConfig(section: Section, d: CriConfig = defaultCriConfig()): CriConfig {
  const port = str(section, 'stream_server_port', d.stream_server_port, '');
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new InvalidArgumentError(`stream_server_port must be a port number in a string, not ${JSON.stringify(port)}`);

  const c = table(section, 'containerd', '');
  const runtimesIn = table(c, 'runtimes', 'containerd.');
  // Any runtimes table replaces the default set, as in containerd 1.6.20: with only
  // `runtimes.kata` given, `runc` is gone (and the default `runc` then fails the check below).
  const runtimes: Record<string, CriRuntimeConfig> = Object.keys(runtimesIn).length > 0 ? {} : { ...d.containerd.runtimes };
  for (const name of Object.keys(runtimesIn)) {
    const where = `containerd.runtimes.${name}.`;
    const r = table(runtimesIn, name, 'containerd.runtimes.');
    const runtimeType = str(r, 'runtime_type', '', where);
    if (runtimeType === '') throw new InvalidArgumentError(`${where}runtime_type is required`);
    runtimes[name] = {
      runtime_type: runtimeType,
      options: { ...table(r, 'options', where) },
      cni_conf_dir: absolute(str(r, 'cni_conf_dir', '', where), `${where}cni_conf_dir`),
      privileged_without_host_devices: bool(r, 'privileged_without_host_devices', false, where),
    };
  }
  const defaultRuntime = str(c, 'default_runtime_name', d.containerd.default_runtime_name, 'containerd.');
  if (!(defaultRuntime in runtimes)) {
    // containerd's text, unbalanced backtick included.
    throw new InvalidArgumentError(`invalid plugin config: no corresponding runtime configured in \`containerd.runtimes\` for \`containerd\` \`default_runtime_name = "${defaultRuntime}"`, { bare: true });
  }

  const cni = table(section, 'cni', '');
  const maxConfNum = int(cni, 'max_conf_num', d.cni.max_conf_num, 'cni.');
  if (maxConfNum < 0) throw new InvalidArgumentError(`cni.max_conf_num must not be negative, not ${maxConfNum}`);
  const ipPref = str(cni, 'ip_pref', d.cni.ip_pref, 'cni.');
  if (!['', 'ipv4', 'ipv6', 'cni'].includes(ipPref)) throw new InvalidArgumentError(`cni.ip_pref must be "ipv4", "ipv6" or "cni", not ${JSON.stringify(ipPref)}`);

  const registry = table(section, 'registry', '');
  const configPath = absolute(str(registry, 'config_path', d.registry.config_path, 'registry.'), 'registry.config_path');
  if (configPath !== '' && registry.mirrors !== undefined) throw new InvalidArgumentError('`mirrors` cannot be set when `config_path` is provided');
  if (registry.mirrors !== undefined || registry.configs !== undefined || registry.auths !== undefined) {
    throw new InvalidArgumentError('registry.mirrors, registry.configs and registry.auths are not supported by Berth: use registry.config_path (hosts.toml)');
  }

  return {
    sandbox_image: str(section, 'sandbox_image', d.sandbox_image, ''),
    restrict_oom_score_adj: bool(section, 'restrict_oom_score_adj', d.restrict_oom_score_adj, ''),
    netns_mounts_under: absolute(str(section, 'netns_mounts_under', d.netns_mounts_under, ''), 'netns_mounts_under') || d.netns_mounts_under,
    stream_server_address: str(section, 'stream_server_address', d.stream_server_address, ''),
    stream_server_port: port,
    max_container_log_line_size: int(section, 'max_container_log_line_size', d.max_container_log_line_size, ''),
    containerd: {
      snapshotter: str(c, 'snapshotter', d.containerd.snapshotter, 'containerd.'),
      default_runtime_name: defaultRuntime,
      runtimes,
    },
    cni: {
      bin_dir: absolute(str(cni, 'bin_dir', d.cni.bin_dir, 'cni.'), 'cni.bin_dir'),
      conf_dir: absolute(str(cni, 'conf_dir', d.cni.conf_dir, 'cni.'), 'cni.conf_dir'),
      max_conf_num: maxConfNum,
      conf_template: str(cni, 'conf_template', d.cni.conf_template, 'cni.'),
      ip_pref: ipPref,
      cache_dir: absolute(str(cni, 'cache_dir', d.cni.cache_dir, 'cni.'), 'cni.cache_dir') || d.cni.cache_dir,
    },
    registry: { config_path: configPath },
  };
}
