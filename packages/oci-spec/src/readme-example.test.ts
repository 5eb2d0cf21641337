import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { specForImage } from '../examples/spec-for-an-image';

describe('README example: the spec of a container made from an image', () => {
  // A temp dir of its own: @berth/testing depends on this package.
  const rootfs = mkdtempSync(join(tmpdir(), 'berth-oci-spec-example-'));
  afterAll(() => rmSync(rootfs, { recursive: true, force: true }));

  it('has the image config, the looked-up user and the options over the default spec', () => {
    mkdirSync(join(rootfs, 'etc'));
    writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nweb:x:33:33::/srv:/bin/false\n');
    writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nweb:x:33:\nlogs:x:4:web\n');
    const spec = specForImage('default', 'web1', { Entrypoint: ['/usr/bin/server'], Cmd: ['--port', '80'], Env: ['PATH=/usr/bin:/bin'], WorkingDir: '/srv' }, rootfs);
    expect(spec.process).toMatchObject({
      args: ['/usr/bin/server', '--port', '8080'],
      env: ['PATH=/usr/bin:/bin', 'MODE=production', 'TERM=xterm'],
      cwd: '/srv',
      terminal: true,
      user: { uid: 33, gid: 33, additionalGids: [4] },
    });
    expect(spec.linux).toMatchObject({ cgroupsPath: '/default/web1', resources: { memory: { limit: 256 << 20 } } });
    expect(spec.mounts!.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/run']);
  });
});
