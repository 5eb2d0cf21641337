import { connect } from '@berth/client';

/**
 * Runs `sh -c 'exit 3'` from `image` (already pulled into the `example` namespace) while
 * watching the namespace's task events; returns the topics seen for the container and its
 * exit code.
 */
export async function eventsOfARun(address: string, image: string): Promise<{ topics: string[]; code: number }> {
  const client = await connect({ address, namespace: 'example' });
  const stop = new AbortController();
  try {
    const topics: string[] = [];
    let deleted!: () => void;
    const sawDelete = new Promise<void>((resolve) => (deleted = resolve));
    const watching = (async () => {
      for await (const e of client.events(['namespace==example', 'topic~="^/tasks/"'], { signal: stop.signal })) {
        if (e.event?.containerId !== 'exit3') continue;
        topics.push(e.topic);
        if (e.topic === '/tasks/delete') deleted();
      }
    })();
    // Give the daemon a moment to register the subscription before anything happens.
    await new Promise((resolve) => setTimeout(resolve, 300));

    const container = await client.containers.create('exit3', image, { args: ['sh', '-c', 'exit 3'] });
    let code: number;
    try {
      const task = await container.newTask();
      const exited = task.wait();
      await task.start();
      code = (await exited).code;
      await task.delete();
    } finally {
      await container.delete();
    }
    const timer = setTimeout(deleted, 10_000);
    await sawDelete;
    clearTimeout(timer);
    stop.abort();
    await watching;
    return { topics, code };
  } finally {
    stop.abort();
    client.close();
  }
}
