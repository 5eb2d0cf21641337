import type { NamespaceUsage, Reference } from '@berth/client';
import type { Command } from 'commander';
import { withClient } from '../context';
import { CliError } from '../errors';
import { type Column, humanSize, printJson, printListing } from '../output';
import { pruneImages } from './images';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

function describe(r: Reference): string {
  const what = r.kind === 'snapshots' && r.id.length === 2 ? `snapshot ${r.id[0]}/${r.id[1]}` : `${r.kind.replace(/s$/, '')} ${r.id.join('/')}`;
  return r.via === 'root' ? what : `${what} (${r.via})`;
}

const DF_COLUMNS: Column<NamespaceUsage>[] = [
  { header: 'NAMESPACE', value: (n) => n.name },
  { header: 'IMAGES', value: (n) => String(n.images) },
  { header: 'CONTAINERS', value: (n) => String(n.containers) },
  { header: 'SNAPSHOTS', value: (n) => `${n.snapshots.total.count} (${humanSize(n.snapshots.total.bytes)})` },
  { header: 'CONTENT', value: (n) => `${n.content.total.count} (${humanSize(n.content.total.bytes)})` },
  { header: 'SHARED', value: (n) => humanSize(n.snapshots.shared.bytes + n.content.shared.bytes) },
  { header: 'EXCLUSIVE', value: (n) => humanSize(n.snapshots.exclusive.bytes + n.content.exclusive.bytes) },
];

/** `berth system df`, `system prune`, `gc` and `gc explain` (Berth's own services). */
export function registerGcCommands(program: Command): void {
  const system = program.command('system').description('disk use and cleanup');
  system
    .command('df')
    .description('disk use per namespace: images, containers, snapshots, content; shared and exclusive bytes')
    .option('--json', 'print JSON')
    .action(async (f: { json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const usage = await client.system.usage();
        if (f.json) return printJson(process.stdout, usage);
        printListing(process.stdout, usage.namespaces, DF_COLUMNS, (n) => ({ ...n }), {});
        process.stdout.write(`\nTotal (each blob and snapshot once): snapshots ${usage.snapshots.count} (${humanSize(usage.snapshots.bytes)}), content ${usage.content.count} (${humanSize(usage.content.bytes)}), ingests ${usage.ingests.count} (${humanSize(usage.ingests.bytes)})\n`);
      });
    });
  system
    .command('prune')
    .description('remove stopped containers and images no container uses, then collect garbage')
    .option('-a, --all', 'remove every image no container uses (not only untagged ones)')
    .option('-f, --force', 'do not ask')
    .action(async (f: { all?: boolean; force?: boolean }, cmd: Command) => {
      if (!f.force) throw new CliError('system prune removes stopped containers and unused images of the namespace: run it with --force');
      await withClient(cmd, async (client) => {
        let containers = 0;
        for (const info of await client.containers.list()) {
          const c = await client.containers.get(info.id);
          let task;
          try {
            task = await c.task();
          } catch {
            task = undefined;
          }
          if (task) {
            const s = await task.status();
            if (s.status === 'running' || s.status === 'paused' || s.status === 'pausing') continue;
            await task.delete();
          }
          await c.delete();
          containers++;
        }
        const images = (await pruneImages(client, !!f.all)).length;
        const gc = await client.system.collect();
        const blobs = gc.removed.blobs ?? 0;
        const snapshots = gc.removed.snapshots ?? 0;
        process.stdout.write(`removed ${containers} containers, ${images} images; collected ${blobs} blobs and ${snapshots} snapshots\n`);
      });
    });

  const gc = program.command('gc').description('garbage collection');
  gc.command('run', { isDefault: true })
    .description('collect garbage now')
    .option('--json', 'print JSON')
    .action(async (f: { json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const r = await client.system.collect();
        if (f.json) return printJson(process.stdout, r);
        const removed = Object.entries(r.removed).filter(([, n]) => n > 0);
        process.stdout.write(`collected in ${r.totalMs.toFixed(1)} ms (database held ${r.pauseMs.toFixed(1)} ms): ${removed.length ? removed.map(([k, n]) => `${n} ${k}`).join(', ') : 'nothing to remove'}\n`);
        if (r.skipped.length > 0) process.stdout.write(`skipped namespaces: ${r.skipped.join(', ')}\n`);
      });
    });
  gc.command('explain')
    .description('why a blob (sha256:...) or a snapshot (SNAPSHOTTER/KEY) is kept: the chain of references from a root')
    .argument('<ref>', 'a blob digest, or snapshotter/key')
    .option('--json', 'print JSON')
    .action(async (ref: string, f: { json?: boolean }, cmd: Command) => {
      let what: { digest: string } | { snapshotter: string; key: string };
      if (DIGEST.test(ref)) what = { digest: ref };
      else {
        const i = ref.indexOf('/');
        if (i <= 0 || i === ref.length - 1) throw new CliError(`"${ref}" is neither a digest (sha256:<64 hex>) nor snapshotter/key`);
        what = { snapshotter: ref.slice(0, i), key: ref.slice(i + 1) };
      }
      await withClient(cmd, async (client) => {
        const r = await client.system.explain(what);
        if (f.json) return printJson(process.stdout, r);
        if (!r.referenced) {
          process.stdout.write(`${ref}: unreferenced; the next garbage collection removes it${r.skipped ? ' (unless the namespace is skipped again)' : ''}\n`);
          return;
        }
        process.stdout.write(`${ref} is kept by:\n`);
        r.chain.forEach((link, i) => process.stdout.write(`${'  '.repeat(i + 1)}${i === 0 ? '' : '-> '}${describe(link)}\n`));
        const root = r.chain[0];
        const others = r.keptBy.filter((k) => !root || k.kind !== root.kind || k.id.join('/') !== root.id.join('/'));
        if (others.length > 0) process.stdout.write(`also kept by: ${others.map(describe).join(', ')}\n`);
      });
    });
}
