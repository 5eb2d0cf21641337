import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '@berth/fixtures';
import { TestDaemon, tempDir } from '@berth/testing';

const REPO = resolve(__dirname, '../../..');

/**
 * Swapping an implementation through the plugin system: a plugin module (config only, nothing
 * else changed) wraps the daemon's content store in one that counts reads. It requires the
 * content type and provides ContentStoreToken, so it loads after the local store, wraps it, and
 * every plugin that resolves the token afterwards (content service, differ) gets the wrapper.
 */
describe('dependency injection: a read-counting content store swapped in by a plugin', () => {
  const dir = tempDir('berth-di-');
  let d: TestDaemon;

  beforeAll(async () => {
    const sdk = join(REPO, 'packages/plugin-sdk/dist/index.js');
    writeFileSync(
      join(dir.path, 'counting-content.js'),
      `const { ContentStoreToken, PluginTypes, definePlugin } = require(${JSON.stringify(sdk)});
exports.plugins = [definePlugin({
  type: PluginTypes.content,
  id: 'counting',
  requires: [PluginTypes.content],
  provides: [ContentStoreToken],
  init: (ctx) => {
    const inner = ctx.get(ContentStoreToken);
    let reads = 0;
    ctx.exports.reads = '0';
    const store = {};
    for (const m of ['info', 'update', 'walk', 'delete', 'status', 'listStatuses', 'abort', 'writer']) store[m] = (...a) => inner[m](...a);
    store.readerAt = (desc) => {
      ctx.exports.reads = String(++reads);
      return inner.readerAt(desc);
    };
    return store;
  },
})];
`,
    );
    d = await TestDaemon.start({ logLevel: 'info', config: `plugin_modules = [${JSON.stringify(join(dir.path, 'counting-content.js'))}]\n` });
  });
  afterAll(async () => {
    await d?.cleanup();
    dir.remove();
  });

  const reads = async () => {
    const out = (await d.ctr(['plugins', 'ls', '--detailed', 'id==counting'])).stdout;
    return Number(/reads\s+(\d+)/.exec(out)?.[1] ?? NaN);
  };

  it('serves the Content API through the wrapper', async () => {
    expect((await d.ctr(['plugins', 'ls'])).stdout).toMatch(/io\.containerd\.content\.v1\s+counting\s+-\s+ok/);
    const tar = await buildBusyboxImage(dir.path);
    expect((await d.ctr(['images', 'import', '--no-unpack', tar])).code).toBe(0);
    expect(await reads()).toBeGreaterThan(0); // the import read what it had written
    const digest = (await d.ctr(['images', 'ls'])).stdout.match(/sha256:[0-9a-f]{64}/)![0];
    const before = await reads();
    const got = await d.ctr(['content', 'get', digest]);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout.toString()).schemaVersion).toBe(2);
    expect(await reads()).toBe(before + 1);
    expect((await d.ctr(['images', 'ls', '-q'])).stdout).toBe(`${BUSYBOX_IMAGE}\n`);
  });
});

describe('no global side effects without the plugin system', () => {
  it('a program using LocalContentStore loads neither tsyringe, reflect-metadata, lmdb nor grpc-js', () => {
    const dir = tempDir('berth-no-side-effects-');
    try {
      const probe = `
        const { LocalContentStore } = require('@berth/content');
        require('@berth/snapshots');
        require('@berth/plugin');
        (async () => {
          const store = await LocalContentStore.open(${JSON.stringify(dir.path)});
          const w = await store.writer({ ref: 'probe' });
          await w.write(Buffer.from('hello'));
          await w.commit(5);
          const size = (await store.info(await w.digest())).size;
          const loaded = Object.keys(require.cache)
            .filter((k) => /node_modules\\/(tsyringe|reflect-metadata|lmdb|@grpc|msgpackr)\\//.test(k))
            .map((k) => k.split('node_modules/')[1]);
          process.stdout.write(JSON.stringify({ size, loaded, getMetadata: typeof Reflect.getMetadata }));
        })();
      `;
      const out = JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: REPO }).toString());
      expect(out).toEqual({ size: 5, loaded: [], getMetadata: 'undefined' });
    } finally {
      dir.remove();
    }
  });

  it.each(['containers', 'content', 'diff', 'events', 'images', 'introspection', 'leases', 'namespaces', 'snapshots'])(
    "@berth/%s keeps its gRPC plugins under /plugins: the index loads no grpc-js",
    (name) => {
      const probe = `
        require('@berth/${name}');
        const before = Object.keys(require.cache).some((k) => k.includes('node_modules/@grpc/grpc-js/'));
        require('@berth/${name}/plugins');
        const after = Object.keys(require.cache).some((k) => k.includes('node_modules/@grpc/grpc-js/'));
        process.stdout.write(JSON.stringify([before, after]));
      `;
      expect(JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: REPO }).toString())).toEqual([false, true]);
    },
  );

  it('the loader entry brings them in for the daemon', () => {
    const probe = `require('@berth/plugin/loader'); process.stdout.write(typeof Reflect.getMetadata);`;
    expect(execFileSync(process.execPath, ['-e', probe], { cwd: REPO }).toString()).toBe('function');
  });
});
