/**
 * @berth/cri: Kubernetes' Container Runtime Interface for berthd, as containerd 1.6's CRI plugin
 * serves it. The plugin is in `@berth/cri/plugins`.
 */
export * from './config';
export * from './references';
export * from './image-service';
export * from './runtime-info';
export { ContainerService, type CriContainer, type ContainerState } from './container-service';
export { ContainerIO, CriLogLineSplitter, type AttachStreams } from './container-io';
export { execInTask, type ExecHandle, type ExecOptions, type ExecTasks } from './exec-process';
export { containerSpec, type ContainerSpecInput } from './container-spec';
