import { KNOWN_CAUSES, knownCause } from './known-causes';

/** critest v1.37.0's names of the specs the causes are about (as its junit report gives them). */
const NAMES = [
  '[It] [k8s.io] Idempotence StopContainer should not return an error if not found',
  '[It] [k8s.io] Idempotence StopPodSandbox should not return an error if not found',
  '[It] [k8s.io] Security Context bucket runtime should support MaskedPaths',
  '[It] [k8s.io] Image Identifier Consistency should return the same image identifier across all APIs [Conformance] [Serial]',
  '[It] [k8s.io] Image Identifier Consistency should return the same image identifier when pulled from different registries [Conformance] [Serial]',
  '[It] [k8s.io] Image Volume [Feature:ImageVolume] subPath should succeed when using a valid subPath',
];

describe('known causes', () => {
  it('each covers at least one of critest v1.37 spec names, and no name has two', () => {
    for (const c of KNOWN_CAUSES) expect([c.spec.source, NAMES.some((n) => c.spec.test(n))]).toEqual([c.spec.source, true]);
    for (const n of NAMES) expect([n, KNOWN_CAUSES.filter((c) => c.spec.test(n)).length]).toEqual([n, 1]);
  });

  it('applies only to the outcome it explains', () => {
    expect(knownCause(NAMES[0], 'failed')?.kind).toBe('containerd 1.6');
    expect(knownCause(NAMES[0], 'skipped')).toBeUndefined();
    expect(knownCause(NAMES[3], 'skipped')?.kind).toBe('containerd 1.6');
    expect(knownCause('[It] [k8s.io] Container runtime should support execSync [Conformance]', 'failed')).toBeUndefined();
  });
});
