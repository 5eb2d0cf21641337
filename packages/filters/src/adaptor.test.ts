import { Adaptor, adaptorFromFields, adaptorFromTree, labelsAdaptor, mapField, nonEmpty, parse } from './index';

const lookup = (adaptor: Adaptor, ...path: string[]) => adaptor.field(path);

describe('adaptorFromFields', () => {
  it('passes paths through and answers the empty path as absent', () => {
    const seen: string[][] = [];
    const adaptor = adaptorFromFields((path) => {
      seen.push([...path]);
      return path[0] === 'id' ? 'r1' : undefined;
    });
    expect(lookup(adaptor, 'id')).toBe('r1');
    expect(lookup(adaptor, 'other')).toBeUndefined();
    expect(lookup(adaptor)).toBeUndefined();
    expect(seen).toEqual([['id'], ['other']]);
  });
});

describe('labelsAdaptor', () => {
  // A container as containerd adapts it: id, image, runtime.name, labels.
  const container = labelsAdaptor({ id: 'c1', image: nonEmpty('') }, { 'a.b': '1', x: '' });

  it.each<[string[], string | undefined]>([
    [['id'], 'c1'],
    [['id', 'more'], 'c1'],
    [['image'], undefined],
    [['labels', 'a.b'], '1'],
    [['labels', 'a', 'b'], '1'],
    [['labels', 'x'], ''],
    [['labels', 'y'], undefined],
    [['labels'], undefined],
    [['toString'], undefined],
    [['labels', 'constructor'], undefined],
    [[], undefined],
  ])('%j → %j', (path, expected) => {
    expect(container.field(path)).toBe(expected);
  });

  it('takes a Map or no labels at all', () => {
    expect(lookup(labelsAdaptor({}, new Map([['k', 'v']])), 'labels', 'k')).toBe('v');
    expect(lookup(labelsAdaptor({ id: 'l1' }, undefined), 'labels', 'k')).toBeUndefined();
  });
});

describe('adaptorFromTree', () => {
  // One tree per object kind Berth filters, to show each shape works.
  const trees = {
    image: adaptorFromTree({
      name: 'busybox',
      target: { digest: 'sha256:1', mediatype: 'application/vnd.oci.image.manifest.v1+json' },
      labels: mapField({ l: '1' }),
      annotations: mapField({ 'org.opencontainers.image.ref.name': 'latest' }),
    }),
    container: adaptorFromTree({ id: 'c1', image: 'busybox', runtime: { name: 'io.containerd.runc.v2' }, labels: mapField({}) }),
    content: adaptorFromTree({ digest: 'sha256:2', size: '123', labels: mapField({ 'containerd.io/gc.root': 'x' }) }),
    ingest: adaptorFromTree({ ref: 'tar-repack-1' }),
    snapshot: adaptorFromTree({ kind: 'active', name: 'k1', parent: '', labels: mapField(undefined) }),
    lease: adaptorFromTree({ id: 'pl1', labels: mapField({ 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' }) }),
    plugin: adaptorFromTree({ type: 'io.containerd.snapshotter.v1', id: 'overlayfs' }),
    envelope: adaptorFromTree({
      namespace: 'default',
      topic: '/tasks/exit',
      event: adaptorFromTree({ id: 'abc', container_id: 'c1' }).field,
    }),
    metric: adaptorFromTree({ id: 'c1', namespace: 'default' }),
  };

  it.each<[keyof typeof trees, string, boolean]>([
    ['image', 'name==busybox', true],
    ['image', 'target.digest==sha256:1', true],
    ['image', 'target.mediatype~=manifest', true],
    ['image', 'labels.l==1', true],
    ['image', 'annotations."org.opencontainers.image.ref.name"==latest', true],
    ['container', 'id==c1', true],
    ['container', 'image==busybox', true],
    ['container', 'runtime.name==io.containerd.runc.v2', true],
    ['container', 'runtime', false],
    ['container', 'labels.x', false],
    ['content', 'digest==sha256:2', true],
    ['content', 'size==123', true],
    ['content', 'labels."containerd.io/gc.root"', true],
    ['ingest', 'ref~=^tar-', true],
    ['snapshot', 'kind==active', true],
    ['snapshot', 'name==k1', true],
    ['snapshot', 'parent', true],
    ['snapshot', 'parent==""', true],
    ['snapshot', 'labels.x', false],
    ['lease', 'id==pl1', true],
    ['lease', 'labels."containerd.io/gc.expire"', true],
    ['plugin', 'type==io.containerd.snapshotter.v1,id==overlayfs', true],
    ['plugin', 'platforms', false],
    ['envelope', 'namespace==default', true],
    ['envelope', 'topic=="/tasks/exit"', true],
    ['envelope', 'topic~=|^/tasks/|', true],
    ['envelope', 'event.id==abc', true],
    ['envelope', 'event.container_id==c1', true],
    ['envelope', 'event.pid', false],
    ['envelope', 'event', false],
    ['metric', 'id==c1', true],
  ])('%s: %s → %s', (kind, filter, expected) => {
    expect(parse(filter).match(trees[kind])).toBe(expected);
  });

  it('ignores inherited properties', () => {
    const adaptor = adaptorFromTree({ id: 'x' });
    expect(lookup(adaptor, 'constructor')).toBeUndefined();
    expect(lookup(adaptor, '__proto__')).toBeUndefined();
  });
});

describe('nonEmpty', () => {
  it.each<[string | undefined | null, string | undefined]>([
    ['a', 'a'],
    ['', undefined],
    [undefined, undefined],
    [null, undefined],
  ])('%j → %j', (value, expected) => {
    expect(nonEmpty(value)).toBe(expected);
  });
});
