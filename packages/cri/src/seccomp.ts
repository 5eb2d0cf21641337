/**
 * Berth's RuntimeDefault seccomp profile: every system call allowed except those a container
 * should not make (kernel keyrings, module loading, kexec, ...) and those that need a capability
 * the container lacks. containerd 1.6 uses an allow-list instead (Docker's profile); this
 * deny-list keeps the same effect for the calls that matter and is short enough to check.
 */

/** Calls no container gets, whatever its capabilities. */
const ALWAYS_DENIED = [
  'add_key', 'keyctl', 'request_key', 'kexec_load', 'kexec_file_load', 'lookup_dcookie', 'userfaultfd', 'uselib', 'ustat',
  'sysfs', '_sysctl', 'vm86', 'vm86old', 'nfsservctl', 'create_module', 'get_kernel_syms', 'query_module', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick',
];

/** Calls allowed only with a capability (as Docker's profile grants them). */
const BY_CAPABILITY: Record<string, string[]> = {
  CAP_SYS_ADMIN: ['mount', 'umount', 'umount2', 'unshare', 'setns', 'pivot_root', 'quotactl', 'swapon', 'swapoff', 'name_to_handle_at', 'bpf', 'perf_event_open', 'clone3', 'setdomainname', 'sethostname', 'syslog'],
  CAP_SYS_MODULE: ['init_module', 'finit_module', 'delete_module'],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_TIME: ['settimeofday', 'clock_settime', 'clock_adjtime', 'stime', 'adjtimex'],
  CAP_SYS_PTRACE: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_NICE: ['mbind', 'set_mempolicy', 'get_mempolicy', 'move_pages'],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/** The RuntimeDefault profile for a container with these (bounding) capabilities. */
export function runtimeDefaultSeccomp(capabilities: readonly string[]): Record<string, unknown> {
  const denied = [...ALWAYS_DENIED];
  for (const [cap, calls] of Object.entries(BY_CAPABILITY)) if (!capabilities.includes(cap)) denied.push(...calls);
  // clone3 is refused with ENOSYS so that libc falls back to clone (as Docker's profile does).
  const enosys = denied.filter((c) => c === 'clone3');
  const eperm = denied.filter((c) => c !== 'clone3');
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: eperm, action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
      ...(enosys.length > 0 ? [{ names: enosys, action: 'SCMP_ACT_ERRNO', errnoRet: 38 }] : []),
    ],
  };
}
