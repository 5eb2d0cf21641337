/**
 * The look-alikes do what critest's specs check, run here in a chroot of their unpacked layer
 * (as root, with /proc mounted in it) rather than in a container, so that a wrong look-alike
 * shows here and not as a spec failing on both daemons.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { BuiltImage } from '@berth/fixtures';
import { BUSYBOX_DYNAMIC_PATH, tempDir } from '@berth/testing';
import { e2eBusybox, httpdLookalike, nginxLookalike, nonewprivsLookalike, predefinedGroupLookalike } from './lookalikes';

jest.setTimeout(60_000);

const root = process.getuid?.() === 0;
const run = root ? describe : describe.skip;

/** Unpacks an image's layers into a temp dir with /proc mounted; returns it and its cleanup. */
function unpack(image: BuiltImage): { dir: string; remove: () => void } {
  const t = tempDir('berth-lookalike-');
  const rootfs = join(t.path, 'rootfs');
  execFileSync('mkdir', [rootfs]);
  for (const l of image.layers) {
    const tgz = join(t.path, 'layer.tgz');
    writeFileSync(tgz, image.blobs.get(l.digest)!);
    execFileSync('tar', ['-xzpf', tgz, '-C', rootfs, '--numeric-owner']);
  }
  // A container has /dev/null (sh sends a background job's stdin there); /proc as containers do.
  writeFileSync(join(rootfs, 'dev/null'), '');
  execFileSync('mount', ['--bind', '/dev/null', join(rootfs, 'dev/null')]);
  execFileSync('mount', ['-t', 'proc', 'proc', join(rootfs, 'proc')]);
  return {
    dir: rootfs,
    remove: () => {
      for (const m of ['proc', 'dev/null']) execFileSync('umount', ['-l', join(rootfs, m)]);
      t.remove();
    },
  };
}

/**
 * Runs a command in the chroot (`before` wraps chroot, e.g. `['unshare', '--ipc']`; `as` is
 * chroot's `--userspec`); stdout, stderr and the exit code.
 */
function inRoot(rootfs: string, argv: string[], options: { before?: string[]; as?: string } = {}): { stdout: string; stderr: string; code: number } {
  const chroot = ['chroot', ...(options.as ? [`--userspec=${options.as}`] : []), rootfs, ...argv];
  const [file, ...args] = [...(options.before ?? []), ...chroot];
  try {
    const stdout = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { stdout, stderr: '', code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; status: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.status };
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function until<T>(f: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const exited = (p: ChildProcess) => new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (c) => r(c))));

