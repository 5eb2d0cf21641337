/**
 * Wire compatibility: generated encoders and decoders checked against bytes built by hand from
 * the containerd 1.6 field numbers (and containerd 2.x's for the transfer and streaming APIs),
 * so a wrong number in protos/ fails here.
 */
import { Any } from './gen/google/protobuf/any';
import { Descriptor } from './gen/containerd/types/descriptor';
import { Mount } from './gen/containerd/types/mount';
import { Process, Status } from './gen/containerd/v1/types/task';
import { Container, UpdateContainerRequest } from './gen/containerd/services/containers/v1/containers';
import { ReadContentRequest, WriteAction, WriteContentRequest } from './gen/containerd/services/content/v1/content';
import { DiffResponse } from './gen/containerd/services/diff/v1/diff';
import { Image, UpdateImageRequest } from './gen/containerd/services/images/v1/images';
import { CreateRequest as CreateLeaseRequest } from './gen/containerd/services/leases/v1/leases';
import { Info as SnapshotInfo, Kind } from './gen/containerd/services/snapshots/v1/snapshots';
import { CreateTaskRequest } from './gen/containerd/services/tasks/v1/tasks';
import { Request as TtrpcRequest, Response as TtrpcResponse } from './gen/ttrpc/ttrpc';
import { ServerResponse } from './gen/containerd/services/introspection/v1/introspection';
import { StreamInit } from './gen/containerd/services/streaming/v1/stream_init';
import { TransferRequest } from './gen/containerd/services/transfer/v1/transfer';
import { Platform } from './gen/containerd/types/platform';
import { ContainerPath } from './gen/containerd/types/transfer/container';
import { ImageStore } from './gen/containerd/types/transfer/imagestore';
import { ImageExportStream, ImageImportStream } from './gen/containerd/types/transfer/importexport';
import { Progress } from './gen/containerd/types/transfer/progress';
import { AuthRequest, AuthResponse, AuthType, HTTPDebug, OCIRegistry, RegistryResolver } from './gen/containerd/types/transfer/registry';
import { Data, ReadStream, WindowUpdate, WriteStream } from './gen/containerd/types/transfer/streaming';
import { GO_ZERO_TIME } from './timestamp';

// --- a tiny independent protobuf writer -----------------------------------------------------

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}
const VARINT = 0;
const LEN = 2;
const key = (field: number, wireType: number): number[] => varint((field << 3) | wireType);
const int = (field: number, n: number | bigint): number[] => [...key(field, VARINT), ...varint(n)];
const bytes = (field: number, b: ArrayLike<number>): number[] => [...key(field, LEN), ...varint(b.length), ...Array.from(b)];
const str = (field: number, s: string): number[] => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field: number, ...parts: number[][]): number[] => bytes(field, parts.flat());
const mapEntry = (field: number, k: string, v: string): number[] => msg(field, str(1, k), str(2, v));
const wire = (...parts: number[][]): Uint8Array => Uint8Array.from(parts.flat());

const GO_ZERO = -62135596800n;

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

// --- tests --------------------------------------------------------------------------------------

