import { NotFoundError, fromGrpcStatus, isNotFound, toGrpcStatus, wrap } from '@berth/errdefs';

const images = new Map([['docker.io/library/busybox:latest', 'sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79']]);

/** Returns the digest an image name points at; NotFound (containerd's wording) when it has none. */
export function resolve(name: string): string {
  const digest = images.get(name);
  if (digest === undefined) throw new NotFoundError(`image "${name}"`);
  return digest;
}

/**
 * What a failed lookup becomes on the wire and back: the gRPC status a server answers with (code 5,
 * NOT_FOUND, message kept), and the error a client rebuilds from it, still of kind "not found".
 */
export function acrossTheWire(name: string): { code: number; details: string; notFound: boolean; message: string } {
  try {
    resolve(name);
    throw new Error(`${name} was found`);
  } catch (err) {
    const status = toGrpcStatus(wrap(err, 'pull'));
    const back = fromGrpcStatus(status);
    return { ...status, notFound: isNotFound(back), message: back.message };
  }
}
