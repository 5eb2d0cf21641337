/*
 * Resolving `user`, `uid`, `user:group` or `uid:gid` against the image's /etc/passwd and
 * /etc/group, as containerd's WithUser does. containerd mounts the snapshot to read them; this
 * reads the files straight from the snapshot's directories instead (the overlay's upper, then
 * lower directories in order; a bind mount's source), which needs no mount and no privilege
 * beyond reading the daemon's snapshot directories. The caller therefore has to run on the
 * daemon's machine (as a client on the daemon's unix socket does).
 */
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@berth/errdefs';
import type { ResolvedUser } from './spec';

/** A mount as the Snapshots API returns it. */
export interface RootfsMount {
  type: string;
  source: string;
  options: string[];
}

/** Reads a file of a snapshot, given its mounts; undefined when absent or deleted by a whiteout. */
export function rootfsFileReader(mounts: readonly RootfsMount[]): (path: string) => Buffer | undefined {
  const dirs: string[] = [];
  for (const m of mounts) {
    if (m.type === 'bind' || m.type === 'rbind' || m.options.includes('bind') || m.options.includes('rbind')) dirs.push(m.source);
    else if (m.type === 'overlay') {
      const opt = (name: string) => m.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1);
      const upper = opt('upperdir');
      if (upper) dirs.push(upper);
      dirs.push(...(opt('lowerdir') ?? '').split(':').filter((d) => d !== ''));
    } else throw new InvalidArgumentError(`cannot read files from a ${m.type} mount without mounting it`);
  }
  return (path) => {
    const rel = path.replace(/^\/+/, '');
    for (const dir of dirs) {
      const file = join(dir, rel);
      if (!existsSync(file)) {
        // A deleted file is a 0/0 character device in an overlay layer: stop looking below.
        continue;
      }
      const st = lstatSync(file);
      if (st.isCharacterDevice() && st.rdev === 0) return undefined;
      if (st.isFile()) return readFileSync(file);
      return undefined;
    }
    return undefined;
  };
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const lines = (b: Buffer | undefined) =>
  (b?.toString('utf8') ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

function parsePasswd(b: Buffer | undefined): PasswdEntry[] {
  return lines(b).map((l) => {
    const f = l.split(':');
    return { name: f[0], uid: Number(f[2]), gid: Number(f[3]) };
  });
}

function parseGroup(b: Buffer | undefined): GroupEntry[] {
  return lines(b).map((l) => {
    const f = l.split(':');
    return { name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter((m) => m !== '') };
  });
}

const numeric = (s: string) => /^\d+$/.test(s);

/**
 * Resolves a user string against the files `read` returns (/etc/passwd, /etc/group): numbers
 * are taken as they are (a uid alone gets its passwd gid, else 0); names must exist. The
 * supplementary groups are those of /etc/group that list the user by name, as containerd's
 * WithAdditionalGIDs adds them.
 */
export function resolveUser(user: string, read: (path: string) => Buffer | undefined): ResolvedUser {
  if (user === '') return { uid: 0, gid: 0 };
  const [u, g] = user.split(':', 2);
  const passwd = parsePasswd(read('/etc/passwd'));
  const groups = () => parseGroup(read('/etc/group'));
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (numeric(u)) {
    uid = Number(u);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === u);
    if (!entry) throw new NotFoundError(`no user "${u}" in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid: number;
  if (g === undefined || g === '') gid = entry?.gid ?? 0;
  else if (numeric(g)) gid = Number(g);
  else {
    const group = groups().find((x) => x.name === g);
    if (!group) throw new NotFoundError(`no group "${g}" in the image's /etc/group`);
    gid = group.gid;
  }
  const additionalGids = entry
    ? groups()
        .filter((x) => x.members.includes(entry.name) && x.gid !== gid)
        .map((x) => x.gid)
    : [];
  return { uid, gid, additionalGids };
}
