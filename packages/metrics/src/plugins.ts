/**
 * The `io.containerd.monitor.v1 cgroups` plugin without the Prometheus side: a daemon that lists
 * it loads prom-client only when it serves metrics (the plugin's `registerMetrics` loads it).
 */
export { CgroupsMonitorToken, MONITOR_PLUGIN_TYPE, cgroupsMonitorPlugin, type CgroupsMonitorConfig, type CgroupsMonitorPlugin, type MetricsContributor } from './plugin';
