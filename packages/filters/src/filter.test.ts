import { adaptorFromTree, labelsAdaptor, mapField, nonEmpty, parse, parseAll } from './index';

// An image as the images service would adapt it (fields as in containerd's image adaptor).
const image = adaptorFromTree({
  name: 'docker.io/library/busybox:latest',
  target: {
    digest: 'sha256:aaaa',
    mediatype: 'application/vnd.oci.image.index.v1+json',
  },
  labels: mapField({
    foo: 'bar',
    'a.b/c': 'x',
    'io.k8s/x': 'y',
    empty: '',
  }),
  annotations: mapField({ 'org.opencontainers.image.ref.name': 'latest' }),
});

describe('matching', () => {
  it.each<[string, boolean]>([
    // ==
    ['name==docker.io/library/busybox:latest', true],
    ['name==docker.io/library/busybox', false],
    ['name=="docker.io/library/busybox:latest"', true],
    ['target.digest==sha256:aaaa', true],
    ['target.mediatype==application/vnd.oci.image.index.v1+json', true],
    ['labels.foo==bar', true],
    ['labels.foo==baz', false],
    ['labels.missing==""', false],
    ['labels.empty==""', true],
    // !=: an absent field counts as "", so it differs from any non-empty value.
    ['labels.foo!=bar', false],
    ['labels.foo!=baz', true],
    ['labels.missing!=bar', true],
    ['labels.missing!=""', false],
    ['nosuch!=x', true],
    // ~=: unanchored search; an absent field is matched as "".
    ['name~=busybox', true],
    ['name~=^busybox', false],
    // Inside /.../ only Go string escapes are legal, so a regexp escape needs its backslash doubled.
    ['name~=/^docker\\\\.io\\//', true],
    ['name~=|:latest$|', true],
    ['name~=(?i)BUSYBOX', true],
    ['name~=BUSYBOX', false],
    ['labels.missing~=^$', true],
    ['labels.foo~=^$', false],
    ['name~=[', false],
    // presence
    ['name', true],
    ['labels.foo', true],
    ['labels.empty', true],
    ['labels.missing', false],
    ['labels', false],
    ['target', false],
    ['nosuch', false],
    // label keys: quoted segments, or the rest of the path joined with "."
    ['labels."a.b/c"', true],
    ['labels."a.b/c"==x', true],
    ['labels."io.k8s/x"==y', true],
    ['labels."a.b"."c"', false],
    ['annotations."org.opencontainers.image.ref.name"==latest', true],
    ['annotations.org.opencontainers.image.ref.name==latest', true],
    // a fixed field ignores further segments; a nested one needs its own
    ['name.extra==docker.io/library/busybox:latest', true],
    ['target.digest.extra==sha256:aaaa', true],
    ['target.size', false],
    // AND within a filter
    ['name~=busybox,labels.foo==bar', true],
    ['name~=busybox,labels.foo==baz', false],
    ['labels.foo,labels.missing', false],
  ])('%s → %s', (filter, expected) => {
    expect(parse(filter).match(image)).toBe(expected);
  });

  it.each<[readonly string[], boolean]>([
    [[], true],
    [[''], true],
    [['', 'name==nope'], true],
    [['name==nope', 'labels.foo==bar'], true],
    [['name==nope', 'labels.foo==baz'], false],
    [['name==nope,labels.foo==bar', 'labels.missing'], false],
  ])('any of %j → %s', (filters, expected) => {
    expect(parseAll(filters).match(image)).toBe(expected);
  });

  it('compares strings exactly: no case folding, no number parsing', () => {
    const content = labelsAdaptor({ size: '0123' }, {});
    expect(parse('size==123').match(content)).toBe(false);
    expect(parse('size==0123').match(content)).toBe(true);
  });

  it('matches ten thousand objects quickly', () => {
    const filter = parseAll(['labels."io.k8s/x"~=^v[0-9]+$,name!=skip', 'labels.other']);
    const objects = Array.from({ length: 10_000 }, (_, i) =>
      labelsAdaptor({ name: nonEmpty(`img-${i}`) }, { 'io.k8s/x': `v${i % 7 === 0 ? 'x' : i}` }),
    );
    const started = performance.now();
    const matched = objects.filter((o) => filter.match(o)).length;
    expect(matched).toBe(10_000 - Math.ceil(10_000 / 7));
    expect(performance.now() - started).toBeLessThan(1_500); // ~20 ms here; the bound only catches a pathological matcher
  });
});
