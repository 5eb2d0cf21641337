import { InvalidArgumentError } from '@berth/errdefs';

/** The registry that short names (`busybox`, `user/app`) belong to. */
export const DEFAULT_REGISTRY = 'docker.io';
/** The Docker Hub repository prefix of one-component names (`busybox` → `library/busybox`). */
const OFFICIAL_PREFIX = 'library/';
/** The tag a reference with neither tag nor digest gets. */
export const DEFAULT_TAG = 'latest';
/** Longest repository name, registry included, that Docker accepts. */
const NAME_MAX_LENGTH = 255;

// The grammar of Docker's distribution reference, written out here piece by piece.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const REFERENCE = new RegExp(
  `^((?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`,
);
const DOMAIN_ONLY = new RegExp(`^${DOMAIN}$`);
const HEX_64 = /^[a-f0-9]{64}$/;
/** Hex lengths of the digest algorithms go-digest registers; other algorithms are refused. */
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/**
 * A normalized image reference: `docker.io/library/busybox:latest`,
 * `localhost:5000/app@sha256:…`. Create with {@link ImageReference.parse}.
 */
export class ImageReference {
  private constructor(
    /** Registry host[:port] the name belongs to (`docker.io`), what `?ns=` and hosts lookups use. */
    readonly registry: string,
    /** Repository path within the registry (`library/busybox`). */
    readonly repository: string,
    /** The tag, when the reference has one. */
    readonly tag: string | undefined,
    /** The digest, when the reference pins one. */
    readonly digest: string | undefined,
  ) {}

  /**
   * Parses and normalizes a reference as Docker does: a first component without `.` or `:`
   * that is not `localhost` (and is lowercase) is a Docker Hub path, one-component Hub names get
   * `library/`, `index.docker.io` becomes `docker.io`, and a reference with neither tag nor
   * digest gets `:latest`. Throws InvalidArgumentError with Docker's reason for anything else.
   */
  static parse(input: string): ImageReference {
    const fail = (reason: string) => new InvalidArgumentError(`parse "${input}": ${reason}`);
    if (input === '') throw fail('invalid reference format: repository name must have at least one component');
    if (HEX_64.test(input)) {
      throw fail(`invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`);
    }
    let [registry, remainder] = splitRegistry(input);
    if (registry === 'index.docker.io') registry = DEFAULT_REGISTRY;
    const nameEnd = remainder.search(/[:@]/);
    let path = nameEnd < 0 ? remainder : remainder.slice(0, nameEnd);
    if (registry === DEFAULT_REGISTRY && !path.includes('/')) {
      remainder = OFFICIAL_PREFIX + remainder;
      path = OFFICIAL_PREFIX + path;
    }
    if (path.toLowerCase() !== path) {
      throw fail(`invalid reference format: repository name (${path}) must be lowercase`);
    }

    const m = REFERENCE.exec(`${registry}/${remainder}`);
    if (!m || !DOMAIN_ONLY.test(registry)) throw fail('invalid reference format');
    const name = m[1];
    if (name.length > NAME_MAX_LENGTH) {
      throw fail(`invalid reference format: repository name must not be more than ${NAME_MAX_LENGTH} characters`);
    }
    const digest = m[3];
    if (digest !== undefined) checkReferenceDigest(digest, fail);
    const tag = m[2] ?? (digest === undefined ? DEFAULT_TAG : undefined);
    return new ImageReference(registry, name.slice(registry.length + 1), tag, digest);
  }

  /** Creates a reference from its parts, checking them as {@link parse} does. */
  static of(parts: { registry: string; repository: string; tag?: string; digest?: string }): ImageReference {
    let s = `${parts.registry}/${parts.repository}`;
    if (parts.tag !== undefined) s += `:${parts.tag}`;
    if (parts.digest !== undefined) s += `@${parts.digest}`;
    const ref = ImageReference.parse(s);
    if (ref.registry !== parts.registry || ref.repository !== parts.repository) {
      throw new InvalidArgumentError(`reference "${s}": registry and repository must already be normalized`);
    }
    return ref;
  }

  /** `registry/repository`, without tag or digest. */
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  /** What the `manifests/<…>` endpoint is asked for: the digest when pinned, otherwise the tag. */
  get object(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  /** Returns this reference pinned to a digest, keeping the tag (`name:tag@digest`). */
  withDigest(digest: string): ImageReference {
    return ImageReference.of({ registry: this.registry, repository: this.repository, tag: this.tag, digest });
  }

  /** Returns the full normalized form: `registry/repository[:tag][@digest]`. */
  toString(): string {
    return this.name + (this.tag !== undefined ? `:${this.tag}` : '') + (this.digest !== undefined ? `@${this.digest}` : '');
  }
}

/** Splits off the registry: the first component when it looks like a host, else Docker Hub. */
function splitRegistry(input: string): [string, string] {
  const slash = input.indexOf('/');
  if (slash < 0) return [DEFAULT_REGISTRY, input];
  const first = input.slice(0, slash);
  const looksLikeHost = /[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first;
  return looksLikeHost ? [first, input.slice(slash + 1)] : [DEFAULT_REGISTRY, input];
}

function checkReferenceDigest(digest: string, fail: (reason: string) => Error): void {
  const [algorithm, hex] = digest.split(':');
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) throw fail('unsupported digest algorithm');
  if (hex.length !== length) throw fail('invalid checksum digest length');
  if (!/^[a-f0-9]+$/.test(hex)) throw fail('invalid checksum digest format');
}
