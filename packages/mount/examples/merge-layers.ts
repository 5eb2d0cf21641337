import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Mount, isMountPoint, withTempMount } from '@berth/mount';

/**
 * Merges two layer directories under a writable one with overlayfs, as an overlay snapshotter's
 * mounts do, writes a file into the merged tree, and reports what the tree showed, that it was a
 * mount point while in use, and that the new file landed in the upper directory. Needs root.
 */
export async function mergeLayers(dir: string): Promise<{ merged: string[]; mounted: boolean; upper: string[] }> {
  const [lower, middle, upper, work] = ['lower', 'middle', 'upper', 'work'].map((d) => join(dir, d));
  for (const d of [lower, middle, upper, work]) mkdirSync(d, { recursive: true });
  writeFileSync(join(lower, 'hostname'), 'base\n');
  writeFileSync(join(middle, 'app.js'), 'console.log("hi")\n');
  const overlay: Mount = { type: 'overlay', source: 'overlay', options: [`lowerdir=${middle}:${lower}`, `upperdir=${upper}`, `workdir=${work}`] };
  const seen = await withTempMount(
    [overlay],
    (root) => {
      writeFileSync(join(root, 'written'), 'new\n');
      return { merged: readdirSync(root).sort(), mounted: isMountPoint(root) };
    },
    { parent: dir },
  );
  // withTempMount has unmounted the tree and removed its directory by now.
  return { ...seen, upper: readdirSync(upper).sort() };
}
