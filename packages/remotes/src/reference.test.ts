import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { ImageReference } from './reference';

const D = 'sha256:' + 'a'.repeat(64);

describe('ImageReference.parse', () => {
  it.each<[string, string, string, string | undefined, string | undefined]>([
    // input, registry, repository, tag, digest
    ['busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined],
    ['library/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['user/app', 'docker.io', 'user/app', 'latest', undefined],
    ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['index.docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['ghcr.io/org/team/app:v1', 'ghcr.io', 'org/team/app', 'v1', undefined],
    ['localhost/app', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/app', 'localhost:5000', 'app', 'latest', undefined],
    ['127.0.0.1:5000/a/b:t', '127.0.0.1:5000', 'a/b', 't', undefined],
    ['[::1]:5000/app', '[::1]:5000', 'app', 'latest', undefined],
    ['Registry/app', 'Registry', 'app', 'latest', undefined],
    [`busybox@${D}`, 'docker.io', 'library/busybox', undefined, D],
    [`quay.io/a/b:tag@${D}`, 'quay.io', 'a/b', 'tag', D],
    ['a__b/c-d.e_f:T_a.g-1', 'docker.io', 'a__b/c-d.e_f', 'T_a.g-1', undefined],
  ])('%s → %s / %s : %s @ %s', (input, registry, repository, tag, digest) => {
    const ref = ImageReference.parse(input);
    expect({ registry: ref.registry, repository: ref.repository, tag: ref.tag, digest: ref.digest }).toEqual({ registry, repository, tag, digest });
  });

  it('prints the full normalized form and the object to ask the registry for', () => {
    expect(ImageReference.parse('busybox').toString()).toBe('docker.io/library/busybox:latest');
    expect(ImageReference.parse(`busybox:1@${D}`).toString()).toBe(`docker.io/library/busybox:1@${D}`);
    expect(ImageReference.parse(`busybox:1@${D}`).object).toBe(D);
    expect(ImageReference.parse('busybox:1').object).toBe('1');
    expect(ImageReference.parse('busybox').withDigest(D).toString()).toBe(`docker.io/library/busybox:latest@${D}`);
  });

  it.each<[string, string]>([
    ['', 'repository name must have at least one component'],
    ['Busybox', 'repository name (library/Busybox) must be lowercase'],
    ['docker.io/User/app', 'repository name (User/app) must be lowercase'],
    ['a'.repeat(64).replace(/a/g, 'f'), 'cannot specify 64-byte hexadecimal strings'],
    ['busybox:', 'invalid reference format'],
    ['busybox:-tag', 'invalid reference format'],
    [`busybox:${'t'.repeat(129)}`, 'invalid reference format'],
    ['a//b', 'invalid reference format'],
    ['a/b-', 'invalid reference format'],
    ['host:port/app', 'invalid reference format'],
    [`x/${'a'.repeat(260)}`, 'must not be more than 255 characters'],
    ['busybox@sha256:abc', 'invalid reference format'],
    [`busybox@md5:${'a'.repeat(32)}`, 'unsupported digest algorithm'],
    [`busybox@sha256:${'a'.repeat(63)}`, 'invalid checksum digest length'],
    [`busybox@sha256:${'a'.repeat(31)}`, 'invalid reference format'],
    [`busybox@sha256:${'a'.repeat(65)}`, 'invalid checksum digest length'],
    [`busybox@sha256:${'A'.repeat(64)}`, 'invalid checksum digest format'],
  ])('refuses %j: %s', (input, reason) => {
    let err: unknown;
    try {
      ImageReference.parse(input);
    } catch (e) {
      err = e;
    }
    const status = toGrpcStatus(err);
    expect(status.code).toBe(GrpcCode.INVALID_ARGUMENT);
    expect(status.details).toContain(reason);
    expect(status.details).toContain(`parse "${input}"`);
  });
});
