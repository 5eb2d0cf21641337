/**
 * A filesystem mount as containerd describes it (`containerd.types.Mount`): what a snapshotter
 * returns and what a runtime or `ctr` mounts. Structurally the same as the API message, so either
 * can be passed where the other is expected.
 */
export interface Mount {
  /** Filesystem type: `overlay`, `bind` (a bind mount; `bind`/`rbind` in options), `tmpfs`... */
  type: string;
  /** The source: a directory for bind mounts, `overlay` for overlay mounts. */
  source: string;
  /** Unused by snapshotters; kept for wire compatibility. */
  target?: string;
  /** mount(8) `-o` options, in order (`ro`, `rbind`, `lowerdir=...`). */
  options: string[];
}

/** One line of /proc/self/mountinfo. */
export interface MountInfo {
  id: number;
  parent: number;
  /** The mount point, with the kernel's octal escapes decoded. */
  mountPoint: string;
  /** Per-mount options (`ro,relatime`). */
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}
