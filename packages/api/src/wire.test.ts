/**
 * Wire compatibility: generated encoders and decoders checked against bytes built by hand from
 * the containerd 1.6 field numbers, so a wrong number in protos/ fails here.
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
