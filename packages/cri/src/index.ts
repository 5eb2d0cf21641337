/**
 * @berth/cri: Kubernetes' Container Runtime Interface for berthd, as containerd 1.6's CRI plugin
 * serves it. The plugin is in `@berth/cri/plugins`.
 */
export * from './config';
export * from './references';
export * from './image-service';
export * from './runtime-info';
