import { eventPayload } from '../examples/event-payloads';

describe('README example: event payloads', () => {
  it("packs an event under containerd's type URL and reads it back", () => {
    expect(eventPayload('docker.io/library/busybox:latest')).toEqual({
      typeUrl: 'containerd.services.images.v1.ImageCreate',
      bytes: 34,
      decoded: { name: 'docker.io/library/busybox:latest', labels: { 'example.com/source': 'readme' } },
      sameUrl: true,
    });
  });
});
