/** @berth/tasks: the tasks service (containerd.services.tasks.v1) over the runtime v2 task manager. */
export * from './tasks-service';
