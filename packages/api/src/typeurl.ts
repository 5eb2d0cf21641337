/**
 * containerd's Any convention (github.com/containerd/typeurl, as used by containerd 1.6 and 2.x):
 * - protobuf payloads carry the bare full name as `type_url`, e.g. `containerd.events.TaskExit`,
 *   with no `type.googleapis.com/` prefix (ctr only decodes exact matches);
 * - the OCI runtime-spec types use `types.containerd.io/opencontainers/runtime-spec/1/<Type>`
 *   and their `value` is JSON, not protobuf.
 *
 * Unknown type URLs are an error: `unpackAny` throws `InvalidArgumentError`. Callers that must
 * tolerate unknown payloads (an event printer, for instance) check `isKnownTypeUrl` first.
 * Input URLs may carry a `type.googleapis.com/` prefix; output URLs never do.
 *
 * This module must not import anything that loads @grpc/grpc-js (see events.ts).
 */
import { AlreadyExistsError, InvalidArgumentError } from '@berth/errdefs';
import * as containerEvents from './gen/containerd/events/container';
import * as contentEvents from './gen/containerd/events/content';
import * as namespaceEvents from './gen/containerd/events/namespace';
import * as snapshotEvents from './gen/containerd/events/snapshot';
import * as taskEvents from './gen/containerd/events/task';
import * as runcOptions from './gen/containerd/runc/v1/options';
import { Metrics as CgroupsV1Metrics } from './gen/io/containerd/cgroups/v1/metrics';
import { Metrics as CgroupsV2Metrics } from './gen/io/containerd/cgroups/v2/metrics';
import * as imageEvents from './gen/containerd/services/images/v1/image_events';
import { StreamInit } from './gen/containerd/services/streaming/v1/stream_init';
import * as transferContainer from './gen/containerd/types/transfer/container';
import * as transferImageStore from './gen/containerd/types/transfer/imagestore';
import * as transferImportExport from './gen/containerd/types/transfer/importexport';
import * as transferProgress from './gen/containerd/types/transfer/progress';
import * as transferRegistry from './gen/containerd/types/transfer/registry';
import * as transferStreaming from './gen/containerd/types/transfer/streaming';
import { Any } from './gen/google/protobuf/any';
import { Empty } from './gen/google/protobuf/empty';
import type { DeepPartial, MessageType } from './message-type';

/** The prefix that Google's Any helpers add; accepted on input, stripped before lookup. */
export const GOOGLE_TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Type URLs of the OCI runtime-spec payloads, whose Any value is JSON. */
export const RUNTIME_SPEC_TYPE_URLS = {
  spec: 'types.containerd.io/opencontainers/runtime-spec/1/Spec',
  process: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
  linuxResources: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
  windowsResources: 'types.containerd.io/opencontainers/runtime-spec/1/WindowsResources',
} as const;

/** One of the runtime-spec type URLs. */
export type RuntimeSpecTypeUrl = (typeof RUNTIME_SPEC_TYPE_URLS)[keyof typeof RUNTIME_SPEC_TYPE_URLS];

const JSON_TYPE_URLS: ReadonlySet<string> = new Set(Object.values(RUNTIME_SPEC_TYPE_URLS));

const messageByUrl = new Map<string, MessageType<unknown>>();
const urlByMessage = new Map<MessageType<unknown>, string>();

/**
 * Registers a protobuf message type under `typeUrl` so the Any helpers can pack and unpack it.
 * Registering the same pair twice is a no-op.
 *
 * @throws AlreadyExistsError when the URL or the message type is registered with another partner.
 */
export function registerMessageType<T>(typeUrl: string, type: MessageType<T>): void {
  const url = normalizeTypeUrl(typeUrl);
  const known = type as MessageType<unknown>;
  const byUrl = messageByUrl.get(url);
  const byType = urlByMessage.get(known);
  if (byUrl === known && byType === url) return;
  if (byUrl !== undefined) throw new AlreadyExistsError(`type url "${url}" is registered to another message type`);
  if (byType !== undefined) throw new AlreadyExistsError(`message type is already registered as "${byType}"`);
  if (JSON_TYPE_URLS.has(url)) throw new AlreadyExistsError(`type url "${url}" is reserved for a JSON payload`);
  messageByUrl.set(url, known);
  urlByMessage.set(known, url);
}