describe('containerd.types', () => {
  it('Descriptor: annotations are field 5 and there is no field 4', () => {
    const value = Descriptor.fromPartial({ mediaType: 'm', digest: 'sha256:x', size: 3, annotations: { a: 'b' } });
    const expected = wire(str(1, 'm'), str(2, 'sha256:x'), int(3, 3), mapEntry(5, 'a', 'b'));
    expect(hex(Descriptor.encode(value).finish())).toBe(hex(expected));
    expect(Descriptor.decode(expected)).toEqual(value);
  });

  it('Descriptor: an unknown field 4 is skipped, not mistaken for annotations', () => {
    const decoded = Descriptor.decode(wire(str(2, 'sha256:x'), mapEntry(4, 'a', 'b')));
    expect(decoded).toEqual({ mediaType: '', digest: 'sha256:x', size: 0, annotations: {} });
  });

  it('Descriptor: int64 size survives values above 2^32', () => {
    const size = 2 ** 40 + 7;
    const encoded = wire(int(3, size));
    expect(hex(Descriptor.encode(Descriptor.fromPartial({ size })).finish())).toBe(hex(encoded));
    expect(Descriptor.decode(encoded).size).toBe(size);
  });

  it('Mount: repeated options are field 4', () => {
    const value = Mount.fromPartial({ type: 'overlay', source: 'overlay', options: ['index=off', 'lowerdir=/a'] });
    const expected = wire(str(1, 'overlay'), str(2, 'overlay'), str(4, 'index=off'), str(4, 'lowerdir=/a'));
    expect(hex(Mount.encode(value).finish())).toBe(hex(expected));
  });

  it('Process: status enum is field 4, exited_at Timestamp is field 10', () => {
    const value = Process.fromPartial({ id: 'c1', pid: 42, status: Status.RUNNING, exitedAt: GO_ZERO_TIME });
    const expected = wire(str(2, 'c1'), int(3, 42), int(4, 2), msg(10, int(1, GO_ZERO)));
    expect(hex(Process.encode(value).finish())).toBe(hex(expected));
    expect(Process.decode(expected).exitedAt?.toISOString()).toBe('0001-01-01T00:00:00.000Z');
  });
});

describe('images', () => {
  it('Image: created_at is field 7 and updated_at is field 8', () => {
    const created = new Date('2024-05-01T12:00:00.250Z');
    const value = Image.fromPartial({ name: 'docker.io/library/busybox:latest', createdAt: created, updatedAt: GO_ZERO_TIME });
    const expected = wire(
      str(1, 'docker.io/library/busybox:latest'),
      msg(7, int(1, Math.floor(created.getTime() / 1000)), int(2, 250_000_000)),
      msg(8, int(1, GO_ZERO)),
    );
    expect(hex(Image.encode(value).finish())).toBe(hex(expected));
    expect(Image.decode(expected)).toEqual({ ...value, labels: {} });
  });

  it('Image: a present but empty target (as ctr sends it) decodes to an empty Descriptor', () => {
    const decoded = Image.decode(wire(str(1, 'x'), bytes(3, [])));
    expect(decoded.target).toEqual({ mediaType: '', digest: '', size: 0, annotations: {} });
    expect(Image.decode(wire(str(1, 'x'))).target).toBeUndefined();
  });

  it('UpdateImageRequest: update_mask is a string[]; [] is sent as an empty FieldMask, undefined is omitted', () => {
    const withPaths = wire(msg(1, str(1, 'img')), msg(2, str(1, 'labels.a'), str(1, 'target')));
    expect(UpdateImageRequest.decode(withPaths).updateMask).toEqual(['labels.a', 'target']);
    const image = { name: 'img', labels: {} };
    expect(hex(UpdateImageRequest.encode({ image, updateMask: [] }).finish())).toBe(hex(wire(msg(1, str(1, 'img')), bytes(2, []))));
    expect(hex(UpdateImageRequest.encode({ image }).finish())).toBe(hex(wire(msg(1, str(1, 'img')))));
  });
});