run('critest look-alike images', () => {
  describe('e2e-test-images/busybox', () => {
    let fs: { dir: string; remove: () => void };
    beforeAll(async () => {
      fs = unpack(await e2eBusybox());
    });
    afterAll(() => fs.remove());

    it('has every applet as a hard link of /bin/busybox (a masked /bin/ls hides only ls)', () => {
      const busybox = statSync(join(fs.dir, 'bin/busybox'));
      for (const a of ['ls', 'sh', 'ping', 'brctl', 'pidof', 'dd']) expect(statSync(join(fs.dir, 'bin', a)).ino).toBe(busybox.ino);
    });

    (BUSYBOX_DYNAMIC_PATH ? it : it.skip)('runs what PATH finds: with /bin/ls masked, sh -c ls fails as MaskedPaths expects', () => {
      const ls = join(fs.dir, 'bin/ls');
      execFileSync('mount', ['--bind', '/dev/null', ls]);
      try {
        const out = inRoot(fs.dir, ['/bin/sh', '-c', 'ls']);
        expect(out.stderr).toBe('/bin/sh: ls: Permission denied\n');
        expect(out.code).not.toBe(0);
      } finally {
        execFileSync('umount', [ls]);
      }
    });

    it('has a pgrep that finds a process by name and is silent once it is gone', () => {
      // In a PID namespace of its own: the machine has sleeps of its own.
      // /bin/sleep, not sleep: busybox-static's sh would run the applet without exec, as "sh".
      const script =
        '/bin/sleep 30 & i=0; until pgrep sleep >/dev/null || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.1; done; ' +
        'pgrep sleep; echo "sleep $!"; kill $!; wait; pgrep sleep || true; pgrep sleep; echo "exit $?"';
      const out = inRoot(fs.dir, ['sh', '-c', script], { before: ['unshare', '--pid', '--fork', `--mount-proc=${join(fs.dir, 'proc')}`] });
      expect(out.stderr).toBe('');
      const [found, started, ...rest] = out.stdout.trim().split('\n');
      expect(`sleep ${found}`).toBe(started);
      expect(rest).toEqual(['exit 1']);
    });

    it('has an ipcs -m that lists the segments of its IPC namespace', () => {
      const id = /Shared memory id: (\d+)/.exec(execFileSync('ipcmk', ['-M', '4096'], { encoding: 'utf8' }))![1];
      try {
        const out = inRoot(fs.dir, ['ipcs', '-m']);
        expect(out.code).toBe(0);
        expect(out.stdout).toMatch(new RegExp(`^0x[0-9a-f]{8} ${id} `, 'm'));
        // A private IPC namespace has none: no digit at all, so no id can match.
        expect(inRoot(fs.dir, ['ipcs', '-m'], { before: ['unshare', '--ipc'] }).stdout).not.toMatch(/\d/);
      } finally {
        execFileSync('ipcrm', ['-m', id]);
      }
    });
  });

  it('nginx: a process named nginx, "master process" in its command line, its pid file, 200 on the port, quick on SIGTERM as PID 1', async () => {
    const port = await freePort();
    const fs = unpack(await nginxLookalike(port));
    // PID 1 of a PID namespace, as in a container: SIGTERM needs the script's trap, and its end
    // takes busybox httpd with it.
    const unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', `--mount-proc=${join(fs.dir, 'proc')}`, 'chroot', fs.dir, 'nginx', '-g', 'daemon off;'], { stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    try {
      const pid = await until(() => readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim() || undefined);
      // The script runs as `/bin/sh /usr/sbin/nginx -g ...` (comm nginx already) until it re-execs
      // itself with "master process" in its arguments: a loaded CI run read the command line between.
      await until(() => (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('master process') ? true : undefined));
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8')).toBe('nginx\n');
      const status = await until(async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/`)).status;
        } catch {
          return undefined;
        }
      });
      expect(status).toBe(200);
      expect(readFileSync(join(fs.dir, 'var/run/nginx.pid'), 'utf8')).toBe('1\n');
      // The chroot's own /proc is the machine's: HostPID's pidof sees the host's pid.
      expect(inRoot(fs.dir, ['pidof', 'nginx']).stdout.trim().split(' ')).toContain(pid);
      const started = Date.now();
      process.kill(Number(pid), 'SIGTERM');
      expect(await exited(unshare)).toBe(0);
      expect(Date.now() - started).toBeLessThan(10_000); // not a stop timeout's grace period
    } finally {
      unshare.kill('SIGKILL');
      await exited(unshare);
      fs.remove();
    }
  });

  it('httpd: names httpd in its first log line', async () => {
    const fs = unpack(await httpdLookalike());
    try {
      const script = readFileSync(join(fs.dir, 'usr/local/bin/httpd-foreground'), 'utf8');
      expect(script).toMatch(/^echo ".*httpd.*" >&2$/m);
      expect(statSync(join(fs.dir, 'usr/local/apache2/htdocs/index.html')).isFile()).toBe(true);
    } finally {
      fs.remove();
    }
  });

  it('nonewprivs: prints Effective uid 0 through its set-user-ID program, and the caller uid under no_new_privs', async () => {
    const image = await nonewprivsLookalike();
    const fs = unpack(image);
    try {
      const entry = (JSON.parse(image.blobs.get(image.config.digest)!.toString()) as { config: { Entrypoint: string[] } }).config.Entrypoint;
      // 1000:0 is what containerd runs RunAsUser 1000 as (no passwd entry: gid 0).
      for (const as of ['1000:1000', '1000:0']) {
        expect([as, inRoot(fs.dir, entry, { as }).stdout]).toEqual([as, 'Effective uid: 0\n']);
        expect([as, inRoot(fs.dir, entry, { as, before: ['setpriv', '--no-new-privs'] }).stdout]).toEqual([as, 'Effective uid: 1000\n']);
      }
    } finally {
      fs.remove();
    }
  });

  it('test-image-predefined-group: user 1000 is default-user, also in group-defined-in-image (50000)', async () => {
    const fs = unpack(await predefinedGroupLookalike());
    try {
      expect(inRoot(fs.dir, ['id', '-G', 'default-user']).stdout.trim().split(' ')).toEqual(['1000', '50000']);
    } finally {
      fs.remove();
    }
  });
});
