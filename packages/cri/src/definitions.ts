import type { MethodDescriptor } from '@berth/grpc';
// Types only: the generated module is loaded on the first call (see `loadCri`).
import type * as Cri from '@berth/api/cri';

type CriModule = typeof Cri;
let loaded: CriModule | undefined;

/** Loads `@berth/api/cri` (about 800 KB of generated code) once, when first needed. */
export function loadCri(): CriModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (loaded ??= require('@berth/api/cri') as CriModule);
}

/**
 * A response a handler encoded itself (a list built from cached message encodings): the
 * definition's serializer passes its bytes through.
 */
export class PreEncoded {
  constructor(readonly bytes: Buffer) {}
}

export type RuntimeServiceDefinition = CriModule['RuntimeServiceService'];
export type ImageServiceDefinition = CriModule['ImageServiceService'];

// Handler key (ts-proto's camelCase) -> method name; `>` marks a server stream.
const RUNTIME_METHODS: Record<keyof RuntimeServiceDefinition, string> = {
  version: 'Version',
  runPodSandbox: 'RunPodSandbox',
  stopPodSandbox: 'StopPodSandbox',
  removePodSandbox: 'RemovePodSandbox',
  podSandboxStatus: 'PodSandboxStatus',
  listPodSandbox: 'ListPodSandbox',
  streamPodSandboxes: 'StreamPodSandboxes>',
  createContainer: 'CreateContainer',
  startContainer: 'StartContainer',
  stopContainer: 'StopContainer',
  removeContainer: 'RemoveContainer',
  listContainers: 'ListContainers',
  streamContainers: 'StreamContainers>',
  containerStatus: 'ContainerStatus',
  updateContainerResources: 'UpdateContainerResources',
  reopenContainerLog: 'ReopenContainerLog',
  execSync: 'ExecSync',
  exec: 'Exec',
  attach: 'Attach',
  portForward: 'PortForward',
  containerStats: 'ContainerStats',
  listContainerStats: 'ListContainerStats',
  streamContainerStats: 'StreamContainerStats>',
  podSandboxStats: 'PodSandboxStats',
  listPodSandboxStats: 'ListPodSandboxStats',
  streamPodSandboxStats: 'StreamPodSandboxStats>',
  updateRuntimeConfig: 'UpdateRuntimeConfig',
  status: 'Status',
  checkpointContainer: 'CheckpointContainer',
  checkpointPod: 'CheckpointPod',
  restorePod: 'RestorePod',
  getContainerEvents: 'GetContainerEvents>',
  listMetricDescriptors: 'ListMetricDescriptors',
  listPodSandboxMetrics: 'ListPodSandboxMetrics',
  streamPodSandboxMetrics: 'StreamPodSandboxMetrics>',
  runtimeConfig: 'RuntimeConfig',
  updatePodSandboxResources: 'UpdatePodSandboxResources',
};

const IMAGE_METHODS: Record<keyof ImageServiceDefinition, string> = {
  listImages: 'ListImages',
  streamImages: 'StreamImages>',
  imageStatus: 'ImageStatus',
  pullImage: 'PullImage',
  removeImage: 'RemoveImage',
  imageFsInfo: 'ImageFsInfo',
};

/**
 * A service definition with the generated one's paths and stream kinds, whose codecs load the
 * generated module on first use: berthd registers the CRI services at start without paying for
 * the module until a CRI client calls. definitions.test.ts checks it against the generated one.
 */
function lazyDefinition<D>(service: string, methods: Record<keyof D, string>, generated: (m: CriModule) => D): D {
  const out: Record<string, MethodDescriptor<unknown, unknown>> = {};
  for (const [key, spec] of Object.entries(methods) as Array<[string, string]>) {
    const real = () => (generated(loadCri()) as Record<string, MethodDescriptor<unknown, unknown>>)[key];
    out[key] = {
      path: `/${service}/${spec.replace('>', '')}`,
      requestStream: false,
      responseStream: spec.endsWith('>'),
      requestSerialize: (v) => real().requestSerialize(v),
      requestDeserialize: (b) => real().requestDeserialize(b),
      // A handler may answer with the response already encoded (see `PreEncoded`).
      responseSerialize: (v) => (v instanceof PreEncoded ? v.bytes : real().responseSerialize(v)),
      responseDeserialize: (b) => real().responseDeserialize(b),
    };
  }
  return out as D;
}

/** runtime.v1.RuntimeService, loading its codecs on first use. */
export const runtimeServiceDefinition = (): RuntimeServiceDefinition =>
  lazyDefinition('runtime.v1.RuntimeService', RUNTIME_METHODS, (m) => m.RuntimeServiceService);

/** runtime.v1.ImageService, loading its codecs on first use. */
export const imageServiceDefinition = (): ImageServiceDefinition => lazyDefinition('runtime.v1.ImageService', IMAGE_METHODS, (m) => m.ImageServiceService);
