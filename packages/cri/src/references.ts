import { UnknownError } from '@berth/errdefs';
import { ImageReference } from '@berth/remotes';

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Whether a string is an image id or digest (`sha256:<64 hex>`). */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/**
 * Normalizes an image name as containerd's `ParseDockerRef`: Docker Hub names get
 * `docker.io/library/`, a name without tag or digest gets `:latest`, and a name with both keeps
 * only the digest. Throws what `parse` throws (InvalidArgument with Docker's reason).
 */
export function parseDockerRef(name: string): ImageReference {
  const ref = ImageReference.parse(name);
  if (ref.digest !== undefined && ref.tag !== undefined) {
    return ImageReference.of({ registry: ref.registry, repository: ref.repository, digest: ref.digest });
  }
  return ref;
}

/** {@link parseDockerRef} as PullImage answers a bad name: Unknown `failed to parse image reference "<name>": <reason>`. */
export function parsePullReference(name: string): ImageReference {
  try {
    return parseDockerRef(name);
  } catch (err) {
    // Docker's reason alone, worded as the reference library containerd 1.6 vendors words it.
    const reason = (err as Error).message
      .replace(/^parse "[^]*?": /, '')
      .replace(/: invalid argument$/, '')
      .replace(/repository name \([^)]*\) must be lowercase/, 'repository name must be lowercase');
    throw new UnknownError(`failed to parse image reference ${JSON.stringify(name)}: ${reason}`, { cause: err });
  }
}

/**
 * Sorts an image's record names into what CRI reports: `repo_tags` (`name:tag`) and
 * `repo_digests` (`name@sha256:...`). Names that are not references (the image id record
 * `sha256:...`) are neither.
 */
export function repoTagsAndDigests(names: readonly string[]): { repoTags: string[]; repoDigests: string[] } {
  const repoTags: string[] = [];
  const repoDigests: string[] = [];
  for (const name of names) {
    if (isDigest(name)) continue;
    let ref: ImageReference;
    try {
      ref = ImageReference.parse(name);
    } catch {
      continue;
    }
    // As ParseAnyReference: a digest makes it a repo digest (with its tag, if any); else only an
    // explicit tag makes it a repo tag (a bare name is neither).
    if (ref.digest !== undefined) repoDigests.push(ref.toString());
    else if (hasExplicitTag(name)) repoTags.push(ref.toString());
  }
  return { repoTags, repoDigests };
}

/** Whether a name spells its tag (`x:1`, `host:5000/x:1`), not only a port or nothing. */
function hasExplicitTag(name: string): boolean {
  const at = name.indexOf('@');
  const bare = at < 0 ? name : name.slice(0, at);
  return bare.slice(bare.lastIndexOf('/') + 1).includes(':');
}