function registerAll(pkg: string, types: Record<string, MessageType<any>>): void {
  for (const [name, type] of Object.entries(types)) registerMessageType(`${pkg}.${name}`, type);
}

// Everything that travels in an Any between containerd, its clients and the runc shim.
registerAll('containerd.events', {
  ContainerCreate: containerEvents.ContainerCreate,
  ContainerUpdate: containerEvents.ContainerUpdate,
  ContainerDelete: containerEvents.ContainerDelete,
  ContentDelete: contentEvents.ContentDelete,
  NamespaceCreate: namespaceEvents.NamespaceCreate,
  NamespaceUpdate: namespaceEvents.NamespaceUpdate,
  NamespaceDelete: namespaceEvents.NamespaceDelete,
  SnapshotPrepare: snapshotEvents.SnapshotPrepare,
  SnapshotCommit: snapshotEvents.SnapshotCommit,
  SnapshotRemove: snapshotEvents.SnapshotRemove,
  TaskCreate: taskEvents.TaskCreate,
  TaskStart: taskEvents.TaskStart,
  TaskDelete: taskEvents.TaskDelete,
  TaskIO: taskEvents.TaskIO,
  TaskExit: taskEvents.TaskExit,
  TaskOOM: taskEvents.TaskOOM,
  TaskExecAdded: taskEvents.TaskExecAdded,
  TaskExecStarted: taskEvents.TaskExecStarted,
  TaskPaused: taskEvents.TaskPaused,
  TaskResumed: taskEvents.TaskResumed,
  TaskCheckpointed: taskEvents.TaskCheckpointed,
});
// The image events keep the images service package.
registerAll('containerd.services.images.v1', {
  ImageCreate: imageEvents.ImageCreate,
  ImageUpdate: imageEvents.ImageUpdate,
  ImageDelete: imageEvents.ImageDelete,
});
registerAll('containerd.runc.v1', {
  Options: runcOptions.Options,
  CheckpointOptions: runcOptions.CheckpointOptions,
  ProcessDetails: runcOptions.ProcessDetails,
});
// containerd 2.x transfers: the source and destination objects of a TransferRequest and the
// frames of the streams it names. containerd matches these URLs exactly, so they stay bare.
registerAll('containerd.types.transfer', {
  OCIRegistry: transferRegistry.OCIRegistry,
  RegistryResolver: transferRegistry.RegistryResolver,
  AuthRequest: transferRegistry.AuthRequest,
  AuthResponse: transferRegistry.AuthResponse,
  ImageStore: transferImageStore.ImageStore,
  UnpackConfiguration: transferImageStore.UnpackConfiguration,
  ImageReference: transferImageStore.ImageReference,
  ImageImportStream: transferImportExport.ImageImportStream,
  ImageExportStream: transferImportExport.ImageExportStream,
  Progress: transferProgress.Progress,
  Data: transferStreaming.Data,
  WindowUpdate: transferStreaming.WindowUpdate,
  ReadStream: transferStreaming.ReadStream,
  WriteStream: transferStreaming.WriteStream,
  ContainerPath: transferContainer.ContainerPath,
});
// A stream's first frame, and the server's ack of it (an Any of Empty with an empty value).
registerAll('containerd.services.streaming.v1', { StreamInit });
registerAll('google.protobuf', { Empty });
// A task's cgroup statistics, as the runc shim answers Stats (and Tasks.Metrics passes on).
registerAll('io.containerd.cgroups.v1', { Metrics: CgroupsV1Metrics });
registerAll('io.containerd.cgroups.v2', { Metrics: CgroupsV2Metrics });

/** Returns `url` without a leading `type.googleapis.com/`. */
export function normalizeTypeUrl(url: string): string {
  return url.startsWith(GOOGLE_TYPE_URL_PREFIX) ? url.slice(GOOGLE_TYPE_URL_PREFIX.length) : url;
}

