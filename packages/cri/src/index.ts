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
export { ContainerEvents, CONTAINER_EVENT_TYPES, type ContainerEvent, type ContainerEventSink, type ContainerEventSubscription, type ContainerEventType, type ContainerEventsOptions, type PodSnapshot } from './container-events';
export { execInTask, type ExecHandle, type ExecOptions, type ExecTasks } from './exec-process';
export { containerSpec, type ContainerSpecInput } from './container-spec';
