import type { CriConfig } from './config';
import { CniNetworkPlugin } from '@berth/cni';

/** CRI's runtime API version. */
export const CRI_VERSION = '0.1.0';
export const CRI_RUNTIME_API_VERSION = 'v1';

/** One condition of Status, in CRI's terms. */
export interface RuntimeConditionInfo {
  type: 'RuntimeReady' | 'NetworkReady';
  status: boolean;
  reason: string;
  message: string;
}

/** What Status reports. */
export interface RuntimeStatusInfo {
  conditions: RuntimeConditionInfo[];
  /** Runtime handler names: '' (the default) and each `runtimes` table, sorted. */
  handlers: string[];
  /** containerd's verbose keys (`config`, `golang`, `cniconfig`, `lastCNILoadStatus`), each a JSON text or a plain line. */
  info: Record<string, string>;
}

/**
 * Version, Status and RuntimeConfig in domain terms. The network is ready when a CNI config
 * loads from `cni.conf_dir` (read at each call, as containerd rereads the directory when it
 * changes); the runtime is always ready.
 */
export class RuntimeInfo {
  private readonly network: CniNetworkPlugin;

  constructor(
    private readonly options: {
      config: CriConfig;
      /** The runtime version Version reports (berthd's containerd API version). */
      runtimeVersion: string;
      /** The daemon's root and state (for the verbose config). */
      paths: { rootDir: string; stateDir: string; containerdRootDir: string; containerdEndpoint: string };
    },
  ) {
    const { cni } = options.config;
    this.network = new CniNetworkPlugin({ binDir: cni.bin_dir, confDir: cni.conf_dir, maxConfNum: cni.max_conf_num });
  }

  version(): { version: string; runtimeName: string; runtimeVersion: string; runtimeApiVersion: string } {
    return { version: CRI_VERSION, runtimeName: 'containerd', runtimeVersion: this.options.runtimeVersion, runtimeApiVersion: CRI_RUNTIME_API_VERSION };
  }

  async status(verbose: boolean): Promise<RuntimeStatusInfo> {
    const network = this.network.status();
    const conditions: RuntimeConditionInfo[] = [
      { type: 'RuntimeReady', status: true, reason: '', message: '' },
      { type: 'NetworkReady', status: network.ready, reason: network.reason, message: network.message },
    ];
    const c = this.options.config;
    const handlers = ['', ...Object.keys(c.containerd.runtimes).sort()];
    if (!verbose) return { conditions, handlers, info: {} };
    const info: Record<string, string> = {
      config: JSON.stringify(this.verboseConfig()),
      golang: JSON.stringify(process.version),
      cniconfig: JSON.stringify(this.network.cniConfig()),
      lastCNILoadStatus: network.lastLoadStatus,
    };
    return { conditions, handlers, info };
  }

  /** The config in containerd's JSON names, as `crictl info` shows it. */
  private verboseConfig(): Record<string, unknown> {
    const c = this.options.config;
    const runtime = (r: CriConfig['containerd']['runtimes'][string]) => ({
      runtimeType: r.runtime_type,
      options: r.options,
      cniConfDir: r.cni_conf_dir,
      privileged_without_host_devices: r.privileged_without_host_devices,
    });
    return {
      containerd: {
        snapshotter: c.containerd.snapshotter,
        defaultRuntimeName: c.containerd.default_runtime_name,
        runtimes: Object.fromEntries(Object.entries(c.containerd.runtimes).map(([n, r]) => [n, runtime(r)])),
      },
      cni: { binDir: c.cni.bin_dir, confDir: c.cni.conf_dir, maxConfNum: c.cni.max_conf_num, confTemplate: c.cni.conf_template, ipPref: c.cni.ip_pref },
      registry: { configPath: c.registry.config_path },
      streamServerAddress: c.stream_server_address,
      streamServerPort: c.stream_server_port,
      sandboxImage: c.sandbox_image,
      maxContainerLogSize: c.max_container_log_line_size,
      ...this.options.paths,
    };
  }
}