describe('content', () => {
  it('WriteContentRequest: STAT (0) is omitted from the wire', () => {
    const value = WriteContentRequest.fromPartial({ action: WriteAction.STAT, ref: 'r', total: 10 });
    const expected = wire(str(2, 'r'), int(3, 10));
    expect(hex(WriteContentRequest.encode(value).finish())).toBe(hex(expected));
    expect(WriteContentRequest.decode(expected).action).toBe(WriteAction.STAT);
  });

  it('WriteContentRequest: WRITE with data and COMMIT with labels', () => {
    const write = WriteContentRequest.fromPartial({ action: WriteAction.WRITE, offset: 5, data: Buffer.from('abc') });
    const writeBytes = wire(int(1, 1), int(5, 5), bytes(6, Buffer.from('abc')));
    expect(hex(WriteContentRequest.encode(write).finish())).toBe(hex(writeBytes));
    const decoded = WriteContentRequest.decode(writeBytes);
    expect(Buffer.isBuffer(decoded.data)).toBe(true);
    expect(decoded.data.toString()).toBe('abc');

    const commit = WriteContentRequest.fromPartial({ action: WriteAction.COMMIT, expected: 'sha256:e', labels: { k: 'v' } });
    const commitBytes = wire(int(1, 2), str(4, 'sha256:e'), mapEntry(7, 'k', 'v'));
    expect(hex(WriteContentRequest.encode(commit).finish())).toBe(hex(commitBytes));
  });

  it('ReadContentRequest: negative int64 offsets use ten-byte varints', () => {
    const encoded = wire(str(1, 'sha256:x'), int(2, -1));
    expect(encoded.length).toBe(1 + 1 + 8 + 1 + 10);
    expect(ReadContentRequest.decode(encoded).offset).toBe(-1);
    expect(hex(ReadContentRequest.encode(ReadContentRequest.fromPartial({ digest: 'sha256:x', offset: -1 })).finish())).toBe(hex(encoded));
  });
});

describe('containers', () => {
  it('Container: runtime options Any, JSON spec Any and the extensions map', () => {
    const spec = Buffer.from('{"ociVersion":"1.0.2"}');
    const value = Container.fromPartial({
      id: 'c1',
      runtime: { name: 'io.containerd.runc.v2', options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } },
      spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: spec },
      snapshotter: 'overlayfs',
      snapshotKey: 'c1',
      extensions: { ext: { typeUrl: 'x.Y', value: Buffer.from([1]) } },
    });
    const expected = wire(
      str(1, 'c1'),
      msg(4, str(1, 'io.containerd.runc.v2'), msg(2, str(1, 'containerd.runc.v1.Options'))),
      msg(5, str(1, 'types.containerd.io/opencontainers/runtime-spec/1/Spec'), bytes(2, spec)),
      str(6, 'overlayfs'),
      str(7, 'c1'),
      msg(10, str(1, 'ext'), msg(2, str(1, 'x.Y'), bytes(2, [1]))),
    );
    expect(hex(Container.encode(value).finish())).toBe(hex(expected));
    expect(Container.decode(expected)).toEqual(value);
  });

  it('UpdateContainerRequest: update_mask is field 2', () => {
    const encoded = wire(msg(1, str(1, 'c1')), msg(2, str(1, 'labels.k')));
    expect(UpdateContainerRequest.decode(encoded).updateMask).toEqual(['labels.k']);
  });
});

