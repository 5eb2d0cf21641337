import type { Provider, Manager } from '@berth/content';
import { isNotFound, wrap } from '@berth/errdefs';
import { PlatformMatcher } from './platforms';
import { ImageRef, OciDescriptor, resolveManifest } from './walk';

/** What {@link check} found (containerd's images.Check). */
export interface CheckResult {
  /** True when the manifest could be read (then `missing` lists what is absent). */
  available: boolean;
  /** Whether every required blob is present. */
  complete: boolean;
  /** The config and layers of the platform's manifest (or the root, when it is missing). */
  required: OciDescriptor[];
  present: OciDescriptor[];
  missing: OciDescriptor[];
}

/**
 * Checks that an image's blobs for a platform are in the content store: the manifest (through
 * the index), then its config and layers. A missing root or manifest makes the image unavailable.
 */
export async function check(content: Provider & Pick<Manager, 'info'>, image: ImageRef, platforms?: PlatformMatcher): Promise<CheckResult> {
  let resolved;
  try {
    resolved = await resolveManifest(content, image.target, platforms);
  } catch (err) {
    if (isNotFound(err)) return { available: false, complete: false, required: [image.target], present: [], missing: [image.target] };
    throw wrap(err, `failed to check image ${image.target.digest}`);
  }
  const required = [resolved.config, ...resolved.layers];
  const present: OciDescriptor[] = [];
  const missing: OciDescriptor[] = [];
  for (const d of required) {
    try {
      await content.info(d.digest);
      present.push(d);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      missing.push(d);
    }
  }
  return { available: true, complete: missing.length === 0, required, present, missing };
}
