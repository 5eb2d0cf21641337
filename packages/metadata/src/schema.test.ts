import { namespaceKey, objectKey, objectKeyNamespace, parseNamespaceKey, parseObjectKey, sequenceKey } from './schema';

describe('metadata key codecs', () => {
  it('parse what the builders build', () => {
    expect(parseNamespaceKey(namespaceKey('ns1'))).toBe('ns1');
    expect(parseObjectKey(objectKey('ns1', 'blobs', 'sha256:abc'), 'blobs')).toEqual(['sha256:abc']);
    expect(parseObjectKey(objectKey('ns1', 'snapshots', 'overlayfs', 'k'), 'snapshots', 2)).toEqual(['overlayfs', 'k']);
    expect(parseObjectKey(objectKey('ns1', 'leased', 'l1', 'content', 'sha256:x'), 'leased', 3)).toEqual(['l1', 'content', 'sha256:x']);
    expect(objectKeyNamespace(objectKey('ns1', 'images', 'a'))).toBe('ns1');
  });

  it.each([
    ['another kind', objectKey('ns1', 'images', 'a'), 'blobs', 1],
    ['too few parts', objectKey('ns1', 'snapshots', 'overlayfs'), 'snapshots', 2],
    ['too many parts', objectKey('ns1', 'blobs', 'a', 'b'), 'blobs', 1],
    ['a namespace key', namespaceKey('ns1'), 'blobs', 1],
    ['a counter key', sequenceKey('ingest'), 'blobs', 1],
  ] as const)('refuse %s', (_what, key, kind, parts) => {
    expect(parseObjectKey([...key], kind, parts)).toBeUndefined();
  });

  it('tell a namespace key from the others', () => {
    expect(parseNamespaceKey(objectKey('ns1', 'blobs', 'a'))).toBeUndefined();
    expect(parseNamespaceKey(sequenceKey('x'))).toBeUndefined();
  });
});
