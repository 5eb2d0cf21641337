import * as transfer from './transfer';
import { isKnownTypeUrl, typeUrlOf } from './typeurl';

describe('@berth/api/transfer entry point', () => {
  it('exports the containerd.types.transfer messages and enums flat', () => {
    for (const name of [
      'OCIRegistry', 'RegistryResolver', 'AuthRequest', 'AuthResponse', 'AuthType', 'HTTPDebug',
      'ImageStore', 'UnpackConfiguration', 'ImageReference', 'ImageImportStream', 'ImageExportStream',
      'Progress', 'Data', 'WindowUpdate', 'ReadStream', 'WriteStream', 'ContainerPath',
    ]) {
      expect(transfer).toHaveProperty(name);
    }
  });

  it('exports the Transfer and Streaming services as namespaces', () => {
    expect(transfer.transfer.TransferService.transfer.path).toBe('/containerd.services.transfer.v1.Transfer/Transfer');
    expect(transfer.streaming.StreamingService.stream.path).toBe('/containerd.services.streaming.v1.Streaming/Stream');
    expect(typeUrlOf(transfer.streaming.StreamInit)).toBe('containerd.services.streaming.v1.StreamInit');
  });

  it('registers the transfer types by importing it (no registerMessageType call needed)', () => {
    expect(typeUrlOf(transfer.ImageStore)).toBe('containerd.types.transfer.ImageStore');
    expect(isKnownTypeUrl('containerd.types.transfer.WindowUpdate')).toBe(true);
  });
});
