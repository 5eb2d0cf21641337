import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FailedPreconditionError } from '@berth/errdefs';
import type { GrpcService } from './service';

/** A gRPC server on a unix socket, serving a few services. */
export interface UnixServer {
  readonly address: string;
  /** Stops serving (in-flight calls get 5 s, then are cancelled) and removes the socket. */
  close(): Promise<void>;
}

/**
 * Serves `services` on a unix socket (mode 0660): what a standalone server (a proxy plugin's
 * far end) needs. Refuses a socket another process serves; replaces a stale one.
 */
export async function serveUnix(services: readonly GrpcService[], address: string): Promise<UnixServer> {
  mkdirSync(dirname(address), { recursive: true, mode: 0o711 });
  if (existsSync(address)) {
    const answers = await new Promise<boolean>((resolve) => {
      const c = new grpc.Client(`unix:${address}`, grpc.credentials.createInsecure());
      c.waitForReady(Date.now() + 200, (err) => {
        c.close();
        resolve(!err);
      });
    });
    if (answers) throw new FailedPreconditionError(`address ${address} is already served by another process`);
    rmSync(address, { force: true });
  }
  const server = new grpc.Server();
  for (const svc of services) server.addService(svc.definition, svc.implementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  chmodSync(address, 0o660);
  let closing: Promise<void> | undefined;
  return {
    address,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 5_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          rmSync(address, { force: true });
          resolve();
        });
      })),
  };
}
