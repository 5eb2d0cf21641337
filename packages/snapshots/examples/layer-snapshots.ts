import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { context } from '@berth/context';
import { withTempMount } from '@berth/mount';
import { OverlaySnapshotter } from '@berth/snapshots';

/**
 * Builds two layers with the overlayfs snapshotter in `dir`, as an unpack does: prepare an active
 * snapshot, mount it, write the layer's files, commit it under a name, and prepare the next one on
 * top. A read-only view of the top layer then shows both. Returns what the view shows and the
 * snapshots by name with their kinds. Needs root and overlayfs.
 */
export async function layerSnapshots(dir: string): Promise<{ files: string[]; config: string; snapshots: string[] }> {
  const snapshotter = OverlaySnapshotter.open(dir);
  const ctx = context();
  try {
    const layer = async (name: string, parent: string, files: Record<string, string>) => {
      const mounts = await snapshotter.prepare(ctx, `extract-${name}`, parent);
      await withTempMount(mounts, (root) => {
        for (const [path, data] of Object.entries(files)) writeFileSync(join(root, path), data);
      });
      await snapshotter.commit(ctx, name, `extract-${name}`, { labels: { 'example.com/layer': name } });
    };
    await layer('base', '', { 'os-release': 'ID=example\n', 'config.json': '{"debug":false}\n' });
    await layer('app', 'base', { 'app.js': 'console.log("hi")\n', 'config.json': '{"debug":true}\n' });
    const view = await snapshotter.view(ctx, 'inspect', 'app');
    const seen = await withTempMount(view, (root) => ({ files: readdirSync(root).sort(), config: readFileSync(join(root, 'config.json'), 'utf8') }));
    const snapshots: string[] = [];
    await snapshotter.walk(ctx, (info) => void snapshots.push(`${info.name} ${info.kind} parent=${info.parent}`));
    return { ...seen, snapshots };
  } finally {
    await snapshotter.close();
  }
}
