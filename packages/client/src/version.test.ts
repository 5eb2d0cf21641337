import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { version } from '@berth/api';
import { DataLossError, DeadlineExceededError, NotFoundError, UnavailableError } from '@berth/errdefs';
import { tempDir } from '@berth/testing';
import { daemonVersion, decodeVersionResponse } from './version';

/*
 * daemonVersion against a grpc-js server playing the daemon: the answers, the errors a server can
 * give, and a socket that appears late. (Against berthd and containerd 1.6: runtime.test.ts.)
 */
describe('daemonVersion (@berth/client/version)', () => {
  const tmp = tempDir('berth-client-version-');
  const servers: grpc.Server[] = [];

  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.tryShutdown(() => r()))));
    tmp.remove();
  });

  /** Serves Version on a new socket with `impl`; `delayMs` before it listens. */
  const serve = (name: string, impl: grpc.handleUnaryCall<unknown, version.VersionResponse>, delayMs = 0): string => {
    const socket = join(tmp.path, `${name}.sock`);
    const server = new grpc.Server();
    servers.push(server);
    server.addService(version.VersionService, { version: impl });
    setTimeout(() => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), () => undefined), delayMs);
    return socket;
  };

  it('reads version and revision', async () => {
    const socket = serve('ok', (_call, cb) => cb(null, { version: '1.2.3', revision: 'abc' }));
    await expect(daemonVersion(socket)).resolves.toEqual({ version: '1.2.3', revision: 'abc' });
  });

  it('waits for a socket that appears after the call began, as the gRPC client does', async () => {
    const socket = serve('late', (_call, cb) => cb(null, { version: 'late', revision: '' }), 400);
    await expect(daemonVersion(socket, { connectTimeout: 5000 })).resolves.toEqual({ version: 'late', revision: '' });
  });

  it("gives up on a socket nobody serves after the connect timeout, as unavailable", async () => {
    const started = Date.now();
    await expect(daemonVersion(join(tmp.path, 'none.sock'), { connectTimeout: 200 })).rejects.toThrow(UnavailableError);
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(daemonVersion(join(tmp.path, 'none.sock'), { connectTimeout: 0 })).rejects.toThrow(/connection to .*none\.sock not ready after 0 ms \(connect ENOENT .*\): unavailable$/);
  });

  it("turns the server's status into the errdefs error of its kind, message kept", async () => {
    const socket = serve('notfound', (_call, cb) => cb({ code: grpc.status.NOT_FOUND, details: 'no such thing: not found' }));
    const err = await daemonVersion(socket).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe('no such thing: not found');
  });

  it('ends a call the server never answers at the call timeout', async () => {
    const socket = serve('silent', () => undefined);
    await expect(daemonVersion(socket, { timeout: 300 })).rejects.toThrow(DeadlineExceededError);
  });

  it('decodes what the generated codec encodes, skipping fields it does not know', () => {
    const bytes = version.VersionResponse.encode({ version: 'v1.6.20', revision: 'é-rev' }).finish();
    expect(decodeVersionResponse(bytes)).toEqual({ version: 'v1.6.20', revision: 'é-rev' });
    // An unknown varint field (7), fixed64 (8), fixed32 (9) and bytes (10) around the known ones.
    const extra = Buffer.from([0x38, 0x96, 0x01, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x4d, 1, 2, 3, 4, 0x52, 2, 0x61, 0x62]);
    expect(decodeVersionResponse(Buffer.concat([extra, Buffer.from(bytes), extra]))).toEqual({ version: 'v1.6.20', revision: 'é-rev' });
    expect(decodeVersionResponse(new Uint8Array(0))).toEqual({ version: '', revision: '' });
  });

  it('refuses a truncated or malformed message as data loss, never reading past it', () => {
    const bytes = version.VersionResponse.encode({ version: 'v1.6.20', revision: 'r' }).finish();
    expect(() => decodeVersionResponse(bytes.subarray(0, 5))).toThrow(DataLossError);
    expect(() => decodeVersionResponse(Buffer.from([0x0a, 0xff]))).toThrow(DataLossError);
    expect(() => decodeVersionResponse(Buffer.from([0x0b]))).toThrow(/wire type 3/);
    expect(() => decodeVersionResponse(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(DataLossError);
  });
});
