import { acrossTheWire, resolve } from '../examples/status-round-trip';

describe('README example: an error across the wire', () => {
  it('keeps its kind and message from the thrower to a gRPC status and back', () => {
    expect(resolve('docker.io/library/busybox:latest')).toMatch(/^sha256:/);
    expect(acrossTheWire('example.com/missing:1')).toEqual({
      code: 5,
      details: 'pull: image "example.com/missing:1": not found',
      notFound: true,
      message: 'pull: image "example.com/missing:1": not found',
    });
  });
});
