import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlreadyExists, isInvalidArgument } from '@berth/errdefs';
import { rejectionOf, tempDir } from '@berth/testing';
import { DEFAULT_NETNS_ROOT, createNetns, isNetns, removeNetns } from './netns';

const links = (netns: string) => execFileSync('nsenter', [`--net=${netns}`, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(': ')[1]);
const mounted = (path: string) => execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).split('\n').some((l) => l.split(' ')[4] === path);

describe('network namespaces', () => {
  let dir: ReturnType<typeof tempDir>;
  const made: string[] = [];
  beforeEach(() => (dir = tempDir('berth-netns-')));
  afterEach(async () => {
    for (const p of made.splice(0)) await removeNetns(p);
    dir.remove();
  });

  it('creates a persistent, empty namespace of its own under a chosen root, named cni-<uuid>', async () => {
    const root = join(dir.path, 'netns');
    const a = await createNetns({ root });
    const b = await createNetns({ root });
    made.push(a, b);
    expect(readdirSync(root).sort()).toEqual([a, b].map((p) => p.slice(root.length + 1)).sort());
    expect(a).toMatch(/\/cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect([isNetns(a), mounted(a)]).toEqual([true, true]);
    // A namespace of its own: only a (down) loopback, and not the host's or the other one's.
    expect(links(a)).toEqual(['lo']);
    const ino = (p: string) => statSync(p).ino;
    expect(new Set([ino(a), ino(b), ino('/proc/self/ns/net')]).size).toBe(3);
  });

  it('removes a namespace, and again, and a path that never existed', async () => {
    const p = await createNetns({ root: dir.path });
    await removeNetns(p);
    expect([existsSync(p), mounted(p), isNetns(p)]).toEqual([false, false, false]);
    await removeNetns(p);
    await removeNetns(join(dir.path, 'never'));
    await removeNetns('');
  });

  it('removes a half-made one: the file without its mount', async () => {
    const p = join(dir.path, 'cni-half');
    writeFileSync(p, '');
    expect(isNetns(p)).toBe(false);
    await removeNetns(p);
    expect(existsSync(p)).toBe(false);
  });

  it('refuses a name in use and a name that is not a file name', async () => {
    const p = await createNetns({ root: dir.path, name: 'taken' });
    made.push(p);
    expect(isAlreadyExists(await rejectionOf(createNetns({ root: dir.path, name: 'taken' })))).toBe(true);
    // The refused attempt did not disturb the namespace that holds the name.
    expect(isNetns(p)).toBe(true);
    for (const name of ['', '..', 'a/b']) expect(isInvalidArgument(await rejectionOf(createNetns({ root: dir.path, name })))).toBe(true);
  });

  it('puts namespaces where `ip netns` finds them by default', async () => {
    const name = `berth-test-${randomBytes(4).toString('hex')}`;
    const p = await createNetns({ name });
    made.push(p);
    expect(p).toBe(join(DEFAULT_NETNS_ROOT, name));
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toContain(name);
    expect(execFileSync('ip', ['netns', 'exec', name, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' })).toMatch(/^1: lo:/);
    await removeNetns(p);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(name);
  });
});