/** Returns true when `url` names a registered message type or a runtime-spec JSON type. */
export function isKnownTypeUrl(url: string): boolean {
  const normalized = normalizeTypeUrl(url);
  return messageByUrl.has(normalized) || JSON_TYPE_URLS.has(normalized);
}

/**
 * Returns the containerd type URL of a registered message type, e.g. `typeUrlOf(TaskExit)` is
 * `containerd.events.TaskExit`.
 *
 * @throws InvalidArgumentError when the type is not registered.
 */
export function typeUrlOf(type: MessageType<any>): string {
  const url = urlByMessage.get(type);
  if (url === undefined) throw new InvalidArgumentError('message type is not registered for use in an Any');
  return url;
}

/**
 * Packs a message into an Any with containerd's bare type URL. Missing fields take their proto3
 * defaults, so a partial value is fine: `packAny(TaskExit, { containerId: 'c1', exitStatus: 137 })`.
 *
 * @throws InvalidArgumentError when the type is not registered.
 */
export function packAny<T>(type: MessageType<T>, value: T | DeepPartial<T>): Any {
  const typeUrl = typeUrlOf(type);
  return { typeUrl, value: Buffer.from(type.encode(type.fromPartial(value)).finish()) };
}

/**
 * Decodes an Any: a registered protobuf message, or parsed JSON for a runtime-spec type URL.
 *
 * @throws InvalidArgumentError when the type URL is unknown or the value does not decode.
 */
export function unpackAny(any: Any): unknown {
  const url = normalizeTypeUrl(any.typeUrl);
  if (JSON_TYPE_URLS.has(url)) return parseJson(url, any.value);
  const type = messageByUrl.get(url);
  if (type === undefined) throw new InvalidArgumentError(`unknown type url "${any.typeUrl}"`);
  return decode(url, type, any.value);
}

/**
 * Decodes an Any that must hold `type`, e.g. `unpackAnyAs(envelope.event, TaskExit)`.
 *
 * @throws InvalidArgumentError when the Any holds another type or does not decode.
 */
export function unpackAnyAs<T>(any: Any, type: MessageType<T>): T {
  const expected = typeUrlOf(type);
  const url = normalizeTypeUrl(any.typeUrl);
  if (url !== expected) throw new InvalidArgumentError(`expected an Any of "${expected}", got "${any.typeUrl}"`);
  return decode(url, type, any.value);
}

/** Packs a JSON-encoded Any, as containerd does for the runtime-spec types. */
export function packJsonAny(typeUrl: RuntimeSpecTypeUrl, value: unknown): Any {
  return { typeUrl, value: Buffer.from(JSON.stringify(value), 'utf8') };
}

/**
 * Parses a runtime-spec Any, optionally checking its type URL. The result is not validated
 * against the OCI schema; `T` is what the caller asserts it to be.
 *
 * @throws InvalidArgumentError when the URL is not a runtime-spec one (or not `expected`), or the
 *   value is not JSON.
 */
export function unpackJsonAny<T = unknown>(any: Any, expected?: RuntimeSpecTypeUrl): T {
  const url = normalizeTypeUrl(any.typeUrl);
  if (expected !== undefined ? url !== expected : !JSON_TYPE_URLS.has(url)) {
    const want = expected !== undefined ? `"${expected}"` : 'a runtime-spec JSON type';
    throw new InvalidArgumentError(`expected an Any of ${want}, got "${any.typeUrl}"`);
  }
  return parseJson(url, any.value) as T;
}

function decode<T>(url: string, type: MessageType<T>, value: Uint8Array | undefined): T {
  try {
    return type.decode(value ?? new Uint8Array(0));
  } catch (cause) {
    throw new InvalidArgumentError(`decode Any of type "${url}"`, { cause });
  }
}

function parseJson(url: string, value: Uint8Array | undefined): unknown {
  const text = Buffer.from(value ?? new Uint8Array(0)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new InvalidArgumentError(`decode JSON Any of type "${url}"`, { cause });
  }
}
