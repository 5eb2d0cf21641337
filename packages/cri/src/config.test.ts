import { defaultCriConfig, parseCriConfig } from './config';
import { repoTagsAndDigests, parsePullReference } from './references';
import { userOf } from './image-service';

const D = 'sha256:' + 'a'.repeat(64);

describe('CRI config', () => {
  it('has containerd 1.6 defaults', () => {
    expect(parseCriConfig({})).toEqual(defaultCriConfig());
    expect(defaultCriConfig()).toMatchObject({
      sandbox_image: 'registry.k8s.io/pause:3.6',
      restrict_oom_score_adj: false,
      netns_mounts_under: '/var/run/netns',
      stream_server_address: '127.0.0.1',
      stream_server_port: '0',
      max_container_log_line_size: 16384,
      containerd: { snapshotter: 'overlayfs', default_runtime_name: 'runc', runtimes: { runc: { runtime_type: 'io.containerd.runc.v2' } } },
      cni: { bin_dir: '/opt/cni/bin', conf_dir: '/etc/cni/net.d', max_conf_num: 1, cache_dir: '/var/lib/cni' },
      registry: { config_path: '' },
    });
  });

  it('replaces the default runtimes with the tables given (containerd 1.6.20) and takes a default runtime that is configured', () => {
    const c = parseCriConfig({ containerd: { default_runtime_name: 'crun', runtimes: { crun: { runtime_type: 'io.containerd.runc.v2', options: { BinaryName: '/usr/bin/crun' } } } } });
    expect(Object.keys(c.containerd.runtimes).sort()).toEqual(['crun']);
    expect(c.containerd.runtimes.crun.options).toEqual({ BinaryName: '/usr/bin/crun' });
  });

  it.each([
    [{ containerd: { default_runtime_name: 'kata' } }, 'invalid plugin config: no corresponding runtime configured in `containerd.runtimes` for `containerd` `default_runtime_name = "kata"'],
    [{ containerd: { runtimes: { x: {} } } }, 'containerd.runtimes.x.runtime_type is required'],
    [{ containerd: { runtimes: { kata: { runtime_type: 'io.containerd.kata.v2' } } } }, 'no corresponding runtime configured in `containerd.runtimes` for `containerd` `default_runtime_name = "runc"'],
    [{ stream_server_port: 10010 }, 'stream_server_port must be a string, not 10010'],
    [{ stream_server_port: '70000' }, 'stream_server_port must be a port number in a string, not "70000"'],
    [{ cni: { conf_dir: 'net.d' } }, 'cni.conf_dir must be an absolute path, not "net.d"'],
    [{ cni: { max_conf_num: -1 } }, 'cni.max_conf_num must not be negative, not -1'],
    [{ cni: { ip_pref: 'v4' } }, 'cni.ip_pref must be "ipv4", "ipv6" or "cni", not "v4"'],
    [{ registry: { config_path: '/etc/containerd/certs.d', mirrors: {} } }, '`mirrors` cannot be set when `config_path` is provided'],
    [{ max_container_log_line_size: '16k' }, 'max_container_log_line_size must be an integer, not "16k"'],
    [{ cni: 'x' }, 'cni must be a table'],
    [{ netns_mounts_under: 'netns' }, 'netns_mounts_under must be an absolute path, not "netns"'],
    [{ restrict_oom_score_adj: 'yes' }, 'restrict_oom_score_adj must be a boolean, not "yes"'],
  ])('refuses %j', (section, message) => {
    expect(() => parseCriConfig(section as Record<string, unknown>)).toThrow(message);
  });
});

describe('CRI image names', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1', 'docker.io/library/busybox:1'],
    ['user/app', 'docker.io/user/app:latest'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    [`busybox:1@${D}`, `docker.io/library/busybox@${D}`],
  ])('pulls %s as %s', (name, normalized) => {
    expect(parsePullReference(name).toString()).toBe(normalized);
  });

  it.each([
    ['Bad//Name', 'failed to parse image reference "Bad//Name": invalid reference format: repository name must be lowercase'],
    ['UPPER', 'failed to parse image reference "UPPER": invalid reference format: repository name must be lowercase'],
    ['a'.repeat(64), `failed to parse image reference "${'a'.repeat(64)}": invalid repository name (${'a'.repeat(64)}), cannot specify 64-byte hexadecimal strings`],
    ['x:', 'failed to parse image reference "x:": invalid reference format'],
  ])('refuses %s', (name, message) => {
    expect(() => parsePullReference(name)).toThrow(message);
  });

  it('reports tags and digests from record names, not the id record nor untagged names', () => {
    expect(repoTagsAndDigests([D, 'docker.io/library/busybox:1', `docker.io/library/busybox@${D}`, 'docker.io/library/busybox', '127.0.0.1:5000/x:2'])).toEqual({
      repoTags: ['docker.io/library/busybox:1', '127.0.0.1:5000/x:2'],
      repoDigests: [`docker.io/library/busybox@${D}`],
    });
  });

  it.each([
    ['', { username: '' }],
    ['1002', { uid: 1002, username: '' }],
    ['1003:1004', { uid: 1003, username: '' }],
    ['www-data', { username: 'www-data' }],
    ['www-data:1004', { username: 'www-data' }],
  ])('USER %j gives %j', (user, expected) => {
    expect(userOf(user)).toEqual(expected);
  });
});
