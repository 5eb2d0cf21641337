import { Empty, tasks as api } from '@berth/api';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, createService } from '@berth/grpc';
import { ContainerStoreToken, METADATA_PLUGIN_TYPE } from '@berth/metadata';
import { definePlugin } from '@berth/plugin';
import { RUNTIME_V2_PLUGIN_TYPE, TaskManagerToken } from '@berth/runtime';
import { TasksService, TasksServiceToken } from './tasks-service';

/** `io.containerd.service.v1 tasks-service`: the in-process tasks service. */
export const tasksServicePlugin = definePlugin<undefined, TasksService>({
  type: 'io.containerd.service.v1',
  id: 'tasks-service',
  requires: [RUNTIME_V2_PLUGIN_TYPE, METADATA_PLUGIN_TYPE],
  provides: [TasksServiceToken],
  init: (ctx) => new TasksService(ctx.get(ContainerStoreToken), ctx.get(TaskManagerToken), ctx.logger),
});

const empty = (): Empty => ({});

/** `io.containerd.grpc.v1 tasks`: containerd.services.tasks.v1.Tasks. */
export const tasksGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'tasks',
  requires: ['io.containerd.service.v1'],
  init: (ctx) => {
    const svc = ctx.get(TasksServiceToken);
    const service = createService(
      api.TasksService,
      {
        create: (req, call) => svc.create(call, req),
        start: (req, call) => svc.start(call, req),
        delete: (req, call) => svc.delete(call, req),
        deleteProcess: (req, call) => svc.deleteProcess(call, req),
        get: (req, call) => svc.get(call, req),
        list: (_req, call) => svc.list(call),
        kill: async (req, call) => (await svc.kill(call, req), empty()),
        exec: async (req, call) => (await svc.exec(call, req), empty()),
        resizePty: async (req, call) => (await svc.resizePty(call, req), empty()),
        closeIo: async (req, call) => (await svc.closeIO(call, req), empty()),
        pause: async (req, call) => (await svc.pause(call, req), empty()),
        resume: async (req, call) => (await svc.resume(call, req), empty()),
        listPids: (req, call) => svc.listPids(call, req),
        checkpoint: (req, call) => svc.checkpoint(call, req),
        update: async (req, call) => (await svc.update(call, req), empty()),
        metrics: (req, call) => svc.metrics(call, req),
        wait: (req, call) => svc.wait(call, req),
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
