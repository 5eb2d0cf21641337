import * as cri from '@berth/api/cri';
import { imageServiceDefinition, runtimeServiceDefinition } from './definitions';

describe('lazy CRI service definitions', () => {
  it.each([
    ['RuntimeService', runtimeServiceDefinition, cri.RuntimeServiceService],
    ['ImageService', imageServiceDefinition, cri.ImageServiceService],
  ] as const)('%s has the generated keys, paths and stream kinds', (_name, lazy, generated) => {
    const shape = (d: Record<string, { path: string; requestStream: boolean; responseStream: boolean }>) =>
      Object.fromEntries(Object.entries(d).map(([k, m]) => [k, [m.path, m.requestStream, m.responseStream]]));
    expect(shape(lazy())).toEqual(shape(generated));
  });

  it('encodes and decodes with the generated codecs', () => {
    const lazy = runtimeServiceDefinition().version;
    const bytes = lazy.responseSerialize({ version: '0.1.0', runtimeName: 'containerd', runtimeVersion: '2.0.0', runtimeApiVersion: 'v1' });
    expect(bytes.equals(cri.RuntimeServiceService.version.responseSerialize(cri.VersionResponse.fromPartial({ version: '0.1.0', runtimeName: 'containerd', runtimeVersion: '2.0.0', runtimeApiVersion: 'v1' })))).toBe(true);
    expect(imageServiceDefinition().pullImage.requestDeserialize(cri.ImageServiceService.pullImage.requestSerialize(cri.PullImageRequest.fromPartial({ image: { image: 'busybox' } }))).image?.image).toBe('busybox');
  });
});
