import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { InvalidArgumentError } from '@berth/errdefs';
import { Digester, EMPTY_DIGEST, digestOf, digestStream, isDigest, parseDigest, validateDigest } from './digest';

const hex256 = createHash('sha256').update('abc').digest('hex');

describe('parseDigest', () => {
  it.each([
    [`sha256:${hex256}`, 'sha256', hex256],
    [`sha384:${'a'.repeat(96)}`, 'sha384', 'a'.repeat(96)],
    [`sha512:${'0'.repeat(128)}`, 'sha512', '0'.repeat(128)],
  ])('accepts %s', (value, algorithm, hex) => {
    expect(parseDigest(value)).toEqual({ algorithm, hex });
    expect(validateDigest(value)).toBe(value);
    expect(isDigest(value)).toBe(true);
  });

  it.each<[unknown, string]>([
    [undefined, 'invalid checksum digest format'],
    [42, 'invalid checksum digest format'],
    ['', 'invalid checksum digest format'],
    ['sha256', 'invalid checksum digest format'],
    ['sha256:', 'invalid checksum digest format'],
    [`:${hex256}`, 'invalid checksum digest format'],
    [`sha256:${hex256.slice(1)}`, 'invalid checksum digest length'],
    [`sha256:${hex256}0`, 'invalid checksum digest length'],
    [`sha256:${hex256.toUpperCase()}`, 'invalid checksum digest format'],
    [`sha256:${'z'.repeat(64)}`, 'invalid checksum digest format'],
    [`sha512:${hex256}`, 'invalid checksum digest length'],
    ['md5:d41d8cd98f00b204e9800998ecf8427e', 'unsupported digest algorithm'],
    ['blake3:abcd', 'unsupported digest algorithm'],
    [`Sha256:${hex256}`, 'invalid checksum digest format'],
    ['sha256 :abc', 'invalid checksum digest format'],
  ])('rejects %j: %s', (value, message) => {
    let err: unknown;
    try {
      parseDigest(value);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    // Bare, as go-digest words it and containerd sends it.
    expect((err as Error).message).toBe(message);
    expect(isDigest(value)).toBe(false);
  });
});

describe('Digester', () => {
  it('reports a running digest without ending the hash', () => {
    const d = new Digester();
    expect(d.digest()).toBe(EMPTY_DIGEST);
    d.update(Buffer.from('a'));
    expect(d.digest()).toBe(digestOf('a'));
    d.update(Buffer.from('bc'));
    expect(d.digest()).toBe(`sha256:${hex256}`);
    expect(d.size).toBe(3);
    d.reset();
    expect(d.digest()).toBe(EMPTY_DIGEST);
    expect(d.size).toBe(0);
  });

  it.each(['sha384', 'sha512'] as const)('hashes with %s', (algorithm) => {
    expect(digestOf('abc', algorithm)).toBe(`${algorithm}:${createHash(algorithm).update('abc').digest('hex')}`);
  });

  it('hashes streams', async () => {
    const parts = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
    expect(await digestStream(Readable.from(parts))).toEqual({ digest: `sha256:${hex256}`, size: 3 });
  });
});
