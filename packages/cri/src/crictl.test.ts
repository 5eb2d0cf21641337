/**
 * crictl v1.37 (cri-tools, the operators' CRI client) against a real berthd: Version, Status,
 * RuntimeConfig and the ImageService, pulling from a loopback registry that hosts.toml puts in
 * place of Docker Hub. crictl_containerd16.test.ts runs the same commands against containerd 1.6.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageServiceService, RuntimeServiceService } from '@berth/api/cri';
import { isNotFound } from '@berth/errdefs';
import { TestRegistry, rejectionOf } from '@berth/testing';
import { buildImage, busyboxSpec } from '@berth/fixtures';
import { useCriTestBed } from './test-bed';
import { json, push } from './test-support';

jest.setTimeout(180_000);

const bed = useCriTestBed({ name: 'crictl', network: false });
const { crictl, ok } = bed;

/** Removes every image of the k8s.io namespace, so each test starts from none. */
async function removeAllImages(): Promise<void> {
  for (const id of (await ok('images', '-q')).split('\n').filter(Boolean)) await ok('rmi', id);
}

describe('crictl: runtime info', () => {
  it('version reports CRI 0.1.0, containerd and the version the containerd Version service gives', async () => {
    expect(await ok('version')).toBe('Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  2.0.0+berth.0.1.0\nRuntimeApiVersion:  v1\n');
  });

  it('info: runtime ready; network not ready until a CNI config is in conf_dir, with containerd\'s reason and message', async () => {
    const before = json(await ok('info'));
    expect(before.status.conditions).toEqual([
      { type: 'RuntimeReady', status: true, reason: '', message: '' },
      { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: 'Network plugin returns error: cni plugin not initialized' },
    ]);
    expect(before.lastCNILoadStatus).toBe(`cni config load failed: no network config found in ${bed.world.confDir}: cni plugin not initialized: failed to load cni config`);
    expect(before.cniconfig).toMatchObject({ PluginConfDir: bed.world.confDir, PluginDirs: ['/usr/lib/cni'], PluginMaxConfNum: 1, Prefix: 'eth' });
    expect(before.cniconfig.Networks.map((n: any) => n.Config.Name)).toEqual(['cni-loopback']);
    expect(before.config.registry.configPath).toBe(bed.world.hostsDir);
    expect(typeof before.golang).toBe('string');

    const file = join(bed.world.confDir, '10-berth.conflist');
    writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'berth-test', plugins: [{ type: 'bridge', bridge: 'cni-berth0' }] }));
    try {
      const after = json(await ok('info'));
      expect(after.status.conditions[1]).toEqual({ type: 'NetworkReady', status: true, reason: '', message: '' });
      expect(after.lastCNILoadStatus).toBe('OK');
      expect(after.cniconfig.Networks.map((n: any) => [n.Config.Name, n.IFName])).toEqual([
        ['cni-loopback', 'lo'],
        ['berth-test', 'eth0'],
      ]);
    } finally {
      require('node:fs').rmSync(file);
    }
  });

  it('runtime-config: the cgroupfs driver, said explicitly', async () => {
    expect(await ok('runtime-config')).toBe('cgroup driver:   CGROUPFS\n');
  });

  it('Status lists the runtime handlers with every feature false (they gate critest skips)', async () => {
    const client = bed.berthd.client(RuntimeServiceService);
    const status = await client.status({ verbose: false });
    expect(status.runtimeHandlers).toEqual([
      { name: '', features: { recursiveReadOnlyMounts: false, userNamespaces: false } },
      { name: 'runc', features: { recursiveReadOnlyMounts: false, userNamespaces: false } },
    ]);
    expect(status.features).toEqual({ supplementalGroupsPolicy: false, userNamespacesHostNetwork: false, mountOptions: false });
    expect(status.info).toEqual({});
  });

  it.each([['ps'], ['stats']])('%s answers an empty list', async (cmd) => {
    const r = await crictl(cmd, '-o', 'json');
    expect(r.code).toBe(0);
    expect(Object.values(JSON.parse(r.stdout))).toEqual([[]]);
  });

  it('metricdescs answers UNIMPLEMENTED (ListMetricDescriptors is not there yet)', async () => {
    const r = await crictl('metricdescs');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('code = Unimplemented desc = ListMetricDescriptors is not implemented by berthd');
  });
});

