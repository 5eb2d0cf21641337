import { join } from 'node:path';
import { version } from '@berth/api';
import { NotFoundError } from '@berth/errdefs';
import { createClient, createService, serveUnix } from '@berth/grpc';
import { nullLogger } from '@berth/log';

/**
 * Serves containerd's Version service on a unix socket in `dir` and calls it twice through a
 * client: once answered, once failing inside the handler. The client sees the failure as the same
 * kind of Berth error (NotFound), mapped to a gRPC status and back on the way.
 */
export async function askVersion(dir: string): Promise<{ version: string; failure: string }> {
  let calls = 0;
  const service = createService(
    version.VersionService,
    {
      version: async () => {
        if (++calls > 1) throw new NotFoundError('version of a second call');
        return { version: '1.6.20-example', revision: 'abc123' };
      },
    },
    nullLogger,
  );
  const server = await serveUnix([service], join(dir, 'example.sock'));
  const client = createClient(version.VersionService, server.address);
  try {
    const answer = await client.version({});
    const failure = await client.version({}).then(
      () => 'no error',
      (err: Error) => `${err.constructor.name}: ${err.message}`,
    );
    return { version: answer.version, failure };
  } finally {
    client.close();
    await server.close();
  }
}
