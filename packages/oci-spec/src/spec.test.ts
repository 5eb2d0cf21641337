import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PATH_ENV, applyImageConfig, applySpecOptions, applyUser, defaultSpec } from './spec';
import { resolveUser, rootfsFileReader } from './user';

describe('defaultSpec', () => {
  // A temp dir and ctr of its own: @berth/testing depends on this package. (@berth/client's
  // tests compare the spec with ctr 2.4's as well.)
  it("is containerd's default: ctr 1.6's `oci spec` with 2.x's two more masked paths", () => {
    // ctr builds its spec for an empty container id: the cgroup is then /<namespace>.
    const ours = defaultSpec('default', '');
    const ctr = ['/usr/bin/ctr', '/usr/local/bin/ctr'].find((p) => existsSync(p)) ?? 'ctr';
    const ctr16 = JSON.parse(execFileSync(ctr, ['oci', 'spec']).toString());
    ctr16.linux.maskedPaths.push('/proc/interrupts', '/sys/devices/virtual/powercap');
    expect(ours).toEqual(ctr16);
  });

  it('puts the container in /<namespace>/<id>', () => {
    expect(defaultSpec('ns1', 'c1').linux!.cgroupsPath).toBe('/ns1/c1');
  });
});

describe('image config and options', () => {
  const image = { Env: ['PATH=/opt/bin', 'A=1'], Entrypoint: ['/init'], Cmd: ['--serve'], WorkingDir: '/srv' };

  it.each([
    ['nothing', {}, ['/init', '--serve'], ['PATH=/opt/bin', 'A=1'], '/srv'],
    ['args (the whole argv, as ctr)', { args: ['sh', '-c', 'x'] }, ['sh', '-c', 'x'], ['PATH=/opt/bin', 'A=1'], '/srv'],
    ['command (the cmd after the entrypoint, as docker)', { command: ['--debug'] }, ['/init', '--debug'], ['PATH=/opt/bin', 'A=1'], '/srv'],
    ['entrypoint (drops the cmd)', { entrypoint: ['/bin/sh'] }, ['/bin/sh'], ['PATH=/opt/bin', 'A=1'], '/srv'],
    ['env and cwd', { env: ['A=2', 'B=3'], cwd: '/tmp' }, ['/init', '--serve'], ['PATH=/opt/bin', 'A=2', 'B=3'], '/tmp'],
    ['tty', { tty: true }, ['/init', '--serve'], ['PATH=/opt/bin', 'A=1', 'TERM=xterm'], '/srv'],
  ])('%s', (_what, options, args, env, cwd) => {
    const spec = applySpecOptions(applyImageConfig(defaultSpec('default', 'c'), image), options, image);
    expect({ args: spec.process!.args, env: spec.process!.env, cwd: spec.process!.cwd }).toEqual({ args, env, cwd });
  });

  it('defaults PATH when the image sets none, and rejects a spec with no command', () => {
    const spec = applyImageConfig(defaultSpec('default', 'c'), {});
    expect(spec.process!.env).toEqual([DEFAULT_PATH_ENV]);
    expect(() => applySpecOptions(spec, {})).toThrow('the container has no command: the image sets no entrypoint or cmd, and no args were given: invalid argument');
  });

  it('sets mounts, resources, hostname, read-only root and host network', () => {
    const spec = applySpecOptions(applyImageConfig(defaultSpec('default', 'c'), image), {
      mounts: [{ destination: '/data', source: '/srv/data' }, { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] }],
      memoryLimit: 64 << 20,
      cpus: 1.5,
      cpuShares: 512,
      hostname: 'box',
      readonlyRootfs: true,
      hostNetwork: true,
    });
    expect(spec.mounts!.filter((m) => m.destination === '/data' || m.destination === '/run')).toEqual([
      { destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rw'] },
      { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] },
    ]);
    expect(spec.linux!.resources!.memory).toEqual({ limit: 64 << 20 });
    expect(spec.linux!.resources!.cpu).toEqual({ period: 100_000, quota: 150_000, shares: 512 });
    expect([spec.hostname, spec.root, spec.linux!.namespaces!.map((n) => n.type)]).toEqual(['box', { path: 'rootfs', readonly: true }, ['pid', 'ipc', 'uts', 'mount']]);
  });
});

describe('resolveUser over a snapshot\'s directories', () => {
  const dir = { path: mkdtempSync(join(tmpdir(), 'berth-oci-spec-user-')) };
  afterAll(() => rmSync(dir.path, { recursive: true, force: true }));
  // An overlay of two layers: the upper one replaces /etc/group and deletes /etc/shadow.
  const lower = join(dir.path, 'lower');
  const upper = join(dir.path, 'upper');
  beforeAll(() => {
    mkdirSync(join(lower, 'etc'), { recursive: true });
    mkdirSync(join(upper, 'etc'), { recursive: true });
    writeFileSync(join(lower, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
    writeFileSync(join(lower, 'etc/group'), 'root:x:0:\nold:x:5:app\n');
    writeFileSync(join(upper, 'etc/group'), 'root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:app\n');
    writeFileSync(join(lower, 'etc/shadow'), 'x');
    execFileSync('mknod', [join(upper, 'etc/shadow'), 'c', '0', '0']);
  });
  const read = () => rootfsFileReader([{ type: 'overlay', source: 'overlay', options: [`upperdir=${upper}`, `workdir=${dir.path}/work`, `lowerdir=${lower}`] }]);

  it.each([
    ['', { uid: 0, gid: 0 }],
    ['app', { uid: 1000, gid: 1000, additionalGids: [50, 10] }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [50, 10] }],
    ['app:staff', { uid: 1000, gid: 50, additionalGids: [10] }],
    ['123:456', { uid: 123, gid: 456, additionalGids: [] }],
    ['0:wheel', { uid: 0, gid: 10, additionalGids: [] }],
  ])('%j', (user, expected) => {
    expect(resolveUser(user, read())).toEqual(expected);
  });

  it.each([
    ['nobody', 'no user "nobody" in the image\'s /etc/passwd: not found'],
    ['app:nogroup', 'no group "nogroup" in the image\'s /etc/group: not found'],
  ])('%j fails', (user, message) => {
    expect(() => resolveUser(user, read())).toThrow(message);
  });

  it('reads the upper layer first and treats a whiteout as deleted; a bind mount reads its source', () => {
    expect(read()('/etc/group')!.toString()).toContain('staff');
    expect(read()('/etc/shadow')).toBeUndefined();
    expect(rootfsFileReader([{ type: 'bind', source: lower, options: ['ro', 'rbind'] }])('/etc/group')!.toString()).toContain('old');
  });

  it('sets the user on the spec', () => {
    expect(applyUser(defaultSpec('d', 'c'), { uid: 1, gid: 2, additionalGids: [3] }).process!.user).toEqual({ uid: 1, gid: 2, additionalGids: [3] });
  });
});
