/**
 * Why critest v1.37 specs do not pass on containerd 1.6.20 here, as found by running them alone
 * against it (`--daemon containerd --focus ...`) and reading the specs in cri-tools v1.37.0's
 * pkg/validate. `--explain` prints these next to the table's rows; a spec that fails on
 * containerd 1.6 with none of them is marked unexplained, so that a new cause shows.
 */

/** Where a cause lies. */
export type CauseKind =
  /** The look-alike images (busybox-static based) cannot do what the real image does. */
  | 'look-alike'
  /** This machine lacks something the spec needs. */
  | 'host'
  /** containerd 1.6.20 answers differently from what critest v1.37 (CRI 1.37) expects. */
  | 'containerd 1.6';

/** A known cause: the specs it covers (a regex over the name), the outcome on containerd 1.6. */
export interface KnownCause {
  spec: RegExp;
  outcome: 'failed' | 'skipped';
  kind: CauseKind;
  why: string;
}

/** The known causes, one per spec or group of specs. */
export const KNOWN_CAUSES: readonly KnownCause[] = [
  {
    spec: /Idempotence StopContainer should not return an error if not found/,
    outcome: 'failed',
    kind: 'containerd 1.6',
    why:
      'StopContainer of an unknown id answers NotFound ("an error occurred when try to find container ...: not found"); ' +
      'idempotence.go:77 wants OK, as the CRI says and containerd does after #10520/#10531',
  },
  {
    spec: /Idempotence StopPodSandbox should not return an error if not found/,
    outcome: 'failed',
    kind: 'containerd 1.6',
    why:
      'StopPodSandbox of an unknown id answers NotFound ("an error occurred when try to find sandbox ...: not found"); ' +
      'idempotence.go:46 wants OK, as the CRI says and containerd does after #10520/#10531 (berthd: OK)',
  },
  {
    spec: /Security Context bucket runtime should support MaskedPaths/,
    outcome: 'failed',
    kind: 'look-alike',
    why:
      "Debian's dynamic busybox is missing (tools/reference-tools.sh unpacks it), so the look-alike has busybox-static, " +
      'built with FEATURE_SH_STANDALONE: its sh runs the ls applet without looking at /bin/ls, so masking /bin/ls hides ' +
      'nothing and `sh -c ls` succeeds (security_context_linux.go:621 wants an error and "/bin/sh: ls: Permission denied")',
  },
  {
    spec: /Image Identifier Consistency/,
    outcome: 'skipped',
    kind: 'containerd 1.6',
    why:
      'the spec skips itself when ContainerStatus.image_id is empty (image_id_consistency.go:125/217): the field (17, ' +
      'CRI 1.36) is newer than the cri-api v0.25 containerd 1.6.20 vendors, so it never sets it',
  },
  {
    spec: /Image Volume \[Feature:ImageVolume\]/,
    outcome: 'skipped',
    kind: 'containerd 1.6',
    why:
      'containerd 1.6 ignores Mount.image and fails CreateContainer with "failed to mkdir \\"\\""; ' +
      'image_volume.go takes that for no image volume support and skips',
  },
];

/** The known cause of a spec's outcome on containerd 1.6, if any. */
export function knownCause(name: string, outcome: string): KnownCause | undefined {
  return KNOWN_CAUSES.find((c) => c.outcome === outcome && c.spec.test(name));
}
