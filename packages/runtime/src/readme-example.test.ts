import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareBundle } from '../examples/prepare-bundle';
import { resolveShimBinary } from './shim-binary';

describe("README example: a task's bundle", () => {
  it('finds the runc v2 shim and lays out the bundle, then removes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-runtime-example-'));
    try {
      const r = await prepareBundle(dir, { ociVersion: '1.0.2', process: { args: ['sh'] }, root: { path: 'rootfs' } });
      expect(r).toEqual({ shim: expect.stringMatching(/\/containerd-shim-runc-v2$/), entries: ['config.json', 'rootfs', 'work'], work: join(dir, 'root/default/web') });
      expect(existsSync(r.shim)).toBe(true);
      expect([readdirSync(join(dir, 'state/default')), readdirSync(join(dir, 'root/default'))]).toEqual([[], []]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers a runtime that is not installed with containerd's message", () => {
    expect(() => resolveShimBinary('io.containerd.nope.v9')).toThrow(
      'failed to resolve runtime path: runtime "io.containerd.nope.v9" binary not installed "containerd-shim-nope-v9": file does not exist',
    );
  });
});
