import { isInvalidArgument, isAlreadyExists } from '@berth/errdefs';
import * as events from './barrels/events';
import * as transferTypes from './barrels/transfer-types';
import { StreamInit } from './gen/containerd/services/streaming/v1/stream_init';
import { Empty } from './gen/google/protobuf/empty';
import * as imageEvents from './gen/containerd/services/images/v1/image_events';
import { CheckpointOptions, Options, ProcessDetails } from './gen/containerd/runc/v1/options';
import { Descriptor } from './gen/containerd/types/descriptor';
import { TaskCreate, TaskExit } from './gen/containerd/events/task';
import { Envelope } from './gen/containerd/services/events/v1/envelope';
import { GO_ZERO_TIME } from './timestamp';
import {
  RUNTIME_SPEC_TYPE_URLS,
  isKnownTypeUrl,
  normalizeTypeUrl,
  packAny,
  packJsonAny,
  registerMessageType,
  typeUrlOf,
  unpackAny,
  unpackAnyAs,
  unpackJsonAny,
} from './typeurl';

/** Top-level message constants of a generated module (skips enums, nested and map-entry types). */
function messagesOf(mod: Record<string, unknown>): Array<[string, unknown]> {
  return Object.entries(mod).filter(
    ([name, v]) => !name.includes('_') && typeof v === 'object' && v !== null && 'encode' in v,
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('typeurl registry', () => {
  const registered: Array<[string, unknown]> = [
    ...messagesOf(events).map(([name, type]): [string, unknown] => [`containerd.events.${name}`, type]),
    ...messagesOf(imageEvents).map(([name, type]): [string, unknown] => [`containerd.services.images.v1.${name}`, type]),
    ['containerd.runc.v1.Options', Options],
    ['containerd.runc.v1.CheckpointOptions', CheckpointOptions],
    ['containerd.runc.v1.ProcessDetails', ProcessDetails],
    ...messagesOf(transferTypes).map(([name, type]): [string, unknown] => [`containerd.types.transfer.${name}`, type]),
    ['containerd.services.streaming.v1.StreamInit', StreamInit],
    ['google.protobuf.Empty', Empty],
  ];

  it.each(registered)('registers %s under its bare proto name', (url, type) => {
    expect(typeUrlOf(type as typeof Options)).toBe(url);
    expect(isKnownTypeUrl(url)).toBe(true);
  });

  it('covers all 20 containerd.events payloads and the 3 image events', () => {
    expect(messagesOf(events).filter(([n]) => n !== 'TaskIO')).toHaveLength(20);
    expect(messagesOf(imageEvents)).toHaveLength(3);
  });

  it('covers all 15 containerd.types.transfer messages', () => {
    expect(messagesOf(transferTypes).map(([name]) => name).sort()).toEqual([
      'AuthRequest', 'AuthResponse', 'ContainerPath', 'Data', 'ImageExportStream', 'ImageImportStream',
      'ImageReference', 'ImageStore', 'OCIRegistry', 'Progress', 'ReadStream', 'RegistryResolver',
      'UnpackConfiguration', 'WindowUpdate', 'WriteStream',
    ]);
  });

  it('packs transfer objects with the bare names containerd\'s transfer service matches exactly', () => {
    const source = packAny(transferTypes.OCIRegistry, { reference: 'docker.io/library/busybox:1', resolver: { defaultScheme: 'http' } });
    expect(source.typeUrl).toBe('containerd.types.transfer.OCIRegistry');
    expect(unpackAnyAs(source, transferTypes.OCIRegistry).resolver?.defaultScheme).toBe('http');
    const progress = packAny(transferTypes.Progress, { event: 'saved', name: 'n', desc: { digest: 'sha256:x' } });
    expect(unpackAny(progress)).toEqual(transferTypes.Progress.fromPartial({ event: 'saved', name: 'n', desc: { digest: 'sha256:x' } }));
  });

  it('packs the stream handshake: StreamInit, and the ack as an Any of Empty with an empty value', () => {
    expect(packAny(StreamInit, { id: 'progress-1' })).toEqual({ typeUrl: 'containerd.services.streaming.v1.StreamInit', value: Buffer.from('0a0a70726f67726573732d31', 'hex') });
    expect(packAny(Empty, {})).toEqual({ typeUrl: 'google.protobuf.Empty', value: Buffer.alloc(0) });
    expect(unpackAny({ typeUrl: 'google.protobuf.Empty', value: Buffer.alloc(0) })).toEqual({});
  });

  it('packs with a bare type URL and round-trips', () => {
    const exitedAt = new Date('2024-05-01T12:00:00Z');
    const any = packAny(TaskExit, { containerId: 'c1', id: 'c1', pid: 7, exitStatus: 137, exitedAt });
    expect(any.typeUrl).toBe('containerd.events.TaskExit');
    expect(Buffer.isBuffer(any.value)).toBe(true);
    expect(unpackAny(any)).toEqual({ containerId: 'c1', id: 'c1', pid: 7, exitStatus: 137, exitedAt });
    expect(unpackAnyAs(any, TaskExit).exitStatus).toBe(137);
  });

  it('fills missing fields with proto3 defaults, nested ones included', () => {
    const any = packAny(TaskCreate, { containerId: 'c1', rootfs: [{ type: 'bind' }], io: { stdout: '/o' } });
    expect(unpackAnyAs(any, TaskCreate)).toEqual({
      containerId: 'c1',
      bundle: '',
      rootfs: [{ type: 'bind', source: '', target: '', options: [] }],
      io: { stdin: '', stdout: '/o', stderr: '', terminal: false },
      checkpoint: '',
      pid: 0,
    });
  });

  it('decodes ctr\'s empty runc Options Any to defaults', () => {
    const options = unpackAny({ typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) });
    expect(options).toEqual(Options.fromPartial({}));
  });

  it('accepts a type.googleapis.com/ prefix on input only', () => {
    const any = packAny(ProcessDetails, { execId: 'e1' });
    const prefixed = { ...any, typeUrl: `type.googleapis.com/${any.typeUrl}` };
    expect(normalizeTypeUrl(prefixed.typeUrl)).toBe('containerd.runc.v1.ProcessDetails');
    expect(isKnownTypeUrl(prefixed.typeUrl)).toBe(true);
    expect(unpackAny(prefixed)).toEqual({ execId: 'e1' });
    expect(unpackAnyAs(prefixed, ProcessDetails)).toEqual({ execId: 'e1' });
  });

  it('wraps an event in an Envelope the way the exchange does', () => {
    const envelope = Envelope.fromPartial({
      timestamp: new Date('2024-05-01T12:00:00Z'),
      namespace: 'default',
      topic: '/tasks/exit',
      event: packAny(TaskExit, { containerId: 'c1', exitedAt: GO_ZERO_TIME }),
    });
    const decoded = Envelope.decode(Envelope.encode(envelope).finish());
    expect(decoded.event?.typeUrl).toBe('containerd.events.TaskExit');
    expect(unpackAnyAs(decoded.event!, TaskExit).containerId).toBe('c1');
  });

  it.each([
    ['an unknown type URL', () => unpackAny({ typeUrl: 'io.containerd.example.v1.Unknown', value: Buffer.alloc(0) }), /unknown type url "io.containerd.example.v1.Unknown": invalid argument/],
    ['a mismatched type', () => unpackAnyAs(packAny(TaskExit, {}), TaskCreate), /expected an Any of "containerd.events.TaskCreate", got "containerd.events.TaskExit"/],
    ['an unregistered message type', () => typeUrlOf(Descriptor), /not registered/],
    ['packing an unregistered message type', () => packAny(Descriptor, {}), /not registered/],
    ['undecodable bytes', () => unpackAny({ typeUrl: 'containerd.events.TaskExit', value: Buffer.from([0x0a, 0x05, 0x61]) }), /decode Any of type "containerd.events.TaskExit"/],
  ])('rejects %s with InvalidArgumentError', (_name, fn, message) => {
    const err = thrown(fn);
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses to re-register a URL or a type to another partner', () => {
    expect(() => registerMessageType('containerd.runc.v1.Options', Options)).not.toThrow();
    expect(isAlreadyExists(thrown(() => registerMessageType('containerd.runc.v1.Options', Descriptor)))).toBe(true);
    expect(isAlreadyExists(thrown(() => registerMessageType('x.Other', Options)))).toBe(true);
    expect(isAlreadyExists(thrown(() => registerMessageType(RUNTIME_SPEC_TYPE_URLS.spec, Descriptor)))).toBe(true);
  });
});

describe('runtime-spec JSON Anys', () => {
  it.each(Object.values(RUNTIME_SPEC_TYPE_URLS))('%s round-trips as JSON bytes', (url) => {
    const value = { ociVersion: '1.0.2', process: { args: ['sh'] } };
    const any = packJsonAny(url, value);
    expect(any.typeUrl).toBe(url);
    expect(JSON.parse(any.value.toString('utf8'))).toEqual(value);
    expect(unpackJsonAny(any, url)).toEqual(value);
    expect(unpackAny(any)).toEqual(value);
    expect(isKnownTypeUrl(url)).toBe(true);
  });

  it('checks the expected URL and the JSON', () => {
    const spec = packJsonAny(RUNTIME_SPEC_TYPE_URLS.spec, {});
    expect(isInvalidArgument(thrown(() => unpackJsonAny(spec, RUNTIME_SPEC_TYPE_URLS.process)))).toBe(true);
    expect(isInvalidArgument(thrown(() => unpackJsonAny(packAny(Options, {}))))).toBe(true);
    const broken = { typeUrl: RUNTIME_SPEC_TYPE_URLS.linuxResources, value: Buffer.from('{nope') };
    expect(isInvalidArgument(thrown(() => unpackJsonAny(broken)))).toBe(true);
  });
});