describe('crictl: images', () => {
  beforeEach(removeAllImages);

  const busyboxId = () => bed.world.busybox.image.config.digest;
  const busyboxDigest = () => bed.world.busybox.image.manifest.digest;
  const busyboxSize = () => {
    const i = bed.world.busybox.image;
    return i.manifest.size + i.config.size + i.layers.reduce((n, l) => n + l.size, 0);
  };

  it('pull normalizes the name, goes through the hosts.toml mirror and answers the image id', async () => {
    expect(await ok('pull', 'busybox:berth')).toBe(`Image is up to date for ${busyboxId()}\n`);
    const listed = json(await ok('images', '-o', 'json'));
    expect(listed.images).toEqual([
      {
        id: busyboxId(),
        repoTags: ['docker.io/library/busybox:berth'],
        repoDigests: [`docker.io/library/busybox@${busyboxDigest()}`],
        size: String(busyboxSize()),
        username: '',
        pinned: false,
      },
    ]);
  });

  it('records the image under its id, tag and digest, labelled io.cri-containerd.image=managed, in namespace k8s.io', async () => {
    await ok('pull', 'docker.io/library/busybox:berth');
    const r = await bed.berthd.ctr(['-n', 'k8s.io', 'images', 'ls', '-q']);
    expect(r.stdout.trim().split('\n').sort()).toEqual(
      [busyboxId(), 'docker.io/library/busybox:berth', `docker.io/library/busybox@${busyboxDigest()}`].sort(),
    );
    const labels = await bed.berthd.ctr(['-n', 'k8s.io', 'images', 'ls']);
    expect(labels.stdout.trim().split('\n').slice(1).every((l) => l.includes('io.cri-containerd.image=managed'))).toBe(true);
    expect((await bed.berthd.ctr(['-n', 'default', 'images', 'ls', '-q'])).stdout).toBe('');
  });

  it('images -q prints full ids, --digests adds the short digest column', async () => {
    await ok('pull', 'busybox:berth');
    expect(await ok('images', '-q')).toBe(`${busyboxId()}\n`);
    const rows = (await ok('images', '--digests')).trim().split('\n');
    expect(rows[0].split(/\s{2,}/)).toEqual(['IMAGE', 'TAG', 'DIGEST', 'IMAGE ID', 'SIZE']);
    const cols = rows[1].split(/\s{2,}/);
    expect(cols.slice(0, 4)).toEqual(['docker.io/library/busybox', 'berth', busyboxDigest().slice(7, 20), busyboxId().slice(7, 20)]);
  });

  it('images NAME lists only that image', async () => {
    await ok('pull', 'busybox:berth');
    await ok('pull', `${bed.world.registry.host}/cri/user-uid:1`);
    expect(json(await ok('images', '-o', 'json', 'busybox:berth')).images.map((i: any) => i.id)).toEqual([busyboxId()]);
    expect(json(await ok('images', '-o', 'json', 'nothere')).images).toEqual([]);
    expect(json(await ok('images', '-o', 'json')).images).toHaveLength(2);
  });

  it('inspecti answers the same by id, short id, tag, familiar name and digest, with chainID and imageSpec', async () => {
    await ok('pull', 'busybox:berth');
    const answers = await Promise.all(
      [busyboxId(), busyboxId().slice(7, 19), 'busybox:berth', 'docker.io/library/busybox:berth', `docker.io/library/busybox@${busyboxDigest()}`].map(
        async (ref) => json(await ok('inspecti', ref)),
      ),
    );
    for (const a of answers) expect(a).toEqual(answers[0]);
    const a = answers[0];
    expect(a.status).toMatchObject({ id: busyboxId(), repoTags: ['docker.io/library/busybox:berth'], size: String(busyboxSize()) });
    expect(a.info.imageSpec.rootfs.diff_ids).toEqual(bed.world.busybox.image.diffIds);
    expect(a.info.chainID).toBe(bed.world.busybox.image.diffIds[0]);
  });

  it.each([
    ['a numeric USER', 'userUid', { uid: { value: '1002' }, username: '' }],
    ['a named USER (the part before ":")', 'userName', { username: 'www-data' }],
  ] as const)('reports uid or username from %s', async (_what, key, expected) => {
    const s = bed.world[key];
    await ok('pull', `${bed.world.registry.host}/${s.repo}:${s.tag}`);
    const status = json(await ok('inspecti', `${bed.world.registry.host}/${s.repo}:${s.tag}`)).status;
    expect({ uid: status.uid, username: status.username }).toEqual({ uid: undefined, ...expected });
  });

  it.each([
    ['the tag', () => 'busybox:berth'],
    ['the id', () => busyboxId()],
    ['the digest', () => `docker.io/library/busybox@${busyboxDigest()}`],
  ])('rmi by %s removes every reference of the image', async (_what, ref) => {
    await ok('pull', 'busybox:berth');
    expect(await ok('rmi', ref())).toBe(`Deleted: docker.io/library/busybox:berth\n`);
    expect(await ok('images', '-q')).toBe('');
    expect((await bed.berthd.ctr(['-n', 'k8s.io', 'images', 'ls', '-q'])).stdout).toBe('');
  });

  it('rmi and inspecti of a missing image: crictl says so; over gRPC, ImageStatus has no image and RemoveImage is OK', async () => {
    const rmi = await crictl('rmi', 'nothere');
    expect({ code: rmi.code, err: rmi.stderr.trim() }).toEqual({ code: 1, err: expect.stringContaining('no such image nothere') });
    const inspect = await crictl('inspecti', 'nothere');
    expect({ code: inspect.code, err: inspect.stderr.trim() }).toEqual({ code: 1, err: expect.stringContaining('no such image \\"nothere\\" present') });
    const images = bed.berthd.client(ImageServiceService);
    expect(await images.imageStatus({ image: { image: 'nothere', annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' }, verbose: true })).toEqual({ info: {} });
    expect(await images.removeImage({ image: { image: busyboxId(), annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' } })).toEqual({});
  });

  it('five RemoveImage calls by id at once all answer OK (critest "Image Manager" does this)', async () => {
    await ok('pull', 'busybox:berth');
    const images = bed.berthd.client(ImageServiceService);
    const spec = { image: busyboxId(), annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' };
    expect(await Promise.all([1, 2, 3, 4, 5].map(() => images.removeImage({ image: spec })))).toEqual([{}, {}, {}, {}, {}]);
    expect(await ok('images', '-q')).toBe('');
  });

  it('imagefsinfo: the overlayfs directory, with the unpacked layers counted', async () => {
    const empty = json(await ok('imagefsinfo'));
    expect(empty.status.imageFilesystems).toEqual([
      { timestamp: expect.stringMatching(/^\d{19}$/), fsId: { mountpoint: join(bed.berthd.root, 'io.containerd.snapshotter.v1.overlayfs') }, usedBytes: { value: '0' }, inodesUsed: { value: '0' } },
    ]);
    await ok('pull', 'busybox:berth');
    const used = json(await ok('imagefsinfo')).status.imageFilesystems[0];
    expect(Number(used.usedBytes.value)).toBeGreaterThan(1_000_000); // busybox-static is about 2 MB
    expect(Number(used.inodesUsed.value)).toBeGreaterThan(10);
  });
});

describe('crictl: bad input', () => {
  it('a malformed name: Unknown "failed to parse image reference", as containerd 1.6', async () => {
    const r = await crictl('pull', 'Bad//Name');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('code = Unknown desc = failed to parse image reference \\"Bad//Name\\": invalid reference format: repository name must be lowercase" image=');
  });

  it('a missing image: NotFound, naming the image', async () => {
    const images = bed.berthd.client(ImageServiceService);
    const err = await rejectionOf(images.pullImage({ image: { image: 'busybox:missing', annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' } }));
    expect(isNotFound(err)).toBe(true);
    expect(err.message).toContain('failed to pull and unpack image "docker.io/library/busybox:missing"');
  });

  it('a registry that does not answer: the pull fails with the address in the message', async () => {
    const r = await crictl('pull', '127.0.0.1:1/missing:1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed to pull and unpack image \\"127.0.0.1:1/missing:1\\"');
  });
});

describe('crictl: pull with credentials from the request', () => {
  let registry: TestRegistry;
  let ref: string;
  const spec = (image: string, serverAddress = '', extra: Record<string, string> = {}) => ({
    image: { image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '', imageRef: '' },
    auth: { username: '', password: '', auth: '', serverAddress, identityToken: '', registryToken: '', ...extra },
  });

  beforeAll(async () => {
    registry = await TestRegistry.start({ auth: { kind: 'basic', username: 'kube', password: 's3cret' } });
    const image = await buildImage({ ...busyboxSpec('x'), runConfig: { Cmd: ['sh'], Env: ['AUTH=1'] } });
    await push(registry, { repo: 'cri/private', tag: '1', image }, { username: 'kube', secret: 's3cret' });
    ref = `${registry.host}/cri/private:1`;
  });
  afterAll(async () => {
    await registry?.stop();
  });
  beforeEach(removeAllImages);

  it('refuses an anonymous pull', async () => {
    const r = await crictl('pull', ref);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`failed to pull and unpack image \\"${ref}\\"`);
  });

  it.each([
    ['--creds user:password', () => ['--creds', 'kube:s3cret']],
    ['--auth base64(user:password)', () => ['--auth', Buffer.from('kube:s3cret').toString('base64')]],
  ])('pulls with %s', async (_what, flags) => {
    expect(await ok('pull', ...flags(), ref)).toMatch(/^Image is up to date for sha256:[a-f0-9]{64}\n$/);
  });

  it('uses the credentials only for the host server_address names', async () => {
    const images = bed.berthd.client(ImageServiceService);
    await rejectionOf(images.pullImage(spec(ref, 'https://registry.example.com', { username: 'kube', password: 's3cret' })));
    expect((await images.pullImage(spec(ref, `http://${registry.host}`, { username: 'kube', password: 's3cret' }))).imageRef).toMatch(/^sha256:/);
  });
});
