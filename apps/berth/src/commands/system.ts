import type { Command } from 'commander';
import { globalOptions, withClient } from '../context';
import { CliError } from '../errors';
import { type Column, type ListingFormat, parsePairs, printJson, printListing } from '../output';
import { runVersion } from '../version';

/** `berth version`, `info`, `events` and `namespaces`. */
export function registerSystemCommands(program: Command): void {
  program
    .command('version')
    .description("print the client's and the daemon's versions")
    .option('--json', 'print JSON')
    .action(async (f: { json?: boolean }, cmd: Command) => {
      const { address, connectTimeout } = globalOptions(cmd);
      process.exitCode = await runVersion({ address, connectTimeout, json: f.json === true });
    });

  program
    .command('info')
    .description("show the daemon's identity and plugins")
    .option('--json', 'print JSON')
    .action(async (f: { json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client, g) => {
        const [version, server, plugins, namespaces] = await Promise.all([client.version(), client.introspection.server(), client.introspection.plugins(), client.namespaces.list()]);
        const failed = plugins.filter((p) => p.error !== undefined);
        const snapshotters = plugins.filter((p) => p.type === 'io.containerd.snapshotter.v1' && p.error === undefined).map((p) => p.id);
        const info = { address: g.address, version: version.version, revision: version.revision, uuid: server.uuid, namespaces: namespaces.map((n) => n.name), snapshotters, plugins: { total: plugins.length, failed: failed.map((p) => ({ type: p.type, id: p.id, error: p.error })) } };
        if (f.json) return printJson(process.stdout, info);
        process.stdout.write(
          [
            `Address:      ${info.address}`,
            `Version:      ${info.version} (${info.revision})`,
            `UUID:         ${info.uuid}`,
            `Namespaces:   ${info.namespaces.join(', ') || '(none)'}`,
            `Snapshotters: ${snapshotters.join(', ')}`,
            `Plugins:      ${plugins.length} loaded, ${failed.length} failed`,
            ...failed.map((p) => `  ${p.type}.${p.id}: ${p.error}`),
            '',
          ].join('\n'),
        );
      });
    });

  program
    .command('events')
    .description("print the daemon's events as they happen (every namespace unless filtered)")
    .option('-f, --filter <filter>', 'containerd event filter, e.g. topic~="/tasks/" (repeatable)', (v: string, prev: string[] = []) => [...prev, v], [])
    .option('--json', 'one JSON object per line')
    .action(async (f: { filter: string[]; json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const abort = new AbortController();
        const stop = () => abort.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          for await (const e of client.events(f.filter, { signal: abort.signal })) {
            if (f.json) process.stdout.write(`${JSON.stringify({ timestamp: e.timestamp, namespace: e.namespace, topic: e.topic, type: e.typeUrl, event: e.event })}\n`);
            else process.stdout.write(`${e.timestamp?.toISOString() ?? ''} ${e.namespace} ${e.topic} ${JSON.stringify(e.event ?? {})}\n`);
          }
        } catch (err) {
          if (!abort.signal.aborted) throw err;
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      });
    });

  const ns = program.command('namespaces').alias('ns').description('manage namespaces');
  const nsColumns: Column<{ name: string; labels: Record<string, string> }>[] = [
    { header: 'NAME', value: (n) => n.name },
    {
      header: 'LABELS',
      value: (n) =>
        Object.entries(n.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
    },
  ];
  ns.command('ls', { isDefault: true })
    .alias('list')
    .description('list namespaces')
    .option('--format <format>', 'table (the default), json, or a template such as "{{.Name}}"')
    .option('--json', 'print JSON')
    .option('-q, --quiet', 'print names only')
    .action(async (f: ListingFormat, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const list = (await client.namespaces.list()).sort((a, b) => a.name.localeCompare(b.name));
        printListing(process.stdout, list, nsColumns, (n) => ({ Name: n.name, Labels: n.labels }), f, (n) => n.name);
      });
    });
  ns.command('create')
    .description('create a namespace')
    .argument('<name>')
    .argument('[labels...]', 'KEY=value labels')
    .action(async (name: string, labels: string[], _f: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        await client.namespaces.create(name, parsePairs(labels));
      });
    });
  ns.command('rm')
    .alias('remove')
    .description('remove empty namespaces')
    .argument('<name...>')
    .option('-f, --force', 'remove everything in the namespace first (tasks, containers, images, leases, snapshots, content references)')
    .action(async (names: string[], f: { force?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        for (const n of names) {
          if (f.force) {
            const r = await client.system.deleteNamespace(n, { cascade: true });
            process.stdout.write(`${n}: removed ${r.tasks} tasks, ${r.containers} containers, ${r.images} images, ${r.leases} leases, ${r.snapshots} snapshots, ${r.blobs} blob references, ${r.ingests} ingests\n`);
          } else {
            await client.namespaces.delete(n);
            process.stdout.write(`${n}\n`);
          }
        }
      });
    });
}
