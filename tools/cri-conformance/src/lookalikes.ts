/**
 * Look-alikes of the images critest v1.37's container specs run, built from Debian's busybox
 * (busybox-static; for the busybox image its dynamic build when present), since critest's real
 * images cannot be fetched here. Each one reproduces what the specs observe of the real image,
 * and says so next to it; what the look-alikes cannot reproduce is in known-causes.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BUSYBOX_PATH, type BuiltImage, type LayerEntry, buildImage, dir, file, hardlink } from '@berth/fixtures';
import { BUSYBOX_DYNAMIC_PATH, CRITEST_STAGING } from '@berth/testing';

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A look-alike to push: repository path (under a mirrored registry), tag and image. */
export interface Lookalike {
  repo: string;
  tag: string;
  image: BuiltImage;
}

/** Every applet a busybox binary has (`busybox --list`), sorted. */
export function busyboxApplets(binary = BUSYBOX_PATH): string[] {
  return execFileSync(binary, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

/** The shared libraries a binary loads and its loader, as `ldd` names them (absolute paths). */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  return [...out.matchAll(/(?:=> )?(\/\S+) \(0x[0-9a-f]+\)/g)].map((m) => m[1]).sort();
}

/** Entries for files at their absolute paths (contents read through symlinks), with their directories. */
function filesAt(paths: readonly string[]): LayerEntry[] {
  const dirs = new Set<string>();
  for (const p of paths) for (let d = dirname(p); d !== '/'; d = dirname(d)) dirs.add(d);
  return [...[...dirs].sort().map((d) => dir(d.slice(1))), ...paths.map((p) => file(p.slice(1), readFileSync(p), 0o755))];
}

/**
 * `pgrep [-f] PATTERN`: Debian's busybox has no pgrep applet, and "execSync with timeout" runs
 * `pgrep sleep` to check that the timed-out process is gone. Matches the process name (or with
 * `-f` the command line) against an extended regex, never itself; exit 1 when nothing matches.
 */
const PGREP = `#!/bin/sh
# pgrep for the critest look-alike: Debian's busybox has no pgrep applet.
full=
while [ $# -gt 1 ]; do
  case $1 in
    -f) full=1 ;;
    *) echo "pgrep: unsupported option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -eq 1 ] || { echo "usage: pgrep [-f] PATTERN" >&2; exit 2; }
status=1
for d in /proc/[0-9]*; do
  pid=\${d#/proc/}
  [ "$pid" = "$$" ] && continue
  name=
  {
    if [ -n "$full" ]; then name=$(tr '\\0' ' ' < "$d/cmdline"); else read -r name < "$d/comm"; fi
  } 2>/dev/null
  [ -n "$name" ] || continue
  if printf '%s\\n' "$name" | grep -Eq -- "$1"; then echo "$pid"; status=0; fi
done
exit $status
`;

/**
 * `ipcs -m`: Debian's busybox has no ipcs applet, and the HostIpc specs look for the id of a
 * segment made on the host in its output. Reads /proc/sysvipc/shm (the caller's IPC namespace)
 * and prints util-linux's columns.
 */
const IPCS = `#!/bin/sh
# ipcs -m for the critest look-alike: Debian's busybox has no ipcs applet.
case "\${1:--m}" in
  -m) ;;
  *) echo "ipcs: only -m is supported here" >&2; exit 1 ;;
esac
echo
echo "------ Shared Memory Segments --------"
printf '%-10s %-10s %-10s %-10s %-10s %-10s %-12s\\n' key shmid owner perms bytes nattch status
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
  [ "$key" -lt 0 ] && key=$((key + 4294967296))
  printf '0x%08x %-10s %-10s %-10s %-10s %-10s\\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done
`;

/**
 * The root of a busybox image as registry.k8s.io/e2e-test-images/busybox lays it out; `mode` is
 * /bin/busybox's (every hard link repeats it: unpackers chmod a hard link to its own header's
 * mode, which is the shared inode's); `binary` a busybox other than busybox-static, whose shared
 * libraries then come along at their paths.
 */
function busyboxRoot(extra: { passwd?: string; group?: string; mode?: number; binary?: string } = {}): LayerEntry[] {
  const mode = extra.mode ?? 0o755;
  const binary = extra.binary ?? BUSYBOX_PATH;
  return [
    dir('bin'),
    file('bin/busybox', readFileSync(binary), mode),
    // Hard links, as in the real image: a masked /bin/ls then hides ls and not every applet
    // (a symlink would mask /bin/busybox itself).
    ...busyboxApplets(binary)
      .filter((a) => a !== 'busybox')
      .map((a) => hardlink(`bin/${a}`, 'bin/busybox', mode)),
    ...(binary === BUSYBOX_PATH ? [] : filesAt(sharedLibraries(binary))),
    file('bin/pgrep', PGREP, 0o755),
    file('bin/ipcs', IPCS, 0o755),
    dir('dev'),
    dir('etc'),
    file('etc/passwd', `root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n${extra.passwd ?? ''}nobody:x:65534:65534:nobody:/home:/bin/false\n`),
    file('etc/group', `root:x:0:\ndaemon:x:1:\nwww-data:x:33:\n${extra.group ?? ''}nogroup:x:65534:\n`),
    dir('home'),
    dir('proc'),
    dir('root', 0o700),
    dir('sys'),
    dir('tmp', 0o1777),
    dir('usr'),
    dir('usr/bin'),
    dir('usr/sbin'),
    dir('var'),
    dir('var/run'),
    dir('var/www'),
  ];
}

/**
 * `registry.k8s.io/e2e-test-images/busybox:1.29-2`: every applet, plus pgrep and ipcs. Its busybox
 * is Debian's dynamically linked one when tools/reference-tools.sh has unpacked it (`binary`):
 * like the real image's, its sh runs what PATH finds, so a masked /bin/ls cannot run (MaskedPaths);
 * busybox-static's sh runs its own ls whatever /bin/ls is.
 */
export function e2eBusybox(binary: string | undefined = BUSYBOX_DYNAMIC_PATH): Promise<BuiltImage> {
  return buildImage({ name: 'e2e-test-images/busybox:1.29-2', layers: [{ entries: busyboxRoot({ binary }) }], runConfig: { Env: [PATH_ENV], Cmd: ['sh'] } });
}

/**
 * A web server script that runs busybox httpd on `port` in the background and stays PID 1's
 * shell, so that SIGTERM (which PID 1 would ignore by default) stops it at once.
 */
function serve(port: number, root: string): string {
  return `httpd -f -p ${port} -h ${root} &
trap 'kill $! 2>/dev/null; exit 0' TERM INT QUIT
wait
`;
}

/**
 * `registry.k8s.io/e2e-test-images/nginx:1.14-2` (and the hostnet-nginx image, on 12003): what the
 * specs see of nginx is a process named `nginx` whose command line says `master process` (ContainerPID
 * greps /proc/1/cmdline, HostPID runs `pidof nginx`), its pid in /var/run/nginx.pid, and a page
 * answering 200 on the port (port mapping, portforward). The script re-executes itself once so
 * that its command line carries `master process`; the kernel names a script's process after the
 * script, so pidof finds `nginx`.
 */
export function nginxLookalike(port: number): Promise<BuiltImage> {
  const script = `#!/bin/sh
# nginx look-alike for critest: busybox httpd serving /usr/share/nginx/html on port ${port}.
[ "$1" = "master process" ] || exec /usr/sbin/nginx "master process" "$@"
echo $$ > /var/run/nginx.pid
${serve(port, '/usr/share/nginx/html')}`;
  const entries = [
    ...busyboxRoot(),
    file('usr/sbin/nginx', script, 0o755),
    dir('usr/share'),
    dir('usr/share/nginx'),
    dir('usr/share/nginx/html'),
    file('usr/share/nginx/html/index.html', '<html><body><p>nginx look-alike (busybox httpd)</p></body></html>\n'),
  ];
  return buildImage({ name: `nginx-lookalike:${port}`, layers: [{ entries }], runConfig: { Env: [PATH_ENV], Cmd: ['nginx', '-g', 'daemon off;'], StopSignal: 'SIGTERM' } });
}

/**
 * `registry.k8s.io/e2e-test-images/httpd:2.4.39-4`: a page answering 200 on :80 (Multiple
 * Containers network) and a first log line that names httpd (Multiple Containers log: Apache's
 * start-up warning does).
 */
export function httpdLookalike(): Promise<BuiltImage> {
  const script = `#!/bin/sh
# Apache httpd look-alike for critest: busybox httpd serving /usr/local/apache2/htdocs on port 80.
echo "httpd (busybox look-alike): serving /usr/local/apache2/htdocs on port 80" >&2
${serve(80, '/usr/local/apache2/htdocs')}`;
  const entries = [
    ...busyboxRoot(),
    dir('usr/local'),
    dir('usr/local/bin'),
    file('usr/local/bin/httpd-foreground', script, 0o755),
    dir('usr/local/apache2'),
    dir('usr/local/apache2/htdocs'),
    file('usr/local/apache2/htdocs/index.html', '<html><body><h1>It works! (busybox look-alike)</h1></body></html>\n'),
  ];
  return buildImage({ name: 'httpd-lookalike', layers: [{ entries }], runConfig: { Env: [PATH_ENV], Cmd: ['httpd-foreground'], StopSignal: 'SIGTERM' } });
}

/**
 * `registry.k8s.io/e2e-test-images/nonewprivs:1.3`: a set-user-ID-root program that prints
 * `Effective uid: <euid>`. Here busybox is set-user-ID root and /etc/busybox.conf lets only `id`
 * keep root (busybox drops it for every other applet). Under no_new_privs the kernel ignores the
 * set-user-ID bit, `/bin/id` cannot take root and fails (`id: setresuid: Operation not
 * permitted`), and the entrypoint then prints the uid it runs as, from /proc/self/status: 0
 * exactly when the escalation happened.
 */
export function nonewprivsLookalike(): Promise<BuiltImage> {
  const entries = busyboxRoot({ mode: 0o4755 });
  // sxx: root for whoever runs it, in root's group too (containerd runs a uid that /etc/passwd
  // does not name with gid 0, and busybox then reads the group's column).
  entries.push(file('etc/busybox.conf', '[SUID]\nid = sxx root.root\n', 0o644));
  // id's complaint, if any, goes to stderr: the specs read stdout only.
  const print = 'u=$(/bin/id -u) || while read -r k r e s; do [ "$k" = Uid: ] && u=$e; done < /proc/self/status; echo "Effective uid: $u"';
  return buildImage({ name: 'nonewprivs-lookalike', layers: [{ entries }], runConfig: { Env: [PATH_ENV], Entrypoint: ['/bin/sh', '-c', print] } });
}

/**
 * `gcr.io/k8s-staging-cri-tools/test-image-predefined-group`: USER 1000, whose user
 * `default-user` is also in the image's group `group-defined-in-image` (50000). Image Volume's
 * subPath spec mounts its `etc`; the SupplementalGroupsPolicy specs read the groups.
 */
export function predefinedGroupLookalike(): Promise<BuiltImage> {
  const entries = busyboxRoot({ passwd: 'default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\n', group: 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' });
  entries.push(dir('home/default-user', 0o755, 1000, 1000));
  return buildImage({ name: 'predefined-group-lookalike', layers: [{ entries }], runConfig: { Env: [PATH_ENV], User: '1000', Cmd: ['sh'] } });
}

/** The look-alikes of the images critest's container specs run, with where they go. */
export async function containerLookalikes(): Promise<Lookalike[]> {
  return [
    { repo: 'e2e-test-images/busybox', tag: '1.29-2', image: await e2eBusybox() },
    { repo: 'e2e-test-images/nginx', tag: '1.14-2', image: await nginxLookalike(80) },
    { repo: `${CRITEST_STAGING}/hostnet-nginx-amd64`, tag: 'latest', image: await nginxLookalike(12003) },
    { repo: 'e2e-test-images/httpd', tag: '2.4.39-4', image: await httpdLookalike() },
    { repo: 'e2e-test-images/nonewprivs', tag: '1.3', image: await nonewprivsLookalike() },
    { repo: `${CRITEST_STAGING}/test-image-predefined-group`, tag: 'latest', image: await predefinedGroupLookalike() },
  ];
}
