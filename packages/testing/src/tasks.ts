/**
 * Helpers for running tasks on a test daemon: a busybox rootfs, an OCI spec, the shims a daemon
 * started, and the cleanup of everything they leave (tasks, shim processes, sockets, mounts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { containers } from '@berth/api';
import { unmountAll } from '@berth/mount';
import { defaultSpec } from '@berth/oci-spec';

export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));

/** Fills `dir` with a static busybox and the usual applet links. */
export function populateBusybox(dir: string): string {
  if (!BUSYBOX) throw new Error('busybox-static is not installed (apt-get install busybox-static)');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'run']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  execFileSync('chmod', ['0755', join(dir, 'bin/busybox')]);
  for (const applet of ['sh', 'echo', 'sleep', 'true', 'false', 'cat', 'ls', 'ps', 'tty', 'env']) symlinkSync('busybox', join(dir, 'bin', applet));
  return dir;
}

/**
 * containerd's default OCI spec (@berth/oci-spec's, which is what `ctr oci spec` prints with
 * containerd 2.x's masked paths), with the given args and a bundle-relative rootfs.
 */
export function ociSpec(args: string[], over: (spec: any) => void = () => undefined): any {
  const spec: any = defaultSpec('default', '');
  spec.process.args = args;
  spec.process.env = ['PATH=/bin'];
  spec.root = { path: 'rootfs' };
  // Without an id the default spec's cgroup is the namespace's own (/default), which every other
  // task of the namespace nests in; cgroup v1 refuses device rules on a cgroup with children, so
  // a task of another suite there made this one fail. runc names the cgroup after the task instead.
  delete spec.linux.cgroupsPath;
  over(spec);
  return spec;
}

/** The socket a runc v2 shim listens on for a task (a path compiled into the shim). */
export function shimSocket(address: string, namespace: string, id: string): string {
  return join('/run/containerd/s', createHash('sha256').update(`${address}/${namespace}/${id}`).digest('hex'));
}

/** The shims started for a daemon: pid, namespace and task id, from /proc. */
export function shimsOf(address: string): Array<{ pid: number; namespace: string; id: string }> {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`).toString().split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.endsWith('containerd-shim-runc-v2')) continue;
    const flag = (f: string) => argv[argv.indexOf(f) + 1];
    if (argv.indexOf('-address') < 0 || flag('-address') !== address) continue;
    out.push({ pid: Number(entry), namespace: flag('-namespace'), id: flag('-id') });
  }
  return out;
}

/**
 * Removes what a daemon's shims left: the runc containers (killed), the shim processes (by
 * pid), their sockets, and any mount under `dir`.
 */
export async function cleanupShims(address: string, dir: string): Promise<number> {
  const shims = shimsOf(address);
  for (const s of shims) {
    spawnSync('runc', ['--root', `/run/containerd/runc/${s.namespace}`, 'delete', '--force', s.id], { stdio: 'ignore' });
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(shimSocket(address, s.namespace, s.id), { force: true });
  }
  if (existsSync(dir)) await unmountAll(dir, { lazyFallback: true });
  return shims.length;
}

/**
 * Removes what a containerd namespace of a test's own (one named after the test process) leaves on
 * the host once its containers are gone, as containerd would leave it too: the empty `/<namespace>`
 * cgroup in each hierarchy (runc removes `/<namespace>/<id>` only) and runc's state root
 * `/run/containerd/runc/<namespace>`. Only empty ones: rmdir refuses the rest, which stay for a look.
 */
export function removeNamespaceLeftovers(namespace: string): void {
  if (namespace === '' || namespace.includes('/') || namespace === '.' || namespace === '..') throw new Error(`namespace ${JSON.stringify(namespace)}`);
  const cgroupRoot = '/sys/fs/cgroup';
  const hierarchies = existsSync(cgroupRoot) ? readdirSync(cgroupRoot).map((h) => join(cgroupRoot, h)) : [];
  for (const dir of [...hierarchies.map((h) => join(h, namespace)), join(cgroupRoot, namespace), join('/run/containerd/runc', namespace)]) {
    try {
      rmdirSync(dir);
    } catch {
      /* absent, not empty, or not a hierarchy */
    }
  }
}

/** Waits until `fn` returns true (polling), or fails after `ms`. */
export async function eventually(fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A runc container for the Containers API: `spec` as JSON, on a snapshot when one is named
 * (its mounts then go to Tasks.Create as the rootfs, and the spec's root is `rootfs`).
 */
export function runcContainer(id: string, spec: object, snapshot?: { snapshotter: string; key: string }, labels: Record<string, string> = {}): containers.Container {
  return {
    id,
    labels,
    image: '',
    runtime: { name: 'io.containerd.runc.v2', options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } },
    spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from(JSON.stringify(spec)) },
    snapshotter: snapshot?.snapshotter ?? '',
    snapshotKey: snapshot?.key ?? '',
    extensions: {},
  };
}
