/**
 * @berth/metrics: Prometheus metrics as containerd serves them at `[metrics] address`
 * (`/v1/metrics`): gRPC server metrics, task metrics from cgroups, garbage collection, content
 * and snapshot totals, and the process; and the `io.containerd.monitor.v1 cgroups` plugin.
 */
export * from './cgroups';
export * from './cgroups-monitor';
export * from './task-metrics';
export * from './grpc-metrics';
export * from './daemon-metrics';
export * from './process-metrics';
export * from './metrics-server';
export * from './plugin';
export { Registry } from 'prom-client';
