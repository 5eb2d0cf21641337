import { containers, images } from '@berth/api';
import { packJsonAny, RUNTIME_SPEC_TYPE_URLS } from '@berth/api/events';
import { createClient } from '@berth/grpc';
import { CtrEventsTarget, ReferenceContainerd, TestDaemon, ctrEventsDuring } from '@berth/testing';

/** Both daemons with their garbage collectors idle, so that they remove nothing between the steps. */
const NO_GC = '\n[plugins."io.containerd.gc.v1.scheduler"]\n  schedule_delay = "1h"\n  startup_delay = "1h"\n  mutation_threshold = 1000000\n';

/**
 * `ctr events` prints the events of content, snapshot, image and container operations made by
 * another client exactly as against containerd: topics, namespaces, order and payloads.
 */
describe('events of every service, side by side with containerd', () => {
  let berthd: TestDaemon;
  let ref: ReferenceContainerd;

  beforeAll(async () => {
    [berthd, ref] = await Promise.all([TestDaemon.start({ logLevel: 'info', config: NO_GC }), ReferenceContainerd.start({ config: NO_GC })]);
  });
  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), ref?.cleanup()]);
  });

  const blob = Buffer.from('berth events test blob\n');
  const digest = 'sha256:' + require('node:crypto').createHash('sha256').update(blob).digest('hex');

  async function operations(t: CtrEventsTarget): Promise<void> {
    const ok = async (args: string[], input?: Buffer) => {
      const res = await t.ctr(args, { namespace: 'evsvc', input });
      expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    };
    // content: ingest (no event), delete
    await ok(['content', 'ingest', 'evref'], blob);
    await ok(['content', 'rm', digest]);
    // snapshots: prepare, commit, view (no event), remove
    await ok(['snapshots', 'prepare', 'ev-a']);
    await ok(['snapshots', 'commit', 'ev-c', 'ev-a']);
    await ok(['snapshots', 'view', 'ev-v', 'ev-c']);
    await ok(['snapshots', 'rm', 'ev-v']);
    await ok(['snapshots', 'rm', 'ev-c']);
    // images: create through the API, label, tag, remove
    const img = createClient(images.ImagesService, t.address, { namespace: 'evsvc' });
    const ctrs = createClient(containers.ContainersService, t.address, { namespace: 'evsvc' });
    try {
      await img.create({
        image: {
          name: 'example.com/ev:1',
          labels: { a: 'b' },
          target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: blob.length, annotations: {} },
          createdAt: undefined,
          updatedAt: undefined,
        },
      });
      await ok(['images', 'label', 'example.com/ev:1', 'c=d']);
      await ok(['images', 'rm', 'example.com/ev:1']);
      // containers: create through the API, label, remove
      await ctrs.create({
        container: {
          id: 'ev-c1',
          labels: { x: 'y' },
          image: 'example.com/ev:1',
          runtime: { name: 'io.containerd.runc.v2', options: undefined },
          spec: packJsonAny(RUNTIME_SPEC_TYPE_URLS.spec, { ociVersion: '1.0.2' }),
          snapshotter: '',
          snapshotKey: '',
          createdAt: undefined,
          updatedAt: undefined,
          extensions: {},
        },
      });
      await ok(['containers', 'label', 'ev-c1', 'k=v']);
      await ok(['containers', 'rm', 'ev-c1']);
    } finally {
      img.close();
      ctrs.close();
    }
  }

  it('prints the same events in the same order', async () => {
    const [ours, theirs] = await Promise.all([ctrEventsDuring(berthd, [], () => operations(berthd)), ctrEventsDuring(ref, [], () => operations(ref))]);
    const topics = (lines: string[]) => lines.map((l) => l.split(' ').slice(1, 3).join(' '));
    expect(topics(theirs)).toEqual([
      'evsvc /content/delete',
      'evsvc /snapshot/prepare',
      'evsvc /snapshot/commit',
      'evsvc /snapshot/remove',
      'evsvc /snapshot/remove',
      'evsvc /images/create',
      'evsvc /images/update',
      'evsvc /images/delete',
      'evsvc /containers/create',
      'evsvc /containers/update',
      'evsvc /containers/delete',
    ]);
    expect(ours).toEqual(theirs);
  });

  it('a filtered subscriber receives exactly the matching events', async () => {
    const filters = ['topic~="/containers/"', 'namespace==nomatch'];
    const [ours, theirs] = await Promise.all([
      ctrEventsDuring(berthd, filters, () => operations(berthd)),
      ctrEventsDuring(ref, filters, () => operations(ref)),
    ]);
    expect(theirs.map((l) => l.split(' ')[2])).toEqual(['/containers/create', '/containers/update', '/containers/delete']);
    expect(ours).toEqual(theirs);
  });
});
