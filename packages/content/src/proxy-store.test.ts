import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UnixServer } from '@berth/grpc';
import { FileLabelStore } from './label-store';
import { LocalContentStore } from './local-store';
import { ProxyContentStore } from './proxy-store';
import { serveContentStore } from './serve';
import { runContentStoreSuite, type ContentStoreFixture } from './testsuite';

/**
 * The proxy store against a real Content API server (serveContentStore over a local store with
 * labels) on a unix socket: both ends of containerd's `[proxy_plugins] type = "content"`. A
 * reopen is a server restart over the same directory and a new proxy.
 */
async function proxyFixture(): Promise<ContentStoreFixture> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'berth-proxy-content-'));
  const root = join(dir, 'content');
  const address = join(dir, 'content.sock');
  let server: UnixServer | undefined;
  let proxy: ProxyContentStore | undefined;
  const start = async () => {
    proxy?.close();
    await server?.close();
    server = await serveContentStore(await LocalContentStore.open(root, { labelStore: new FileLabelStore(join(root, 'labels')) }), address);
    proxy = new ProxyContentStore(address);
    return proxy;
  };
  return {
    store: await start(),
    reopen: start,
    cleanup: async () => {
      proxy?.close();
      await server?.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

runContentStoreSuite('ProxyContentStore', proxyFixture);
