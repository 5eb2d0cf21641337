import type { BerthClient, Image } from '@berth/client';
import type { Command } from 'commander';
import { withClient } from '../context';
import { CliError } from '../errors';
import { type Column, type ListingFormat, humanSize, printJson, printListing, since } from '../output';
import { showProgress } from '../progress';

/** An image's name split as Docker shows it: repository, tag, and the digest of its target. */
function nameParts(name: string): { repository: string; tag: string } {
  const at = name.indexOf('@');
  const base = at >= 0 ? name.slice(0, at) : name;
  const colon = base.lastIndexOf(':');
  if (colon > base.lastIndexOf('/')) return { repository: base.slice(0, colon), tag: base.slice(colon + 1) };
  return { repository: base, tag: '<none>' };
}

const imageJson = (i: Image) => ({
  ...nameParts(i.name),
  Name: i.name,
  ID: i.target.digest,
  MediaType: i.target.mediaType,
  Size: i.target.size,
  CreatedAt: i.createdAt?.toISOString() ?? '',
  Labels: i.labels,
});

const IMAGE_COLUMNS: Column<Image>[] = [
  { header: 'REPOSITORY', value: (i) => nameParts(i.name).repository },
  { header: 'TAG', value: (i) => nameParts(i.name).tag },
  { header: 'DIGEST', value: (i) => i.target.digest.replace(/^sha256:/, '').slice(0, 12) },
  { header: 'CREATED', value: (i) => since(i.createdAt) },
  { header: 'TARGET SIZE', value: (i) => humanSize(i.target.size) },
];

function listingOptions(cmd: Command): Command {
  return cmd
    .option('--format <format>', 'table (the default), json, or a template such as "{{.Name}}"')
    .option('--json', 'print JSON (the same as --format json)')
    .option('-q, --quiet', 'print names only');
}

/** Credentials from `--user name[:secret]` (the secret from BERTH_REGISTRY_SECRET if absent). */
function credentials(user: string | undefined) {
  if (!user) return undefined;
  const i = user.indexOf(':');
  const username = i < 0 ? user : user.slice(0, i);
  const secret = i < 0 ? (process.env.BERTH_REGISTRY_SECRET ?? '') : user.slice(i + 1);
  return () => ({ username, secret });
}

interface RegistryFlags {
  plainHttp?: boolean;
  hostsDir?: string;
  user?: string;
  platform?: string;
  allPlatforms?: boolean;
}

function registryOptions(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'speak plain HTTP to the registry')
    .option('--hosts-dir <dir>', 'a directory of hosts.toml files (containerd certs.d layout)')
    .option('-u, --user <name[:secret]>', 'registry credentials');
}

function platformOf(p: string | undefined) {
  if (!p) return undefined;
  const [os = '', architecture = '', variant] = p.split('/');
  if (!os || !architecture) throw new CliError(`invalid platform "${p}": want os/arch[/variant]`);
  return [{ os, architecture, ...(variant ? { variant } : {}) }];
}

export async function pullImage(client: BerthClient, reference: string, flags: RegistryFlags, out: NodeJS.WriteStream): Promise<void> {
  const platforms = platformOf(flags.platform);
  const creds = credentials(flags.user);
  const op = client.pull(reference, {
    ...(flags.plainHttp ? { plainHttp: true } : {}),
    ...(flags.hostsDir ? { hostsDir: flags.hostsDir } : {}),
    ...(creds ? { credentials: creds } : {}),
    ...(platforms ? { platforms } : {}),
    ...(flags.allPlatforms ? { allPlatforms: true } : {}),
  });
  await showProgress(op, out, 'pulled', reference);
}

/**
 * Removes the images no container uses: the untagged ones (a bare name, or a name by digest),
 * or every one with `all`. Answers the names removed (`images prune` and `system prune`).
 */
export async function pruneImages(client: BerthClient, all: boolean): Promise<string[]> {
  const used = new Set((await client.containers.list()).map((c) => c.image));
  const removed: string[] = [];
  for (const img of await client.images.list()) {
    if (used.has(img.name)) continue;
    if (!all && nameParts(img.name).tag !== '<none>' && !img.name.includes('@')) continue;
    await client.images.delete(img.name);
    removed.push(img.name);
  }
  return removed;
}

/** `berth pull`, `berth push` and `berth images ...`. */
export function registerImageCommands(program: Command): void {
  registryOptions(program.command('pull').description('pull an image from a registry and unpack it').argument('<reference>'))
    .option('--platform <os/arch[/variant]>', 'the platform to pull (the host by default)')
    .option('--all-platforms', 'pull every platform (unpacks none)')
    .action(async (reference: string, flags: RegistryFlags, cmd: Command) => {
      await withClient(cmd, (client) => pullImage(client, reference, flags, process.stdout));
    });

  registryOptions(program.command('push').description('push an image to a registry').argument('<reference>').argument('[local]', 'the local image name (the reference by default)'))
    .option('--platform <os/arch[/variant]>', 'push only this platform')
    .action(async (reference: string, local: string | undefined, flags: RegistryFlags, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const platforms = platformOf(flags.platform);
        const creds = credentials(flags.user);
        const op = client.push(reference, {
          ...(local ? { source: local } : {}),
          ...(flags.plainHttp ? { plainHttp: true } : {}),
          ...(flags.hostsDir ? { hostsDir: flags.hostsDir } : {}),
          ...(creds ? { credentials: creds } : {}),
          ...(platforms ? { platforms } : {}),
        });
        await showProgress(op, process.stdout, 'pushed', reference);
      });
    });

  const images = program.command('images').alias('image').description('manage images');

  listingOptions(images.command('ls', { isDefault: true }).alias('list').description('list images').argument('[filters...]', 'containerd filters, e.g. name~=busybox')).action(
    async (filters: string[], f: ListingFormat, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const list = (await client.images.list(filters)).sort((a, b) => a.name.localeCompare(b.name));
        printListing(process.stdout, list, IMAGE_COLUMNS, imageJson, f, (i) => i.name);
      });
    },
  );

  images
    .command('inspect')
    .description('show image records as JSON')
    .argument('<name...>')
    .action(async (names: string[], _f: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const found = [];
        for (const n of names) found.push(await client.images.get(n));
        printJson(process.stdout, found);
      });
    });

  images
    .command('rm')
    .alias('remove')
    .description('remove images (their content goes with the next garbage collection)')
    .argument('<name...>')
    .option('--sync', 'wait for the garbage collection')
    .action(async (names: string[], f: { sync?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        for (const n of names) {
          await client.images.delete(n, { sync: !!f.sync });
          process.stdout.write(`${n}\n`);
        }
      });
    });

  images
    .command('tag')
    .description('give an image another name')
    .argument('<source>')
    .argument('<target...>')
    .option('-f, --force', 'replace a target that exists')
    .action(async (source: string, targets: string[], f: { force?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const img = await client.images.get(source);
        for (const t of targets) {
          if (f.force && (await client.images.exists(t))) await client.images.update({ name: t, target: img.target, labels: img.labels }, ['target', 'labels']);
          else await client.images.create({ name: t, target: img.target, labels: img.labels });
          process.stdout.write(`${t}\n`);
        }
      });
    });

  images
    .command('prune')
    .description('remove images no container uses (with --all; without it, only untagged ones)')
    .option('-a, --all', 'remove every image no container uses')
    .action(async (f: { all?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        for (const name of await pruneImages(client, !!f.all)) process.stdout.write(`deleted ${name}\n`);
      });
    });
}
