import { ContainerCreate, ContainerDelete, ContainerUpdate, MessageType } from '@berth/api/events';
import { Context } from '@berth/context';
import { FailedPreconditionError, InvalidArgumentError } from '@berth/errdefs';
import type { Publisher } from '@berth/events';
import type { Logger } from '@berth/log';
import { Container, ContainerInput, ContainerStore } from '@berth/metadata';
import { token } from '@berth/plugin';
import type { TaskManager } from '@berth/runtime';

/**
 * The in-process containers service: the container store, containerd's request checks, and the
 * events (/containers/create, /containers/update, /containers/delete), published after each
 * change commits. Containers are metadata only; deleting one leaves its snapshot to the caller.
 */
export class ContainersService {
  constructor(
    private readonly store: ContainerStore,
    private readonly publisher: Publisher,
    private readonly logger: Logger,
    /** The runtimes whose tasks keep a container from being deleted. */
    private readonly runtimes: readonly Pick<TaskManager, 'get'>[] = [],
  ) {}

  /** Publishes after a committed change; a failure to publish is logged, never returned. */
  private async publish<T>(ctx: Context, topic: string, type: MessageType<T>, event: T): Promise<void> {
    try {
      await this.publisher.publish(ctx, topic, type, event);
    } catch (err) {
      this.logger.warn('failed to publish event', { topic, error: (err as Error).message });
    }
  }

  /** Returns a container; NotFound `container "<id>" in namespace "<ns>"`. */
  get(ctx: Context, id: string): Promise<Container> {
    return this.store.get(ctx, id);
  }

  /** Returns the containers matching any of the filters, by id. */
  list(ctx: Context, filters: readonly string[] = []): Promise<Container[]> {
    return this.store.list(ctx, filters);
  }

  /** Creates a container and publishes /containers/create. */
  async create(ctx: Context, container: ContainerInput): Promise<Container> {
    const created = await this.store.create(ctx, container);
    await this.publish(ctx, '/containers/create', ContainerCreate, {
      id: created.id,
      image: created.image,
      runtime: { name: created.runtime.name, options: created.runtime.options },
    });
    return created;
  }

  /** Updates the masked fields (see `ContainerStore.update`) and publishes /containers/update. */
  async update(ctx: Context, container: ContainerInput, fieldpaths: readonly string[] = []): Promise<Container> {
    if (container.id === '') throw new InvalidArgumentError('Container.ID required', { bare: true });
    const updated = await this.store.update(ctx, container, fieldpaths);
    await this.publish(ctx, '/containers/update', ContainerUpdate, {
      id: updated.id,
      image: updated.image,
      labels: updated.labels,
      snapshotKey: updated.snapshotKey,
    });
    return updated;
  }

  /**
   * Deletes a container and publishes /containers/delete; FailedPrecondition while the container
   * has a task (containerd's client refuses with the same message).
   */
  async delete(ctx: Context, id: string): Promise<void> {
    for (const runtime of this.runtimes) {
      let running = false;
      try {
        runtime.get(ctx, id);
        running = true;
      } catch {
        /* no task */
      }
      if (running) throw new FailedPreconditionError(`cannot delete running task ${id}`);
    }
    await this.store.delete(ctx, id);
    await this.publish(ctx, '/containers/delete', ContainerDelete, { id });
  }
}

export const ContainersServiceToken = token<ContainersService>('io.containerd.service.v1/containers');
