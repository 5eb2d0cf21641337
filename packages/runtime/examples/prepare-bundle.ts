import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Bundle, resolveShimBinary } from '@berth/runtime';

/**
 * Prepares what a runtime v2 shim is started in, as the task manager does before `shim start`:
 * finds the shim binary of a runtime name on PATH, and lays out the task's bundle under `dir`
 * (config.json, an empty rootfs/ the shim mounts the rootfs on, and work/, a link to the task's
 * persistent directory). Returns the shim, the bundle's entries and where work/ points; the
 * bundle is deleted again, as after the task's delete.
 */
export async function prepareBundle(dir: string, spec: object): Promise<{ shim: string; entries: string[]; work: string }> {
  const shim = resolveShimBinary('io.containerd.runc.v2');
  const bundle = await Bundle.create(join(dir, 'state'), join(dir, 'root'), 'default', 'web', Buffer.from(JSON.stringify(spec)));
  try {
    return { shim, entries: readdirSync(bundle.path).sort(), work: readlinkSync(join(bundle.path, 'work')) };
  } finally {
    await bundle.delete();
  }
}
