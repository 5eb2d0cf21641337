import { execFileSync } from 'node:child_process';
import { CTR2_PATH } from '@berth/testing';
import { defaultSpec } from './index';

describe('the default spec the client builds containers on', () => {
  it("is ctr 2.4's `oci spec` but for the OCI version (runc 1.1 is what runs it here)", () => {
    if (!CTR2_PATH) throw new Error('ctr 2.x is not installed: run tools/reference-tools.sh');
    const ours = defaultSpec('default', '');
    const theirs = JSON.parse(execFileSync(CTR2_PATH, ['oci', 'spec']).toString());
    const sorted = (s: typeof ours) => ({ ...s, linux: { ...s.linux, maskedPaths: [...s.linux!.maskedPaths!].sort() } });
    expect(sorted({ ...ours, ociVersion: theirs.ociVersion })).toEqual(sorted(theirs));
  });
});