describe('odd field numbers', () => {
  it('DiffResponse: diff is field 3', () => {
    const encoded = wire(msg(3, str(2, 'sha256:d')));
    expect(DiffResponse.decode(encoded).diff?.digest).toBe('sha256:d');
    expect(hex(DiffResponse.encode(DiffResponse.fromPartial({ diff: { digest: 'sha256:d' } })).finish())).toBe(hex(encoded));
  });

  it('leases CreateRequest: labels are field 3', () => {
    const encoded = wire(str(1, 'l1'), mapEntry(3, 'containerd.io/gc.expire', '2030-01-01T00:00:00Z'));
    const value = CreateLeaseRequest.fromPartial({ id: 'l1', labels: { 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' } });
    expect(hex(CreateLeaseRequest.encode(value).finish())).toBe(hex(encoded));
    expect(CreateLeaseRequest.decode(encoded)).toEqual(value);
  });

  it('tasks CreateTaskRequest: no field 2; rootfs 3, checkpoint 8, options 9, runtime_path 10', () => {
    const value = CreateTaskRequest.fromPartial({
      containerId: 'c1',
      rootfs: [{ type: 'bind', source: '/s', options: ['rbind'] }],
      stdout: '/fifo/out',
      terminal: true,
      checkpoint: { mediaType: 'm', digest: 'sha256:c', size: 1 },
      options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) },
      runtimePath: '/bin/shim',
    });
    const expected = wire(
      str(1, 'c1'),
      msg(3, str(1, 'bind'), str(2, '/s'), str(4, 'rbind')),
      str(5, '/fifo/out'),
      int(7, 1),
      msg(8, str(1, 'm'), str(2, 'sha256:c'), int(3, 1)),
      msg(9, str(1, 'containerd.runc.v1.Options')),
      str(10, '/bin/shim'),
    );
    expect(hex(CreateTaskRequest.encode(value).finish())).toBe(hex(expected));
    expect(CreateTaskRequest.decode(expected)).toEqual(value);
  });

  it('snapshots Info: an enum value unknown to us is kept as its number', () => {
    expect(SnapshotInfo.decode(wire(str(1, 'k'), int(3, 9))).kind).toBe(9);
    expect(SnapshotInfo.decode(wire(str(1, 'k'), int(3, 3))).kind).toBe(Kind.COMMITTED);
  });
});

describe('ttrpc framing payloads', () => {
  it('Request: service 1, method 2, payload 3, timeout_nano 4, metadata 5', () => {
    const value = TtrpcRequest.fromPartial({
      service: 'containerd.task.v2.Task',
      method: 'State',
      payload: Buffer.from([0x0a, 0x01, 0x78]),
      timeoutNano: 5_000_000_000,
      metadata: [{ key: 'containerd-namespace-ttrpc', value: 'default' }],
    });
    const expected = wire(
      str(1, 'containerd.task.v2.Task'),
      str(2, 'State'),
      bytes(3, [0x0a, 0x01, 0x78]),
      int(4, 5_000_000_000),
      mapEntry(5, 'containerd-namespace-ttrpc', 'default'),
    );
    expect(hex(TtrpcRequest.encode(value).finish())).toBe(hex(expected));
    expect(TtrpcRequest.decode(expected)).toEqual(value);
  });

  it('Response: google.rpc.Status is field 1, payload field 2', () => {
    const detail: Any = { typeUrl: 'x.Y', value: Buffer.from([7]) };
    const value = TtrpcResponse.fromPartial({ status: { code: 5, message: 'not found', details: [detail] } });
    const expected = wire(msg(1, int(1, 5), str(2, 'not found'), msg(3, str(1, 'x.Y'), bytes(2, [7]))));
    expect(hex(TtrpcResponse.encode(value).finish())).toBe(hex(expected));
    expect(TtrpcResponse.decode(expected)).toEqual(value);
  });
});

describe('containerd 2.x additions to shared messages', () => {
  it('Platform: os_version is field 4, os_features (repeated) field 5', () => {
    const value = Platform.fromPartial({ os: 'windows', architecture: 'amd64', osVersion: '10.0.20348.1', osFeatures: ['win32k', 'x'] });
    const expected = wire(str(1, 'windows'), str(2, 'amd64'), str(4, '10.0.20348.1'), str(5, 'win32k'), str(5, 'x'));
    expect(hex(Platform.encode(value).finish())).toBe(hex(expected));
    expect(Platform.decode(expected)).toEqual({ ...value, variant: '' });
  });

  it('Platform: a 1.6 platform encodes exactly as before', () => {
    // 0a 05 "linux" 12 05 "amd64"
    expect(hex(Platform.encode(Platform.fromPartial({ os: 'linux', architecture: 'amd64' })).finish())).toBe('0a056c696e75781205616d643634');
  });

  it('introspection ServerResponse: uuid 1, pid 2, pidns 3, deprecations 4 {id 1, message 2, last_occurrence 3}', () => {
    const at = new Date('2025-01-02T03:04:05Z');
    const value = ServerResponse.fromPartial({
      uuid: 'u',
      pid: 300,
      pidns: 4026531836,
      deprecations: [{ id: 'io.containerd.deprecation/x', message: 'm', lastOccurrence: at }],
    });
    const expected = wire(
      str(1, 'u'),
      int(2, 300),
      int(3, 4026531836),
      msg(4, str(1, 'io.containerd.deprecation/x'), str(2, 'm'), msg(3, int(1, at.getTime() / 1000))),
    );
    expect(hex(ServerResponse.encode(value).finish())).toBe(hex(expected));
    expect(ServerResponse.decode(expected)).toEqual(value);
    // pid 300 is the two-byte varint ac 02.
    expect(hex(wire(int(2, 300)))).toBe('10ac02');
  });

  it('introspection ServerResponse: a 1.6 reply (uuid only) decodes with zero 2.x fields, and those encode to nothing', () => {
    const onlyUuid = wire(str(1, 'u'));
    expect(ServerResponse.decode(onlyUuid)).toEqual({ uuid: 'u', pid: 0, pidns: 0, deprecations: [] });
    expect(hex(ServerResponse.encode({ uuid: 'u', pid: 0, pidns: 0, deprecations: [] }).finish())).toBe('0a0175');
  });
});

describe('containerd 2.x transfer service', () => {
  it('TransferRequest: source 1, destination 2 (Anys with bare type URLs), options 3 {progress_stream 1}', () => {
    const source = { typeUrl: 'containerd.types.transfer.OCIRegistry', value: Buffer.from(OCIRegistry.encode(OCIRegistry.fromPartial({ reference: 'r' })).finish()) };
    const destination = { typeUrl: 'containerd.types.transfer.ImageStore', value: Buffer.from(ImageStore.encode(ImageStore.fromPartial({ name: 'n' })).finish()) };
    const value = TransferRequest.fromPartial({ source, destination, options: { progressStream: 'progress-1' } });
    const expected = wire(
      msg(1, str(1, 'containerd.types.transfer.OCIRegistry'), msg(2, str(1, 'r'))),
      msg(2, str(1, 'containerd.types.transfer.ImageStore'), msg(2, str(1, 'n'))),
      msg(3, str(1, 'progress-1')),
    );
    expect(hex(TransferRequest.encode(value).finish())).toBe(hex(expected));
    expect(TransferRequest.decode(expected)).toEqual(value);
  });

  it('TransferRequest: options with only progress_stream "p" is 1a 03 0a 01 70; empty options (as ctr tag sends) is 1a 00', () => {
    expect(hex(TransferRequest.encode(TransferRequest.fromPartial({ options: { progressStream: 'p' } })).finish())).toBe('1a030a0170');
    expect(hex(TransferRequest.encode(TransferRequest.fromPartial({ options: {} })).finish())).toBe('1a00');
    expect(TransferRequest.decode(Buffer.from('1a00', 'hex')).options).toEqual({ progressStream: '' });
  });
});

describe('containerd.types.transfer', () => {
  it('OCIRegistry and RegistryResolver: auth_stream 1, headers 2, host_dir 3, default_scheme 4, http_debug 5, logs_stream 6', () => {
    const value = OCIRegistry.fromPartial({
      reference: '127.0.0.1:5000/test/busybox:1',
      resolver: {
        authStream: 'creds-1',
        headers: { 'X-A': 'b' },
        hostDir: '/etc/containerd/certs.d',
        defaultScheme: 'http',
        httpDebug: HTTPDebug.TRACE,
        logsStream: 'http-debug-logs-1',
      },
    });
    const expected = wire(
      str(1, '127.0.0.1:5000/test/busybox:1'),
      msg(
        2,
        str(1, 'creds-1'),
        mapEntry(2, 'X-A', 'b'),
        str(3, '/etc/containerd/certs.d'),
        str(4, 'http'),
        int(5, 2),
        str(6, 'http-debug-logs-1'),
      ),
    );
    expect(hex(OCIRegistry.encode(value).finish())).toBe(hex(expected));
    expect(OCIRegistry.decode(expected)).toEqual(value);
  });

  it.each([
    ['DISABLED', HTTPDebug.DISABLED, 0],
    ['DEBUG', HTTPDebug.DEBUG, 1],
    ['TRACE', HTTPDebug.TRACE, 2],
    ['BOTH', HTTPDebug.BOTH, 3],
  ])('HTTPDebug.%s is %d', (_name, value, number) => {
    expect(value).toBe(number);
    expect(RegistryResolver.decode(wire(int(5, number))).httpDebug).toBe(value);
  });

  it.each([
    ['NONE', AuthType.NONE, 0],
    ['CREDENTIALS', AuthType.CREDENTIALS, 1],
    ['REFRESH', AuthType.REFRESH, 2],
    ['HEADER', AuthType.HEADER, 3],
  ])('AuthType.%s is %d', (_name, value, number) => {
    expect(value).toBe(number);
    expect(AuthResponse.decode(wire(int(1, number))).authType).toBe(value);
  });

  it('AuthResponse: authType enum 1, secret 2, username 3, expire_at 4', () => {
    // REFRESH with an empty secret (ctr's anonymous answer) is the two bytes 08 02.
    expect(hex(AuthResponse.encode(AuthResponse.fromPartial({ authType: AuthType.REFRESH })).finish())).toBe('0802');
    // CREDENTIALS u/p: 08 01, 12 01 "p", 1a 01 "u".
    const creds = Buffer.from('08011201701a0175', 'hex');
    expect(AuthResponse.decode(creds)).toEqual({ authType: AuthType.CREDENTIALS, secret: 'p', username: 'u', expireAt: undefined });
    const expireAt = new Date('2030-01-01T00:00:00Z');
    const value = AuthResponse.fromPartial({ authType: AuthType.HEADER, secret: 'Bearer x', expireAt });
    const expected = wire(int(1, 3), str(2, 'Bearer x'), msg(4, int(1, expireAt.getTime() / 1000)));
    expect(hex(AuthResponse.encode(value).finish())).toBe(hex(expected));
  });

  it('AuthRequest: host 1, reference 2, wwwauthenticate 3 (repeated)', () => {
    const value = AuthRequest.fromPartial({ host: 'h', reference: 'r', wwwauthenticate: ['Bearer a', 'Basic b'] });
    const expected = wire(str(1, 'h'), str(2, 'r'), str(3, 'Bearer a'), str(3, 'Basic b'));
    expect(hex(AuthRequest.encode(value).finish())).toBe(hex(expected));
    expect(AuthRequest.decode(expected)).toEqual(value);
  });

  it('ImageStore: fields 1-6, and unpacks is field 10 (7-9 unused)', () => {
    const linux = { os: 'linux', architecture: 'amd64' };
    const value = ImageStore.fromPartial({
      name: 'docker.io/library/busybox:1',
      labels: { k: 'v' },
      platforms: [linux],
      allMetadata: true,
      manifestLimit: 1,
      extraReferences: [{ name: 'import-2025-01-02', isPrefix: true, allowOverwrite: true, addDigest: true, skipNamedDigest: true }],
      unpacks: [{ platform: linux, snapshotter: 'overlayfs' }],
    });
    const platform = [str(1, 'linux'), str(2, 'amd64')];
    const expected = wire(
      str(1, 'docker.io/library/busybox:1'),
      mapEntry(2, 'k', 'v'),
      msg(3, ...platform),
      int(4, 1),
      int(5, 1),
      msg(6, str(1, 'import-2025-01-02'), int(2, 1), int(3, 1), int(4, 1), int(5, 1)),
      msg(10, msg(1, ...platform), str(2, 'overlayfs')),
    );
    expect(hex(ImageStore.encode(value).finish())).toBe(hex(expected));
    expect(ImageStore.decode(expected)).toEqual(ImageStore.fromPartial(value));
    // unpacks: key (10 << 3 | 2) = 0x52.
    expect(hex(ImageStore.encode(ImageStore.fromPartial({ unpacks: [{}] })).finish())).toBe('5200');
  });

  it('ImageImportStream: stream 1, media_type 2, force_compress 3', () => {
    const value = ImageImportStream.fromPartial({ stream: 'import-1', mediaType: 'application/x-tar', forceCompress: true });
    const expected = wire(str(1, 'import-1'), str(2, 'application/x-tar'), int(3, 1));
    expect(hex(ImageImportStream.encode(value).finish())).toBe(hex(expected));
    expect(ImageImportStream.decode(expected)).toEqual(value);
  });

  it('ImageExportStream: stream 1, media_type 2, platforms 3, all_platforms 4, skip_compatibility_manifest 5, skip_non_distributable 6', () => {
    const value = ImageExportStream.fromPartial({
      stream: 'export-1',
      mediaType: 'm',
      platforms: [{ os: 'linux', architecture: 'arm', variant: 'v7' }],
      allPlatforms: true,
      skipCompatibilityManifest: true,
      skipNonDistributable: true,
    });
    const expected = wire(
      str(1, 'export-1'),
      str(2, 'm'),
      msg(3, str(1, 'linux'), str(2, 'arm'), str(3, 'v7')),
      int(4, 1),
      int(5, 1),
      int(6, 1),
    );
    expect(hex(ImageExportStream.encode(value).finish())).toBe(hex(expected));
    expect(ImageExportStream.decode(expected)).toEqual(ImageExportStream.fromPartial(value));
  });

  it('Progress: event 1, name 2, parents 3, progress 4, total 5 (int64), desc 6 (Descriptor)', () => {
    const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:ab', size: 2 ** 33, annotations: {} };
    const value = Progress.fromPartial({
      event: 'downloading',
      name: 'layer-sha256:ab',
      parents: ['manifest-sha256:cd'],
      progress: 32768,
      total: 2 ** 33,
      desc,
    });
    const expected = wire(
      str(1, 'downloading'),
      str(2, 'layer-sha256:ab'),
      str(3, 'manifest-sha256:cd'),
      int(4, 32768),
      int(5, 2 ** 33),
      msg(6, str(1, desc.mediaType), str(2, 'sha256:ab'), int(3, 2 ** 33)),
    );
    expect(hex(Progress.encode(value).finish())).toBe(hex(expected));
    expect(Progress.decode(expected)).toEqual(value);
    // A status line with only desc.size 1: 32 02 18 01.
    expect(hex(Progress.encode(Progress.fromPartial({ desc: { size: 1 } })).finish())).toBe('32021801');
  });

  it('Data: bytes field 1; WindowUpdate: int32 field 1 (65536 is 80 80 04)', () => {
    const data = Data.fromPartial({ data: Buffer.from('tar') });
    expect(hex(Data.encode(data).finish())).toBe(hex(wire(bytes(1, Buffer.from('tar')))));
    expect(Buffer.isBuffer(Data.decode(wire(bytes(1, [1, 2]))).data)).toBe(true);
    expect(hex(WindowUpdate.encode({ update: 65536 }).finish())).toBe('08808004');
    expect(WindowUpdate.decode(Buffer.from('08808004', 'hex')).update).toBe(65536);
  });

  it('ReadStream, WriteStream: stream 1, media_type 2; ContainerPath: container_id 1, path 2, no_walk 3, preserve_ownership 4', () => {
    for (const type of [ReadStream, WriteStream]) {
      const expected = wire(str(1, 's'), str(2, 'm'));
      expect(hex(type.encode({ stream: 's', mediaType: 'm' }).finish())).toBe(hex(expected));
    }
    const path = ContainerPath.fromPartial({ containerId: 'c1', path: '/etc', noWalk: true, preserveOwnership: true });
    const expected = wire(str(1, 'c1'), str(2, '/etc'), int(3, 1), int(4, 1));
    expect(hex(ContainerPath.encode(path).finish())).toBe(hex(expected));
    expect(ContainerPath.decode(expected)).toEqual(path);
  });
});

describe('containerd 2.x streaming', () => {
  it('StreamInit: id is field 1', () => {
    expect(hex(StreamInit.encode({ id: 'x' }).finish())).toBe('0a0178');
    expect(StreamInit.decode(Buffer.from('0a0178', 'hex'))).toEqual({ id: 'x' });
  });

  it('the ack frame: an Any of google.protobuf.Empty with no value is just its type URL', () => {
    const ack: Any = { typeUrl: 'google.protobuf.Empty', value: Buffer.alloc(0) };
    expect(hex(Any.encode(ack).finish())).toBe(hex(wire(str(1, 'google.protobuf.Empty'))));
  });
});
