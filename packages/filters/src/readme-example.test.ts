import { selectImages } from '../examples/select-images';

const images = [
  { name: 'docker.io/library/busybox:1.36', digest: 'sha256:aaa', labels: { team: 'base' } },
  { name: 'example.com/web:2', digest: 'sha256:bbb', labels: { team: 'web', 'env.stage': 'prod' } },
  { name: 'example.com/web:3', digest: 'sha256:ccc', labels: { team: 'web' } },
];

describe('README example: selecting images with filters', () => {
  it.each([
    [[], ['docker.io/library/busybox:1.36', 'example.com/web:2', 'example.com/web:3']],
    [['labels.team==web'], ['example.com/web:2', 'example.com/web:3']],
    [['labels.team==web,labels."env.stage"'], ['example.com/web:2']],
    [['name~=busybox', 'target.digest==sha256:ccc'], ['docker.io/library/busybox:1.36', 'example.com/web:3']],
    [['labels.team!=web'], ['docker.io/library/busybox:1.36']],
  ])('%j selects %j', (filters, names) => {
    expect(selectImages(images, filters)).toEqual(names);
  });

  it("refuses a filter that does not parse, with containerd's message", () => {
    expect(() => selectImages(images, ['name=='])).toThrow(/^filters: parse error: .*: invalid argument$/);
  });
});
