/**
 * @berth/gc: containerd's garbage collector over Berth's metadata database (mark and sweep in
 * one write transaction, then each backend's removal of unreferenced objects) and the
 * `io.containerd.gc.v1 scheduler` plugin with containerd's policy.
 */
export * from './labels';
export { parseDuration } from '@berth/plugin';
export { MetadataCollector, type MetadataCollectorOptions, type GcExplanation, type GcLink, type GcObject } from './collector';
export { GcScheduler, DEFAULT_POLICY, formatDuration, type SchedulerPolicy, type SchedulerStats } from './scheduler';
export { schedulerPlugin, GcSchedulerToken, GcExplainerToken, GC_PLUGIN_TYPE, type GcExplainer, type SchedulerConfig } from './plugin';
export type { CollectionStats, GarbageCollector } from '@berth/metadata';
export { GarbageCollectorToken } from '@berth/metadata';
