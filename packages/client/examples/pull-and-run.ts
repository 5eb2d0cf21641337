import { PassThrough } from 'node:stream';
import { connect } from '@berth/client';

/**
 * Pulls `reference` from a plain-HTTP registry with progress, runs `echo hello` in it and
 * returns the progress lines, the output and the exit code. Everything it makes is removed.
 */
export async function pullAndRun(address: string, reference: string): Promise<{ progress: string[]; output: string; code: number }> {
  const client = await connect({ address, namespace: 'example' });
  try {
    const progress: string[] = [];
    const pull = client.pull(reference, { plainHttp: true });
    for await (const event of pull) {
      if (event.type === 'blob' && event.state === 'extracted') progress.push(`layer ${event.digest.slice(7, 19)} extracted`);
      if (event.type === 'saved') progress.push(`saved ${event.image}`);
    }
    await pull.done;

    const container = await client.containers.create('hello', reference, { args: ['echo', 'hello'] });
    try {
      const stdout = new PassThrough();
      let output = '';
      stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const task = await container.newTask({ stdout });
      const exited = task.wait();
      await task.start();
      const { code } = await exited;
      await task.delete();
      return { progress, output, code };
    } finally {
      await container.delete();
    }
  } finally {
    client.close();
  }
}
