import { spawn } from 'node:child_process';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidArgumentError, NotImplementedError } from '@berth/errdefs';

/** Compression of a layer blob. */
export type Compression = 'gzip' | 'zstd' | 'none';

/** OCI and Docker layer media types and the compression each names ('unknown': detect). */
const LAYER_MEDIA_TYPES: Readonly<Record<string, Compression | 'unknown'>> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'unknown',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar': 'unknown',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

/**
 * Returns the compression a layer media type declares. Throws NotImplementedError (containerd's
 * "no processor for media-type") for anything that is not a layer type Berth can apply.
 */
export function compressionOfMediaType(mediaType: string): Compression | 'unknown' {
  const c = LAYER_MEDIA_TYPES[mediaType];
  if (c === undefined) throw new NotImplementedError(`failed to get stream processor for ${mediaType}: no processor for media-type`);
  return c;
}

/** Recognises gzip and zstd by their magic numbers, as containerd's DecompressStream does. */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

const ZSTD = '/usr/bin/zstd';
const CHUNK = 128 * 1024;

/**
 * Decompresses a layer stream, detecting the compression from its first bytes (so a Docker
 * layer mislabelled as uncompressed still applies). gzip runs on node's zlib off the main
 * thread; zstd is piped through `zstd -dc` (node 20 has no zstd). Stopping the iteration early
 * tears the pipeline down.
 */
export async function* decompress(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer, void, undefined> {
  const it = source[Symbol.asyncIterator]();
  try {
    yield* decompressFrom(it);
  } finally {
    // The source is read through its iterator by hand, so a consumer that stops early (or an
    // error) must hand it back: a file's read stream holds its fd until returned or read to the end.
    await it.return?.().catch(() => undefined);
  }
}

async function* decompressFrom(it: AsyncIterator<Uint8Array>): AsyncGenerator<Buffer, void, undefined> {
  const head: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    head.push(b);
    headLen += b.length;
  }
  const kind = detectCompression(Buffer.concat(head));
  async function* rest(): AsyncGenerator<Buffer> {
    for (const b of head) yield b;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  }

  if (kind === 'none') {
    yield* rest();
    return;
  }

  const input = Readable.from(rest(), { objectMode: false });
  if (kind === 'gzip') {
    const gunzip = createGunzip({ chunkSize: CHUNK });
    pipeline(input, gunzip, () => undefined); // errors surface through the iteration below
    try {
      for await (const c of gunzip) yield c as Buffer;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && code.startsWith('Z_')) throw new InvalidArgumentError(`invalid gzip layer: ${(err as Error).message}`, { cause: err });
      throw err;
    } finally {
      input.destroy();
      gunzip.destroy();
    }
    return;
  }

  const child = spawn(ZSTD, ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  exited.catch(() => undefined);
  const stderr: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  let inputError: Error | undefined;
  pipeline(input, child.stdin, (err) => {
    if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE') inputError = err;
  });
  let finished = false;
  try {
    for await (const c of child.stdout) yield c as Buffer;
    const { code, signal } = await exited;
    if (inputError) throw inputError;
    if (code !== 0) {
      throw new InvalidArgumentError(`invalid zstd layer: ${Buffer.concat(stderr).toString('utf8').trim() || `zstd exited with ${code ?? signal}`}`);
    }
    finished = true;
  } finally {
    if (!finished && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    input.destroy();
  }
}
