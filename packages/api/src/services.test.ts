/**
 * Every gRPC/ttrpc service: full method paths and streaming kinds as containerd 1.6 serves them
 * (and containerd 2.x, for Transfer and Streaming).
 * The expected table is written from the reference, not from protos/, and a second check makes
 * sure no service in protos/ is missing from it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as cri from './cri';
import * as api from './index';

interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}
type ServiceDefinition = Record<string, MethodDefinition>;

// "M" unary, "M>" server streaming, "<M" client streaming, "<M>" bidirectional.
const SERVICES: Array<[string, ServiceDefinition, string]> = [
  ['containerd.services.version.v1.Version', api.version.VersionService, 'Version'],
  ['containerd.services.introspection.v1.Introspection', api.introspection.IntrospectionService, 'Plugins Server'],
  ['containerd.services.namespaces.v1.Namespaces', api.namespaces.NamespacesService, 'Get List Create Update Delete'],
  [
    'containerd.services.content.v1.Content',
    api.content.ContentService,
    'Info Update List> Delete Read> Status ListStatuses <Write> Abort',
  ],
  ['containerd.services.images.v1.Images', api.images.ImagesService, 'Get List Create Update Delete'],
  ['containerd.services.containers.v1.Containers', api.containers.ContainersService, 'Get List ListStream> Create Update Delete'],
  [
    'containerd.services.snapshots.v1.Snapshots',
    api.snapshots.SnapshotsService,
    'Prepare View Mounts Commit Remove Stat Update List> Usage Cleanup',
  ],
  ['containerd.services.diff.v1.Diff', api.diff.DiffService, 'Apply Diff'],
  [
    'containerd.services.tasks.v1.Tasks',
    api.tasks.TasksService,
    'Create Start Delete DeleteProcess Get List Kill Exec ResizePty CloseIO Pause Resume ListPids Checkpoint Update Metrics Wait',
  ],
  ['containerd.services.events.v1.Events', api.eventsService.EventsService, 'Publish Forward Subscribe>'],
  [
    'containerd.services.leases.v1.Leases',
    api.leases.LeasesService,
    'Create Delete List AddResource DeleteResource ListResources',
  ],
  ['containerd.services.transfer.v1.Transfer', api.transfer.TransferService, 'Transfer'],
  ['containerd.services.streaming.v1.Streaming', api.streaming.StreamingService, '<Stream>'],
  ['grpc.health.v1.Health', api.health.HealthService, 'Check Watch>'],
  // Berth's own services (protos/berth), not containerd's.
  ['berth.services.namespaces.v1.Namespaces', api.berthNamespaces.NamespacesService, 'Delete Usage'],
  ['berth.services.gc.v1.GC', api.berthGc.GCService, 'Collect Explain'],
  ['containerd.services.events.ttrpc.v1.Events', api.ttrpcEvents.EventsService, 'Forward'],
  [
    'runtime.v1.RuntimeService',
    cri.RuntimeServiceService,
    'Version RunPodSandbox StopPodSandbox RemovePodSandbox PodSandboxStatus ListPodSandbox StreamPodSandboxes> CreateContainer ' +
      'StartContainer StopContainer RemoveContainer ListContainers StreamContainers> ContainerStatus UpdateContainerResources ' +
      'ReopenContainerLog ExecSync Exec Attach PortForward ContainerStats ListContainerStats StreamContainerStats> PodSandboxStats ' +
      'ListPodSandboxStats StreamPodSandboxStats> UpdateRuntimeConfig Status CheckpointContainer CheckpointPod RestorePod ' +
      'GetContainerEvents> ListMetricDescriptors ListPodSandboxMetrics StreamPodSandboxMetrics> RuntimeConfig UpdatePodSandboxResources',
  ],
  ['runtime.v1.ImageService', cri.ImageServiceService, 'ListImages StreamImages> ImageStatus PullImage RemoveImage ImageFsInfo'],
  [
    'containerd.task.v2.Task',
    api.shim.TaskService,
    'State Create Start Delete Pids Pause Resume Checkpoint Kill Exec ResizePty CloseIO Update Wait Stats Connect Shutdown',
  ],
];

const cases = SERVICES.flatMap(([service, definition, methods]) =>
  methods.split(' ').map((spec) => {
    const name = spec.replace(/[<>]/g, '');
    return {
      path: `/${service}/${name}`,
      definition,
      requestStream: spec.startsWith('<'),
      responseStream: spec.endsWith('>'),
    };
  }),
);

describe('service definitions', () => {
  // Keys are ts-proto's camelCase of the method name (CloseIO becomes closeIo), so look up by path.
  it.each(cases)('$path', ({ path, definition, requestStream, responseStream }) => {
    const method = Object.values(definition).find((m) => m.path === path);
    expect(method).toBeDefined();
    expect({ requestStream: method!.requestStream, responseStream: method!.responseStream }).toEqual({
      requestStream,
      responseStream,
    });
  });

  it.each(SERVICES)('%s has exactly the expected methods', (service, definition, methods) => {
    const paths = Object.values(definition).map((m) => m.path).sort();
    const expected = methods.split(' ').map((m) => `/${service}/${m.replace(/[<>]/g, '')}`).sort();
    expect(paths).toEqual(expected);
  });

  it('names handler keys in camelCase: CloseIO is closeIo, ResizePty is resizePty', () => {
    expect(api.tasks.TasksService.closeIo.path).toBe('/containerd.services.tasks.v1.Tasks/CloseIO');
    expect(api.shim.TaskService.closeIo.path).toBe('/containerd.task.v2.Task/CloseIO');
    expect(api.tasks.TasksService.resizePty.path).toBe('/containerd.services.tasks.v1.Tasks/ResizePty');
  });

  it('Content/Write is bidirectional streaming', () => {
    expect(api.content.ContentService.write).toMatchObject({
      path: '/containerd.services.content.v1.Content/Write',
      requestStream: true,
      responseStream: true,
    });
  });

  it('covers every service declared in protos/', () => {
    const protosDir = join(__dirname, '..', '..', '..', 'protos');
    const declared: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.proto')) {
          const text = readFileSync(full, 'utf8');
          const pkg = /^package\s+([\w.]+)\s*;/m.exec(text)?.[1];
          for (const m of text.matchAll(/^service\s+(\w+)\s*\{/gm)) declared.push(`${pkg}.${m[1]}`);
        }
      }
    };
    walk(protosDir);
    expect(declared.sort()).toEqual(SERVICES.map(([name]) => name).sort());
  });

  it('Streaming/Stream is bidirectional, every frame an Any; Transfer replies with Empty', () => {
    const stream = api.streaming.StreamingService.stream;
    const init = { typeUrl: 'containerd.services.streaming.v1.StreamInit', value: Buffer.from('0a0178', 'hex') };
    expect(stream.requestDeserialize(stream.requestSerialize(init))).toEqual(init);
    expect(stream.responseSerialize({ typeUrl: 'google.protobuf.Empty', value: Buffer.alloc(0) }).toString('hex')).toBe(
      '0a' + '15' + Buffer.from('google.protobuf.Empty').toString('hex'),
    );
    expect(api.transfer.TransferService.transfer.responseDeserialize(Buffer.alloc(0))).toEqual({});
  });

  it('serializes with the generated codecs (Buffer in, message out)', () => {
    const get = api.images.ImagesService.get;
    const buf = get.requestSerialize({ name: 'busybox' });
    expect(Buffer.isBuffer(buf)).toBe(true);
    expect(buf.toString('hex')).toBe('0a07' + Buffer.from('busybox').toString('hex'));
    expect(get.requestDeserialize(buf)).toEqual({ name: 'busybox' });
  });
});
