/* The default seccomp profile and its BPF cache.
 *
 * The rules are modelled on Docker's default profile (moby/moby,
 * profiles/seccomp/default.json): deny with EPERM, allow a fixed list, allow a
 * few syscalls only with certain argument values, and widen the list for the
 * capabilities the container holds. Syscall names the installed libseccomp
 * does not know are skipped, as Docker does.
 *
 * EPERM is right for what the profile denies on purpose, but wrong for a
 * syscall newer than the profile: libc tries the new call (fchmodat2,
 * futex_wake...) and falls back to the old one only on ENOSYS. So, as runc
 * does, numbers above the highest one the table names for each ABI get
 * ENOSYS, from a little raw BPF (see "The prefix" below). The same prefix
 * refuses what libseccomp cannot: a socket family on the int the kernel
 * reads, and i386's socketcall(SYS_SOCKET).
 *
 * Compiling ~350 rules with libseccomp costs milliseconds, which is most of a
 * container start, so the exported BPF is cached per (profile, relevant caps,
 * libseccomp build, arch) and a start is then one read and one seccomp(). */
#include "runtime/seccomp_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/process_internal.h"
#include "runtime/runtime.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
/* socketcall's first argument (linux/net.h) */
#define SYS_SOCKET_CALL 1

/* Docker's "arches" are the native architecture of the engine, not the
 * architecture of each syscall ABI in the filter. */
enum {
	A_X86_64 = 1 << 0,
	A_X32 = 1 << 1,
	A_X86 = 1 << 2,
	A_ARM = 1 << 3,
	A_ARM64 = 1 << 4,
	A_PPC64LE = 1 << 5,
	A_S390 = 1 << 6,
	A_S390X = 1 << 7,
	A_RISCV64 = 1 << 8,
};

/* The table reads best as written. */
/* clang-format off */
#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define CAP(c) (1ULL << (c))
#define ARG_EQ(i, v) {.arg = (i), .op = SCMP_CMP_EQ, .datum_a = (v)}
#define ARG_LT(i, v) {.arg = (i), .op = SCMP_CMP_LT, .datum_a = (v)}
#define ARG_GT(i, v) {.arg = (i), .op = SCMP_CMP_GT, .datum_a = (v)}
#define ARG_MASK_EQ(i, mask, v) \
	{.arg = (i), .op = SCMP_CMP_MASKED_EQ, .datum_a = (mask), .datum_b = (v)}
#define PERSONALITY(v) \
	{.action = SCMP_ACT_ALLOW, .names = NAMES("personality"), .n_args = 1, .args = {ARG_EQ(0, v)}}

/* Namespace flags clone() may not use without CAP_SYS_ADMIN: NEWNS, NEWCGROUP,
 * NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (0x7e020000, as Docker). */
#define CLONE_NS_FLAGS 0x7e020000ULL

/* Modelled on moby/moby profiles/seccomp/default.json; the groups follow its
 * entries in order. Docker's "minKernel 4.8" entry is unconditional here:
 * hutch needs clone3 and openat2, so kernels older than 5.6 do not occur.
 * Includes Docker's additions for kernels 5.17 to 6.13 (moby#47341, #50077,
 * #50097: cachestat, fchmodat2, futex_wake..., listmount, statmount, mseal,
 * *xattrat; lsm_* only with CAP_SYS_ADMIN). A libseccomp too old to know one
 * of them skips it, and the prefix then answers ENOSYS for it. */
static const struct rule_group default_profile[] = {
	{.action = SCMP_ACT_ALLOW,
	 .names = NAMES(
		 "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
		 "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
		 "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
		 "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close",
		 "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
		 "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
		 "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
		 "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
		 "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
		 "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
		 "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
		 "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
		 "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait",
		 "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
		 "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
		 "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid",
		 "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
		 "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
		 "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
		 "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat",
		 "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
		 "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
		 "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
		 "ipc", "kill",
		 "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
		 "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount",
		 "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek",
		 "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
		 "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
		 "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
		 "mq_getsetattr", "mq_notify", "mq_open",
		 "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
		 "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
		 "msgsnd", "mseal", "msync", "munlock", "munlockall", "munmap",
		 "name_to_handle_at",
		 "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause",
		 "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
		 "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
		 "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64",
		 "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
		 "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
		 "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename",
		 "renameat", "renameat2",
		 "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
		 "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
		 "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
		 "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
		 "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
		 "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
		 "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
		 "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
		 "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid",
		 "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
		 "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
		 "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
		 "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
		 "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
		 "setxattrat", "shmat",
		 "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
		 "sigprocmask", "sigreturn", "socketpair", "splice", "stat",
		 "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat",
		 "sync",
		 "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
		 "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
		 "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
		 "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill",
		 "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
		 "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4",
		 "waitid", "waitpid", "write", "writev")},
	{.action = SCMP_ACT_ALLOW, .names = NAMES("process_vm_readv", "process_vm_writev", "ptrace")},

	/* Every socket family but AF_ALG (the kernel's crypto API: CVE-2026-31431,
	 * a page-cache write from any user) and AF_VSOCK (not namespaced: it
	 * reaches the hypervisor or the host whatever the network), as Docker.
	 * libseccomp compares all 64 bits where the kernel reads an int
	 * (0x100000028 is AF_VSOCK to it), and on i386 adds socketcall(SYS_SOCKET)
	 * for these rules, whose family lies in memory seccomp cannot read: so
	 * the prefix refuses both families again on the low 32 bits, and that
	 * socketcall outright. (io_uring, not in the table, is EPERM as in Docker
	 * since 25.0: the operations it runs bypass seccomp altogether.) */
	{.action = SCMP_ACT_ALLOW, .names = NAMES("socket"), .n_args = 1, .args = {ARG_LT(0, AF_ALG)}},
	{.action = SCMP_ACT_ALLOW, .names = NAMES("socket"), .n_args = 1,
	 .args = {ARG_EQ(0, AF_ALG + 1)}},
	{.action = SCMP_ACT_ALLOW, .names = NAMES("socket"), .n_args = 1,
	 .args = {ARG_GT(0, AF_VSOCK)}},
	{.action = SCMP_ACT_ERRNO(EPERM), .prefix = true, .names = NAMES("socket"), .n_args = 1,
	 .args = {ARG_EQ(0, AF_ALG)}},
	{.action = SCMP_ACT_ERRNO(EPERM), .prefix = true, .names = NAMES("socket"), .n_args = 1,
	 .args = {ARG_EQ(0, AF_VSOCK)}},
	/* ENOSYS, as for a kernel without socketcall: musl calls socket(2) first
	 * and never gets here; glibc and Go on i386 call socketcall alone, and
	 * their socket() fails. The other socketcalls are those libseccomp adds
	 * for the socket syscalls the table allows (connect, socketpair...). */
	{.action = SCMP_ACT_ERRNO(ENOSYS), .prefix = true, .names = NAMES("socketcall"), .n_args = 1,
	 .args = {ARG_EQ(0, SYS_SOCKET_CALL)}},

	/* PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and the query. */
	PERSONALITY(0x0),
	PERSONALITY(0x8),
	PERSONALITY(0x20000),
	PERSONALITY(0x20008),
	PERSONALITY(0xffffffff),

	{.action = SCMP_ACT_ALLOW, .if_arches = A_PPC64LE,
	 .names = NAMES("sync_file_range2", "swapcontext")},
	{.action = SCMP_ACT_ALLOW, .if_arches = A_ARM | A_ARM64,
	 .names = NAMES("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
			"cacheflush", "set_tls")},
	{.action = SCMP_ACT_ALLOW, .if_arches = A_X86_64 | A_X32, .names = NAMES("arch_prctl")},
	{.action = SCMP_ACT_ALLOW, .if_arches = A_X86_64 | A_X32 | A_X86, .names = NAMES("modify_ldt")},
	{.action = SCMP_ACT_ALLOW, .if_arches = A_S390 | A_S390X,
	 .names = NAMES("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr")},
	{.action = SCMP_ACT_ALLOW, .if_arches = A_RISCV64,
	 .names = NAMES("riscv_flush_icache", "riscv_hwprobe")},

	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_DAC_READ_SEARCH),
	 .names = NAMES("open_by_handle_at")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_ADMIN),
	 .names = NAMES("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
			"fspick", "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules",
			"lsm_set_self_attr", "mount", "mount_setattr", "move_mount", "open_tree",
			"perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname",
			"setns", "syslog", "umount", "umount2", "unshare")},
	/* Without CAP_SYS_ADMIN: clone without namespace flags (s390 swaps the
	 * first two arguments), and clone3 fails with ENOSYS, whose flags live in
	 * memory seccomp cannot read; libc then falls back to clone. */
	{.action = SCMP_ACT_ALLOW, .unless_caps = CAP(CAP_SYS_ADMIN), .unless_arches = A_S390 | A_S390X,
	 .names = NAMES("clone"), .n_args = 1, .args = {ARG_MASK_EQ(0, CLONE_NS_FLAGS, 0)}},
	{.action = SCMP_ACT_ALLOW, .unless_caps = CAP(CAP_SYS_ADMIN), .if_arches = A_S390 | A_S390X,
	 .names = NAMES("clone"), .n_args = 1, .args = {ARG_MASK_EQ(1, CLONE_NS_FLAGS, 0)}},
	{.action = SCMP_ACT_ERRNO(ENOSYS), .unless_caps = CAP(CAP_SYS_ADMIN), .names = NAMES("clone3")},

	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_BOOT), .names = NAMES("reboot")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_CHROOT), .names = NAMES("chroot")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_MODULE),
	 .names = NAMES("delete_module", "init_module", "finit_module")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_PACCT), .names = NAMES("acct")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_PTRACE),
	 .names = NAMES("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
			"process_vm_writev", "ptrace")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_RAWIO), .names = NAMES("iopl", "ioperm")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_TIME),
	 .names = NAMES("settimeofday", "stime", "clock_settime", "clock_settime64")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_TTY_CONFIG), .names = NAMES("vhangup")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYS_NICE),
	 .names = NAMES("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_SYSLOG), .names = NAMES("syslog")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_BPF), .names = NAMES("bpf")},
	{.action = SCMP_ACT_ALLOW, .if_caps = CAP(CAP_PERFMON), .names = NAMES("perf_event_open")},
};

/* clang-format on */

/* Compile options that change the BPF but not the table; part of the key. */
#define BUILD_OPTIMIZE_LEVEL 2 /* binary tree: fewer instructions run per syscall */

struct native_arch {
	uint32_t arch; /* SCMP_ARCH_* */
	uint16_t bit;
	uint32_t compat[2]; /* ABIs a process of this arch can also call with */
};

static const struct native_arch native_arches[] = {
    {SCMP_ARCH_X86_64, A_X86_64, {SCMP_ARCH_X86, SCMP_ARCH_X32}},
    {SCMP_ARCH_X32, A_X32, {SCMP_ARCH_X86, SCMP_ARCH_X86_64}},
    {SCMP_ARCH_X86, A_X86, {0, 0}},
    {SCMP_ARCH_AARCH64, A_ARM64, {SCMP_ARCH_ARM, 0}},
    {SCMP_ARCH_ARM, A_ARM, {0, 0}},
    {SCMP_ARCH_PPC64LE, A_PPC64LE, {0, 0}},
    {SCMP_ARCH_S390X, A_S390X, {SCMP_ARCH_S390, 0}},
    {SCMP_ARCH_S390, A_S390, {0, 0}},
    {SCMP_ARCH_RISCV64, A_RISCV64, {0, 0}},
};

static const struct native_arch *find_native_arch(void)
{
	uint32_t native = seccomp_arch_native();
	for (size_t i = 0; i < ARRAY_SIZE(native_arches); i++)
		if (native_arches[i].arch == native)
			return &native_arches[i];
	return NULL;
}

static bool group_applies(const struct rule_group *g, uint64_t caps, uint16_t arch_bit)
{
	if ((caps & g->if_caps) != g->if_caps)
		return false;
	if (caps & g->unless_caps)
		return false;
	if (g->if_arches && !(g->if_arches & arch_bit))
		return false;
	return !(g->unless_arches & arch_bit);
}

/* ---- The prefix ----
 *
 * libseccomp rules cannot compare the syscall number itself, so this is raw
 * BPF put in front of the exported program (whose jumps are relative and
 * which loads what it tests itself), as runc does. On x86_64:
 *
 *	ld [arch]; jeq AUDIT_ARCH_X86_64, x86_64; jeq AUDIT_ARCH_I386, i386, filter
 *	x86_64: ld [nr]
 *	        jeq socket, 0, +4; ld [a0]; jeq AF_ALG, eperm; jeq AF_VSOCK, eperm; ld [nr]
 *	        (the same for x32's socket, X32_BIT | 41)
 *	        jgt max_x86_64, 0, filter
 *	        jge X32_BIT, 0, enosys; jgt max_x32, 0, filter
 *	        jge X32_BIT + 512, 0, enosys; jgt max_x32_own, enosys, filter
 *	i386:   ld [nr]
 *	        jeq socket (359), 0, +4; ld [a0]; jeq AF_ALG, eperm; ...; ld [nr]
 *	        jeq socketcall, 0, +3; ld [a0]; jeq SYS_SOCKET, enosys; ld [nr]
 *	        jgt max_i386, enosys, filter
 *	eperm:  ret ERRNO(EPERM)
 *	enosys: ret ERRNO(ENOSYS)
 *	filter: the libseccomp program
 *
 * Refusals first: the table's .prefix groups, for what libseccomp cannot
 * refuse. It compares arguments on 64 bits where the kernel reads an int,
 * so socket(0x100000028) passed its family rule as AF_VSOCK; and on i386 it
 * turns every socket rule into an allowed socketcall(SYS_SOCKET), whose
 * family lies in memory, and refuses to add a rule against it (EEXIST).
 * Compared here on the low 32 bits, the int the kernel sees.
 *
 * Then, per AUDIT_ARCH, the intervals of numbers the profile has an opinion
 * on go to the filter and what lies between and above gets ENOSYS. An
 * allowed x86_64 syscall runs six more instructions (most never run the
 * filter at all: the kernel's always-allowed bitmap, which it builds by
 * walking these same paths, skips it: only the paths that load an argument
 * stay out of it). Appending the check instead, with libseccomp's "ret
 * EPERM" turned into jumps to it, kept the horizon off the allowed paths but
 * loaded 8% slower here (the JIT, most of the load time, did worse with
 * it); one section per ABI, each reloading the arch, 4%.
 *
 * max_* is the highest number the table names (any group: the horizon must
 * not move with capabilities, or a call a container lacks the capability for
 * would turn from EPERM into ENOSYS), as the installed libseccomp resolves it;
 * runc does the same. Not the highest number libseccomp knows: libseccomp
 * learns syscalls before the table names them (Debian updated 2.5.4 in place
 * to know those up to Linux 6.7), and with its horizon each one the profile
 * does not allow would turn from ENOSYS into EPERM with a library update, the
 * breakage this is for. A name the table lists but libseccomp cannot resolve
 * is not in the filter and, newer than the ones it knows, lies above the
 * horizon: ENOSYS.
 *
 * Private blocks: x32's own variants (512..547) and ARM's (0x0f0000..,
 * cacheflush, set_tls) are named by the table and lie far above new
 * syscalls; without their own interval no new syscall would be above the
 * horizon. Numbers of an ABI the filter lacks (x32 in an x86_64-only
 * filter) go to libseccomp, which kills them as a bad arch; but x32 left out
 * because the kernel does not run it (seccomp_kernel_runs_x32: most kernels)
 * gets ENOSYS for all its numbers, what the kernel itself answers, and the
 * filter is a third shorter (1299 instructions to 916 here, its load 0.28 to
 * 0.20 ms). s390 hands the
 * numbers it does not know to seccomp as 0 (runc special-cases it) and is
 * left out, as are arches hutch has no layout for: EPERM there, and only
 * libseccomp's socket rules (64-bit compares, socketcall open on s390). */
#define X32_SYSCALL_BIT 0x40000000u
/* arch/x86/entry/syscalls/syscall_64.tbl */
#define X32_PRIVATE_BASE (X32_SYSCALL_BIT + 512)
/* __ARM_NR_BASE */
#define ARM_PRIVATE_BASE 0x0f0000u

/* Every ABI here is little-endian: an argument's low 32 bits come first. */
struct abi_layout {
	uint32_t scmp_arch;
	uint32_t audit_arch;	/* seccomp_data.arch: x32 shares x86_64's */
	uint32_t nr_lo, nr_end; /* its numbers under audit_arch: [nr_lo, nr_end), 0: no bound */
	uint32_t private_base;	/* first number of an arch-private block (0: none) */
	/* socket(2)'s own number where libseccomp resolves "socket" to the
	 * socketcall multiplexer (arch/x86/entry/syscalls/syscall_32.tbl,
	 * arch/powerpc/kernel/syscalls/syscall.tbl); 0: it resolves it. */
	uint32_t socket_nr;
};

static const struct abi_layout abi_layouts[] = {
    {SCMP_ARCH_X86_64, AUDIT_ARCH_X86_64, 0, X32_SYSCALL_BIT, 0, 0},
    {SCMP_ARCH_X32, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, 0, X32_PRIVATE_BASE, 0},
    {SCMP_ARCH_X86, AUDIT_ARCH_I386, 0, 0, 0, 359},
    {SCMP_ARCH_AARCH64, AUDIT_ARCH_AARCH64, 0, 0, 0, 0},
    {SCMP_ARCH_ARM, AUDIT_ARCH_ARM, 0, 0, ARM_PRIVATE_BASE, 0},
    {SCMP_ARCH_PPC64LE, AUDIT_ARCH_PPC64LE, 0, 0, 0, 326},
    {SCMP_ARCH_RISCV64, AUDIT_ARCH_RISCV64, 0, 0, 0, 0},
};

/* Numbers lo..hi of one AUDIT_ARCH go to the filter. */
struct nr_interval {
	uint32_t lo, hi;
};

/* Syscall nr with the low 32 bits of argument arg equal to value: ret. */
struct refusal {
	uint32_t nr, value, ret;
	unsigned arg;
};

/* What one AUDIT_ARCH's section tests: at most two intervals and
 * ARCH_REFUSALS_MAX refusals for its ABIs. */
#define ARCH_INTERVALS_MAX 4
#define ARCH_REFUSALS_MAX  6
struct arch_plan {
	uint32_t audit_arch;
	struct nr_interval iv[ARCH_INTERVALS_MAX];
	unsigned n_iv;
	struct refusal rf[ARCH_REFUSALS_MAX];
	unsigned n_rf;
	bool too_many;
};

/* Distinct "ret" values of refusals besides ENOSYS. */
#define PREFIX_RETS_MAX 3

/* The ld [arch] and a jeq per AUDIT_ARCH; per section an ld [nr], at most
 * four instructions per refusal (jeq nr, ld, jeq value, ld [nr]) and two per
 * interval; the rets. */
_Static_assert(1 +
		       ARRAY_SIZE(abi_layouts) *
			   (1 + 1 + 4 * ARCH_REFUSALS_MAX + 2 * ARCH_INTERVALS_MAX) +
		       PREFIX_RETS_MAX + 1 <=
		   SECCOMP_ENOSYS_PREFIX_MAX,
	       "the prefix fits its buffer");
_Static_assert(SECCOMP_ENOSYS_PREFIX_MAX <= 256, "every jump in it fits in 8 bits");

static void add_interval(struct arch_plan *plan, uint32_t lo, uint32_t hi)
{
	if (plan->n_iv < ARCH_INTERVALS_MAX)
		plan->iv[plan->n_iv++] = (struct nr_interval){lo, hi};
}

/* Add abi's intervals to plan: the highest numbers the table names below and
 * in its private block. False when libseccomp resolves none of them. */
static bool add_abi_horizon(const struct abi_layout *abi, struct arch_plan *plan)
{
	uint32_t max = 0, private_max = 0;
	bool any = false;
	for (size_t i = 0; i < ARRAY_SIZE(default_profile); i++) {
		for (const char *const *name = default_profile[i].names; *name; name++) {
			/* Negative: unknown, or not a syscall of this ABI. */
			int nr = seccomp_syscall_resolve_name_arch(abi->scmp_arch, *name);
			if (nr < 0)
				continue;
			if (abi->private_base && (uint32_t)nr >= abi->private_base) {
				if ((uint32_t)nr > private_max)
					private_max = (uint32_t)nr;
			} else if (!any || (uint32_t)nr > max) {
				max = (uint32_t)nr;
				any = true;
			}
		}
	}
	if (!any)
		return false;
	add_interval(plan, abi->nr_lo, max);
	if (private_max)
		add_interval(plan, abi->private_base, private_max);
	return true;
}

/* Add the table's .prefix groups to plan, with abi's numbers. */
static void add_abi_refusals(const struct abi_layout *abi, struct arch_plan *plan)
{
	for (size_t i = 0; i < ARRAY_SIZE(default_profile); i++) {
		const struct rule_group *g = &default_profile[i];
		if (!g->prefix)
			continue;
		for (const char *const *name = g->names; *name; name++) {
			int nr = seccomp_syscall_resolve_name_arch(abi->scmp_arch, *name);
			if (nr < 0 && abi->socket_nr && !strcmp(*name, "socket"))
				nr = (int)abi->socket_nr;
			if (nr < 0)
				continue; /* not a syscall of this ABI */
			if (plan->n_rf == ARCH_REFUSALS_MAX || g->n_args != 1) {
				plan->too_many = true;
				return;
			}
			plan->rf[plan->n_rf++] =
			    (struct refusal){.nr = (uint32_t)nr,
					     .value = (uint32_t)g->args[0].datum_a,
					     .ret = g->action,
					     .arg = g->args[0].arg};
		}
	}
}

static int cmp_interval(const void *a, const void *b)
{
	const struct nr_interval *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* By number, then argument: one block per (nr, arg). */
static int cmp_refusal(const void *a, const void *b)
{
	const struct refusal *x = a, *y = b;
	if (x->nr != y->nr)
		return x->nr < y->nr ? -1 : 1;
	return x->arg < y->arg ? -1 : x->arg > y->arg;
}

/* Plans for the AUDIT_ARCHes of scmp_arches, in their order; returns how many,
 * -1 if the refusals do not fit. */
static int make_plans(const uint32_t *scmp_arches, size_t n_arches, uint32_t enosys_arch,
		      struct arch_plan plans[ARRAY_SIZE(abi_layouts)])
{
	size_t n_plans = 0;
	bool present[ARRAY_SIZE(abi_layouts)] = {false};
	for (size_t i = 0; i < n_arches; i++) {
		for (size_t a = 0; a < ARRAY_SIZE(abi_layouts); a++) {
			const struct abi_layout *abi = &abi_layouts[a];
			if (abi->scmp_arch != scmp_arches[i] || present[a])
				continue;
			struct arch_plan *plan = NULL;
			for (size_t p = 0; p < n_plans; p++)
				if (plans[p].audit_arch == abi->audit_arch)
					plan = &plans[p];
			if (!plan) {
				plan = &plans[n_plans];
				*plan = (struct arch_plan){.audit_arch = abi->audit_arch};
			}
			present[a] = add_abi_horizon(abi, plan);
			if (present[a])
				add_abi_refusals(abi, plan);
			if (present[a] && plan == &plans[n_plans])
				n_plans++;
		}
	}
	/* The numbers of an ABI sharing the AUDIT_ARCH but not in the filter
	 * are libseccomp's to kill. */
	for (size_t p = 0; p < n_plans; p++) {
		if (plans[p].too_many)
			return -1;
		for (size_t a = 0; a < ARRAY_SIZE(abi_layouts); a++) {
			const struct abi_layout *abi = &abi_layouts[a];
			if (abi->audit_arch == plans[p].audit_arch && !present[a] &&
			    abi->scmp_arch != enosys_arch)
				add_interval(&plans[p], abi->nr_lo,
					     abi->nr_end ? abi->nr_end - 1 : UINT32_MAX);
		}
		qsort(plans[p].iv, plans[p].n_iv, sizeof(plans[p].iv[0]), cmp_interval);
		qsort(plans[p].rf, plans[p].n_rf, sizeof(plans[p].rf[0]), cmp_refusal);
	}
	return (int)n_plans;
}

/* Instructions of plan's refusals: per (nr, arg) block a jeq, an ld and a
 * reload of nr, and a jeq per value. */
static unsigned refusals_len(const struct arch_plan *plan)
{
	unsigned len = 0;
	for (unsigned k = 0; k < plan->n_rf; k++) {
		const struct refusal *r = &plan->rf[k];
		bool first = k == 0 || r->nr != r[-1].nr || r->arg != r[-1].arg;
		len += 1 + (first ? 3 : 0);
	}
	return len;
}

/* Instructions of plan's intervals. */
static unsigned intervals_len(const struct arch_plan *plan)
{
	unsigned len = 0;
	for (unsigned k = 0; k < plan->n_iv; k++) {
		const struct nr_interval *iv = &plan->iv[k];
		len += iv->hi == UINT32_MAX ? 1 : !!iv->lo + 1;
	}
	return len;
}

struct bpf_writer {
	struct sock_filter *out;
	unsigned pc;
};

static void bpf_load(struct bpf_writer *w, uint32_t offset)
{
	w->out[w->pc++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset);
}

/* A conditional jump to absolute (forward) targets; 0: the next instruction. */
static void bpf_jump(struct bpf_writer *w, uint16_t op, uint32_t k, unsigned jt_to, unsigned jf_to)
{
	unsigned pc = w->pc++;
	uint8_t jt = jt_to ? (uint8_t)(jt_to - pc - 1) : 0,
		jf = jf_to ? (uint8_t)(jf_to - pc - 1) : 0;
	w->out[pc] = (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, k, jt, jf);
}

/* The refusals of plan, each block ending with nr in the accumulator again. */
static void write_refusals(struct bpf_writer *w, const struct arch_plan *plan, const uint32_t *rets,
			   unsigned n_rets, unsigned ret_pc)
{
	for (unsigned k = 0; k < plan->n_rf;) {
		const struct refusal *r = &plan->rf[k];
		unsigned n_values = 1;
		while (k + n_values < plan->n_rf && r[n_values].nr == r->nr &&
		       r[n_values].arg == r->arg)
			n_values++;
		unsigned reload = w->pc + 2 + n_values;
		bpf_jump(w, BPF_JEQ, r->nr, 0, reload + 1);
		bpf_load(w, offsetof(struct seccomp_data, args) + r->arg * sizeof(uint64_t));
		for (unsigned v = 0; v < n_values; v++) {
			unsigned i = 0;
			while (i < n_rets && rets[i] != r[v].ret)
				i++;
			bpf_jump(w, BPF_JEQ, r[v].value, ret_pc + i, 0);
		}
		bpf_load(w, offsetof(struct seccomp_data, nr));
		k += n_values;
	}
}

int seccomp_enosys_prefix(const uint32_t *scmp_arches, size_t n_arches,
			  struct sock_filter out[SECCOMP_ENOSYS_PREFIX_MAX])
{
	return seccomp_enosys_prefix_without(scmp_arches, n_arches, 0, out);
}

int seccomp_enosys_prefix_without(const uint32_t *scmp_arches, size_t n_arches,
				  uint32_t enosys_arch,
				  struct sock_filter out[SECCOMP_ENOSYS_PREFIX_MAX])
{
	struct arch_plan plans[ARRAY_SIZE(abi_layouts)];
	int n = make_plans(scmp_arches, n_arches, enosys_arch, plans);
	if (n <= 0)
		return n;
	size_t n_plans = (size_t)n;
	/* The rets at the end, ENOSYS last. */
	uint32_t rets[PREFIX_RETS_MAX + 1];
	unsigned n_rets = 0;
	for (size_t p = 0; p < n_plans; p++)
		for (unsigned k = 0; k < plans[p].n_rf; k++) {
			uint32_t ret = plans[p].rf[k].ret;
			unsigned i = 0;
			while (i < n_rets && rets[i] != ret)
				i++;
			if (i == n_rets && ret != (SECCOMP_RET_ERRNO | ENOSYS)) {
				if (n_rets == PREFIX_RETS_MAX)
					return -1;
				rets[n_rets++] = ret;
			}
		}
	rets[n_rets++] = SECCOMP_RET_ERRNO | ENOSYS;

	unsigned section[ARRAY_SIZE(abi_layouts)];
	unsigned len = 1 + (unsigned)n_plans;
	for (size_t p = 0; p < n_plans; p++) {
		section[p] = len;
		len += 1 + refusals_len(&plans[p]) + intervals_len(&plans[p]);
	}
	const unsigned ret_pc = len, enosys = len + n_rets - 1, filter = len + n_rets;

	struct bpf_writer w = {out, 0};
	bpf_load(&w, offsetof(struct seccomp_data, arch));
	for (size_t p = 0; p < n_plans; p++)
		bpf_jump(&w, BPF_JEQ, plans[p].audit_arch, section[p],
			 p + 1 < n_plans ? 0 : filter);
	for (size_t p = 0; p < n_plans; p++) {
		bpf_load(&w, offsetof(struct seccomp_data, nr));
		write_refusals(&w, &plans[p], rets, n_rets, ret_pc);
		for (unsigned k = 0; k < plans[p].n_iv; k++) {
			const struct nr_interval *iv = &plans[p].iv[k];
			bool last = k + 1 == plans[p].n_iv;
			if (iv->hi == UINT32_MAX) { /* sorted: the last one */
				bpf_jump(&w, BPF_JGE, iv->lo, filter, enosys);
				break;
			}
			if (iv->lo)
				bpf_jump(&w, BPF_JGE, iv->lo, 0, enosys);
			bpf_jump(&w, BPF_JGT, iv->hi, last ? enosys : 0, filter);
		}
	}
	for (unsigned i = 0; i < n_rets; i++)
		w.out[w.pc++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, rets[i]);
	return (int)w.pc;
}

static int prepend_enosys_prefix(const uint32_t *scmp_arches, size_t n_arches, uint32_t enosys_arch,
				 struct seccomp_prog *p, struct hutch_err **err)
{
	struct sock_filter prefix[SECCOMP_ENOSYS_PREFIX_MAX];
	int n_prefix = seccomp_enosys_prefix_without(scmp_arches, n_arches, enosys_arch, prefix);
	if (n_prefix < 0)
		return hutch_fail(err, E2BIG,
				  "the seccomp profile refuses more calls in its prefix than fit "
				  "(raise ARCH_REFUSALS_MAX in runtime/seccomp.c)");
	if (n_prefix == 0)
		return 0;
	size_t total = (size_t)p->n_insns + (size_t)n_prefix;
	if (total > BPF_MAXINSNS)
		return hutch_fail(err, E2BIG,
				  "seccomp filter of %zu instructions cannot be loaded (the kernel "
				  "takes at most %d)",
				  total, BPF_MAXINSNS);
	struct sock_filter *insns = xcalloc(total, sizeof(*insns));
	memcpy(insns, prefix, (size_t)n_prefix * sizeof(*insns));
	memcpy(insns + n_prefix, p->insns, p->n_insns * sizeof(*insns));
	free(p->insns);
	p->insns = insns;
	p->n_insns = (unsigned short)total;
	return 0;
}

static void free_ctx(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define _cleanup_seccomp_ __attribute__((cleanup(free_ctx)))

int seccomp_export_prog(scmp_filter_ctx ctx, struct seccomp_prog *out, struct hutch_err **err)
{
	_cleanup_close_ int fd = memfd_create("hutch-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return hutch_fail_sys(err, "memfd_create for the seccomp filter");
	int rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return hutch_fail(err, -rc, "export the seccomp filter");
	off_t size = lseek(fd, 0, SEEK_CUR);
	if (size < 0)
		return hutch_fail_sys(err, "seek the seccomp filter memfd");
	if (size == 0 || size % sizeof(struct sock_filter) ||
	    size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return hutch_fail(err, E2BIG, "seccomp filter of %lld bytes cannot be loaded",
				  (long long)size);
	_cleanup_free_ struct sock_filter *insns = xcalloc(1, (size_t)size);
	ssize_t n = pread(fd, insns, (size_t)size, 0);
	if (n != size)
		return hutch_fail(err, n < 0 ? errno : EIO, "read back the seccomp filter");
	out->insns = steal_ptr(insns);
	out->n_insns = (unsigned short)(size / sizeof(struct sock_filter));
	return 0;
}

int seccomp_build_default(uint64_t caps, struct seccomp_prog *out, struct hutch_err **err)
{
	*out = (struct seccomp_prog){0};
	const struct native_arch *na = find_native_arch();
	uint16_t arch_bit = na ? na->bit : 0;

	_cleanup_seccomp_ scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return hutch_fail(err, ENOMEM, "initialise libseccomp");
	/* We load the exported program ourselves, after setting no_new_privs. */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (rc < 0)
		return hutch_fail(err, -rc, "set libseccomp filter attributes");
	/* A binary tree halves the kernel's load time (and the work per
	 * syscall); a libseccomp without it still gives a correct filter. */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, BUILD_OPTIMIZE_LEVEL);
	/* The 32-bit ABIs reach the same kernel: filter them too, or a container
	 * could call int 0x80 past every rule. */
	uint32_t left_out = 0;
	for (size_t i = 0; na && i < ARRAY_SIZE(na->compat) && na->compat[i]; i++) {
		if (na->compat[i] == SCMP_ARCH_X32 && !seccomp_kernel_runs_x32()) {
			left_out = SCMP_ARCH_X32;
			continue;
		}
		rc = seccomp_arch_add(ctx, na->compat[i]);
		if (rc < 0 && rc != -EEXIST)
			return hutch_fail(err, -rc, "add seccomp architecture 0x%x", na->compat[i]);
	}

	unsigned n_rules = 0;
	for (size_t i = 0; i < ARRAY_SIZE(default_profile); i++) {
		const struct rule_group *g = &default_profile[i];
		if (g->prefix || !group_applies(g, caps, arch_bit))
			continue;
		for (const char *const *name = g->names; *name; name++) {
			int nr = seccomp_syscall_resolve_name(*name);
			if (nr == __NR_SCMP_ERROR)
				continue; /* newer than this libseccomp */
			rc = seccomp_rule_add_array(ctx, g->action, nr, g->n_args, g->args);
			if (rc < 0)
				return hutch_fail(err, -rc, "add seccomp rule for %s", *name);
			n_rules++;
		}
	}
	if (seccomp_export_prog(ctx, out, err) < 0)
		return -1;
	out->n_rules = n_rules;

	uint32_t arches[1 + ARRAY_SIZE(native_arches[0].compat)] = {seccomp_arch_native()};
	size_t n_arches = 1;
	for (size_t i = 0; na && i < ARRAY_SIZE(na->compat) && na->compat[i]; i++)
		if (na->compat[i] != left_out)
			arches[n_arches++] = na->compat[i];
	if (prepend_enosys_prefix(arches, n_arches, left_out, out, err) < 0) {
		seccomp_prog_free(out);
		return -1;
	}
	return 0;
}

/* The cache file: header then the BPF instructions. The checksum catches a
 * torn or damaged file, which could otherwise load as a different filter. */
#define CACHE_MAGIC "HUTCHBPF"
struct cache_header {
	char magic[8];
	uint64_t key;
	uint32_t n_insns;
	uint32_t n_rules;
	uint64_t checksum;
};
_Static_assert(sizeof(struct cache_header) % sizeof(struct sock_filter) == 0,
	       "header keeps the file a whole number of instructions");

#define FNV_OFFSET 0xcbf29ce484222325ULL
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV_MIX(h, v) ((h) = fnv1a((h), &(v), sizeof(v)))

static uint64_t relevant_caps(const struct rule_group *table, size_t n_groups)
{
	uint64_t mask = 0;
	for (size_t i = 0; i < n_groups; i++)
		mask |= table[i].if_caps | table[i].unless_caps;
	return mask;
}

/* Debian updates libseccomp's syscall table without changing its version
 * (2.5.4-1+deb12u1 learnt the syscalls up to Linux 6.7), and that table
 * decides which names resolve and where the ENOSYS horizon lies: so the key
 * covers the library file too. Resolving every name instead would cost about
 * 0.4 ms per start; a dladdr and a stat cost microseconds. A reinstall of the
 * same build only costs one rebuild. */
static void mix_library_identity(uint64_t *h)
{
	Dl_info info;
	struct stat st;
	if (!dladdr((void *)seccomp_version, &info) || !info.dli_fname ||
	    stat(info.dli_fname, &st) < 0)
		return;
	uint64_t id[5] = {st.st_dev, st.st_ino, (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
			  (uint64_t)st.st_mtim.tv_nsec};
	FNV_MIX(*h, id);
}

const struct rule_group *seccomp_default_table(size_t *n_groups)
{
	*n_groups = ARRAY_SIZE(default_profile);
	return default_profile;
}

/* Every field of every group goes in, so that a changed rule (an upgrade of
 * hutch) can never be served the filter an older table left in the cache. */
uint64_t seccomp_table_key(const struct rule_group *table, size_t n_groups, uint32_t version,
			   uint64_t caps)
{
	uint64_t h = FNV_OFFSET;
	const uint32_t opt = BUILD_OPTIMIZE_LEVEL;
	FNV_MIX(h, version);
	FNV_MIX(h, opt);
	for (size_t i = 0; i < n_groups; i++) {
		const struct rule_group *g = &table[i];
		for (const char *const *name = g->names; *name; name++)
			h = fnv1a(h, *name, strlen(*name) + 1);
		h = fnv1a(h, "", 1); /* where the names end */
		FNV_MIX(h, g->action);
		FNV_MIX(h, g->if_caps);
		FNV_MIX(h, g->unless_caps);
		FNV_MIX(h, g->if_arches);
		FNV_MIX(h, g->unless_arches);
		uint8_t prefix = g->prefix;
		FNV_MIX(h, prefix);
		FNV_MIX(h, g->n_args);
		for (unsigned a = 0; a < g->n_args; a++) {
			uint64_t arg[4] = {g->args[a].arg, g->args[a].op, g->args[a].datum_a,
					   g->args[a].datum_b};
			FNV_MIX(h, arg);
		}
	}
	uint64_t used_caps = caps & relevant_caps(table, n_groups);
	FNV_MIX(h, used_caps);
	const struct scmp_version *v = seccomp_version();
	uint32_t lib[3] = {v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0};
	FNV_MIX(h, lib);
	mix_library_identity(&h);
	uint32_t arch = seccomp_arch_native();
	FNV_MIX(h, arch);
	/* the filter differs with the kernel's x32 ABI (seccomp_build_default) */
	uint8_t x32 = seccomp_kernel_runs_x32();
	FNV_MIX(h, x32);
	return h;
}

static uint64_t cache_key(uint64_t caps)
{
	return seccomp_table_key(default_profile, ARRAY_SIZE(default_profile),
				 HUTCH_SECCOMP_PROFILE_VERSION, caps);
}

bool seccomp_kernel_runs_x32(void)
{
#if defined(__x86_64__)
	static int runs = -1;
	if (runs < 0) {
		/* x32's getpid: ENOSYS where the kernel has no x32 ABI (most
		 * distributions' default); a filter of ours around us answers
		 * ENOSYS there too, and another's answer keeps x32 in */
		errno = 0;
		runs = !(syscall(X32_SYSCALL_BIT | SYS_getpid) == -1 && errno == ENOSYS);
	}
	return runs;
#else
	return true;
#endif
}

char *seccomp_cache_path(uint64_t caps, const char *cache_dir)
{
	return xasprintf("%s/default-%016llx.bpf", cache_dir, (unsigned long long)cache_key(caps));
}

/* 1 on a hit, 0 when the file is missing or not to be trusted. */
static int cache_load(const char *path, uint64_t key, struct seccomp_prog *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	/* Only files we (or root) wrote, which nobody else may rewrite. */
	if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	const size_t hdr = sizeof(struct cache_header), insn = sizeof(struct sock_filter);
	if ((size_t)st.st_size <= hdr || (size_t)st.st_size > hdr + BPF_MAXINSNS * insn ||
	    ((size_t)st.st_size - hdr) % insn)
		return 0;
	size_t n_insns = ((size_t)st.st_size - hdr) / insn;

	struct cache_header h;
	_cleanup_free_ struct sock_filter *insns = xcalloc(n_insns, insn);
	struct iovec iov[2] = {{&h, hdr}, {insns, n_insns * insn}};
	if (readv(fd, iov, 2) != st.st_size)
		return 0;
	if (memcmp(h.magic, CACHE_MAGIC, sizeof(h.magic)) || h.key != key || h.n_insns != n_insns ||
	    h.checksum != fnv1a(FNV_OFFSET, insns, n_insns * insn))
		return 0;
	out->insns = steal_ptr(insns);
	out->n_insns = (unsigned short)n_insns;
	out->n_rules = h.n_rules;
	out->from_cache = true;
	return 1;
}

/* Best effort: a read-only or full cache only costs the next start a compile.
 * No fsync: a file torn by a crash fails its checksum and is rebuilt. */
static void cache_store(const char *cache_dir, const char *path, uint64_t key,
			const struct seccomp_prog *p)
{
	if (mkdir_p_at(AT_FDCWD, cache_dir, 0700, NULL) < 0)
		return;
	/* A unique temp name: concurrent starts in fresh pid namespaces all
	 * have pid 1, so a pid suffix would collide. */
	_cleanup_free_ char *tmp = xasprintf("%s.XXXXXX", path);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return;
	size_t len = (size_t)p->n_insns * sizeof(struct sock_filter);
	struct cache_header h = {.key = key,
				 .n_insns = p->n_insns,
				 .n_rules = p->n_rules,
				 .checksum = fnv1a(FNV_OFFSET, p->insns, len)};
	memcpy(h.magic, CACHE_MAGIC, sizeof(h.magic));
	struct iovec iov[2] = {{&h, sizeof(h)}, {p->insns, len}};
	bool ok = fchmod(fd, 0644) == 0 && writev(fd, iov, 2) == (ssize_t)(sizeof(h) + len) &&
		  close(steal_fd(fd)) == 0 && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
}

int seccomp_prepare_default(uint64_t caps, const char *cache_dir, struct seccomp_prog *out,
			    struct hutch_err **err)
{
	*out = (struct seccomp_prog){0};
	if (!cache_dir)
		return seccomp_build_default(caps, out, err);
	uint64_t key = cache_key(caps);
	_cleanup_free_ char *path =
	    xasprintf("%s/default-%016llx.bpf", cache_dir, (unsigned long long)key);
	if (cache_load(path, key, out))
		return 0;
	if (seccomp_build_default(caps, out, err) < 0)
		return -1;
	cache_store(cache_dir, path, key, out);
	return 0;
}

/* What seccomp(2) takes for p: a listener asks for NEW_LISTENER, and TSYNC
 * with it for TSYNC_ESRCH (the kernel refuses the two alone, as it could not
 * say which thread failed); WAIT_KILLABLE_RECV means nothing without one. */
static unsigned long load_flags(const struct seccomp_prog *p)
{
	unsigned long flags = p->flags;
	if (!p->notify)
		return flags & ~(unsigned long)SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
	if (flags & SECCOMP_FILTER_FLAG_TSYNC)
		flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
	return flags;
}

int seccomp_load_prepared(const struct seccomp_prog *p, int *listener, struct hutch_err **err)
{
	if (listener)
		*listener = -1;
	if (!p || !p->insns || !p->n_insns || (p->notify && !listener))
		return hutch_fail(err, EINVAL, "no seccomp filter prepared");
	struct sock_fprog fprog = {.len = p->n_insns, .filter = p->insns};
	unsigned long flags = load_flags(p);
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
	if (rc >= 0) {
		if (p->notify)
			*listener = (int)rc;
		return 0;
	}
	if (errno == ENOSYS && !flags &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) == 0)
		return 0;
	if (errno == EACCES)
		return hutch_fail_sys(err, "load the seccomp filter: set no_new_privs first or "
					   "hold CAP_SYS_ADMIN");
	if (errno == EINVAL && flags)
		return hutch_fail_sys(err,
				      "load the seccomp filter: this kernel refuses its flags "
				      "(0x%lx; `hutch-oci features` lists those it supports)",
				      flags);
	return hutch_fail_sys(err, "load the seccomp filter (%u instructions)", p->n_insns);
}

void seccomp_prog_free(struct seccomp_prog *p)
{
	if (!p)
		return;
	free(p->insns);
	*p = (struct seccomp_prog){0};
}

int seccomp_install_default(uint64_t caps, const char *cache_dir, struct hutch_err **err)
{
	struct seccomp_prog p;
	if (seccomp_prepare_default(caps, cache_dir, &p, err) < 0)
		return -1;
	int rc = seccomp_load_prepared(&p, NULL, err);
	seccomp_prog_free(&p);
	return rc;
}

/* ---- linux.seccomp of an OCI bundle ------------------------------------------------- */

/* The names the runtime spec takes from libseccomp's seccomp.h, in the order
 * `features` lists them (sorted, as runc does). */
static const struct {
	const char *name;
	uint32_t action;
	bool takes_data;
} oci_actions[] = {
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true},
    {"SCMP_ACT_KILL", SCMP_ACT_KILL, false},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, false},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY, false},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, false},
};

static const struct {
	const char *name;
	int op;
} oci_ops[] = {
    {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    {"SCMP_CMP_NE", SCMP_CMP_NE},
};

/* Every architecture libseccomp has a name for (those of the spec, and the
 * newer loongarch64, m68k, sh), as SCMP_ARCH_ + its libseccomp name. */
static const char *const oci_arches[] = {
    "aarch64",	"arm",	       "loongarch64", "m68k",	  "mips", "mips64", "mips64n32", "mipsel",
    "mipsel64", "mipsel64n32", "parisc",      "parisc64", "ppc",  "ppc64",  "ppc64le",	 "riscv64",
    "s390",	"s390x",       "sh",	      "sheb",	  "x32",  "x86",    "x86_64",
};

static const struct {
	const char *name;
	uint32_t flag;
} oci_flags[] = {
    {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
    {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
};

int seccomp_oci_action(const char *name, uint32_t *action, bool *takes_data)
{
	for (size_t i = 0; i < ARRAY_SIZE(oci_actions); i++)
		if (!strcmp(name, oci_actions[i].name)) {
			*action = oci_actions[i].action;
			*takes_data = oci_actions[i].takes_data;
			return 0;
		}
	return -1;
}

int seccomp_oci_op(const char *name, int *op)
{
	for (size_t i = 0; i < ARRAY_SIZE(oci_ops); i++)
		if (!strcmp(name, oci_ops[i].name)) {
			*op = oci_ops[i].op;
			return 0;
		}
	return -1;
}

int seccomp_oci_arch(const char *name, uint32_t *arch)
{
	if (strncmp(name, "SCMP_ARCH_", 10))
		return -1;
	if (!strcmp(name + 10, "NATIVE")) {
		*arch = seccomp_arch_native();
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(oci_arches); i++) {
		const char *a = oci_arches[i], *n = name + 10;
		size_t k = 0;
		while (a[k] && n[k] && n[k] == (a[k] >= 'a' && a[k] <= 'z' ? a[k] - 32 : a[k]))
			k++;
		if (a[k] || n[k])
			continue;
		*arch = seccomp_arch_resolve_name(a);
		return *arch ? 1 : 0;
	}
	return -1;
}

int seccomp_oci_flag(const char *name, uint32_t *flag)
{
	for (size_t i = 0; i < ARRAY_SIZE(oci_flags); i++)
		if (!strcmp(name, oci_flags[i].name)) {
			*flag = oci_flags[i].flag;
			return 0;
		}
	return -1;
}

/* The kernel checks the flags before it reads the program: a flag it knows
 * fails on the NULL program (EFAULT), one it does not with EINVAL. Nothing is
 * installed either way. */
static bool kernel_takes_flag(uint32_t flag)
{
	unsigned long f = flag;
	if (flag == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
		f |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, f, NULL) < 0 && errno == EFAULT;
}

char *hutch_oci_seccomp_features(void)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "enabled", json_object_new_boolean(true));
	for (size_t i = 0; i < ARRAY_SIZE(oci_actions); i++)
		json_object_array_add(a, json_object_new_string(oci_actions[i].name));
	json_object_object_add(o, "actions", a);
	a = json_object_new_array();
	for (size_t i = 0; i < ARRAY_SIZE(oci_ops); i++)
		json_object_array_add(a, json_object_new_string(oci_ops[i].name));
	json_object_object_add(o, "operators", a);
	a = json_object_new_array();
	for (size_t i = 0; i < ARRAY_SIZE(oci_arches); i++)
		if (seccomp_arch_resolve_name(oci_arches[i])) {
			char name[32] = "SCMP_ARCH_";
			for (size_t k = 0; oci_arches[i][k] && 10 + k < sizeof(name) - 1; k++) {
				char c = oci_arches[i][k];
				name[10 + k] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
			}
			json_object_array_add(a, json_object_new_string(name));
		}
	json_object_object_add(o, "archs", a);
	struct json_object *known = json_object_new_array(), *supported = json_object_new_array();
	for (size_t i = 0; i < ARRAY_SIZE(oci_flags); i++) {
		json_object_array_add(known, json_object_new_string(oci_flags[i].name));
		if (kernel_takes_flag(oci_flags[i].flag))
			json_object_array_add(supported, json_object_new_string(oci_flags[i].name));
	}
	json_object_object_add(o, "knownFlags", known);
	json_object_object_add(o, "supportedFlags", supported);
	char *text = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

/* Exactly the profile: a syscall this libseccomp does not know is left out,
 * as runc does; conditions on the same argument go in rules of their own
 * (libseccomp takes one condition per argument in a rule, and runc gives
 * them that meaning); a rule whose action is the default one is left out
 * (libseccomp refuses it, and it changes nothing). */
int seccomp_compile_oci(const struct hutch_oci_seccomp *sc, struct seccomp_prog *out,
			struct hutch_err **err)
{
	*out = (struct seccomp_prog){0};
	_cleanup_seccomp_ scmp_filter_ctx ctx = seccomp_init(sc->default_action);
	if (!ctx)
		return hutch_fail(err, EINVAL, "linux.seccomp: libseccomp refused defaultAction");
	for (size_t i = 0; i < sc->n_arches; i++) {
		int rc = seccomp_arch_add(ctx, sc->arches[i]);
		if (rc < 0 && rc != -EEXIST)
			return hutch_fail(err, -rc, "linux.seccomp.architectures[%zu]", i);
	}
	for (size_t i = 0; i < sc->n_syscalls; i++) {
		const struct hutch_oci_syscall *c = &sc->syscalls[i];
		if (c->action == sc->default_action)
			continue;
		bool same_index = false;
		for (size_t a = 0; a < c->n_args; a++)
			for (size_t b = a + 1; b < c->n_args; b++)
				same_index |= c->args[a].index == c->args[b].index;
		struct scmp_arg_cmp cmps[6];
		for (size_t a = 0; a < c->n_args; a++)
			cmps[a] = (struct scmp_arg_cmp){c->args[a].index, c->args[a].op,
							c->args[a].value, c->args[a].value_two};
		for (size_t k = 0; k < c->n_names; k++) {
			int nr = seccomp_syscall_resolve_name(c->names[k]);
			if (nr == __NR_SCMP_ERROR)
				continue;
			int rc = 0;
			if (!same_index)
				rc = seccomp_rule_add_array(ctx, c->action, nr, (unsigned)c->n_args,
							    cmps);
			for (size_t a = 0; same_index && a < c->n_args && rc >= 0; a++)
				rc = seccomp_rule_add_array(ctx, c->action, nr, 1, &cmps[a]);
			if (rc < 0) {
				_cleanup_free_ char *name =
				    printable(c->names[k], strnlen(c->names[k], 64));
				return hutch_fail(err, -rc,
						  "linux.seccomp.syscalls[%zu]: the rule for %s", i,
						  name);
			}
		}
	}
	if (seccomp_export_prog(ctx, out, err) < 0)
		return -1;
	out->flags = sc->flags;
	out->notify = sc->notify;
	return 0;
}

int seccomp_oci_save(const char *dir, const struct hutch_oci_seccomp *sc,
		     const struct seccomp_prog *p, struct hutch_err **err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	if (write_file_atomic(dfd, "seccomp.bpf", p->insns, p->n_insns * sizeof(struct sock_filter),
			      err) < 0)
		return -1;
	if (!p->flags && !p->notify)
		return 0;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "flags", json_object_new_int64(p->flags));
	json_object_object_add(o, "notify", json_object_new_boolean(p->notify));
	if (p->notify && sc->listener_path)
		json_object_object_add(o, "listenerPath",
				       json_object_new_string(sc->listener_path));
	if (p->notify && sc->listener_metadata)
		json_object_object_add(o, "listenerMetadata",
				       json_object_new_string(sc->listener_metadata));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	int rc = write_file_atomic(dfd, "seccomp.json", text, strlen(text), err);
	json_object_put(o);
	return rc;
}

static char *json_text(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		   ? xstrdup(json_object_get_string(v))
		   : NULL;
}

int seccomp_oci_load(const char *dir, struct seccomp_prog *out, bool *have, char **listener_path,
		     char **listener_metadata, struct hutch_err **err)
{
	*have = false;
	*out = (struct seccomp_prog){0};
	*listener_path = *listener_metadata = NULL;
	_cleanup_free_ char *path = xasprintf("%s/seccomp.bpf", dir);
	_cleanup_free_ char *bytes = NULL;
	size_t len = 0;
	if (read_file_at(AT_FDCWD, path, &bytes, &len, NULL) < 0)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "read %s", path);
	if (!len || len % sizeof(struct sock_filter) ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return hutch_fail(err, 0, "%s is damaged", path);
	_cleanup_free_ char *jpath = xasprintf("%s/seccomp.json", dir);
	_cleanup_free_ char *jtext = NULL;
	if (read_file_at(AT_FDCWD, jpath, &jtext, NULL, NULL) == 0) {
		struct json_object *o = json_tokener_parse(jtext), *v;
		if (!o)
			return hutch_fail(err, 0, "%s is damaged", jpath);
		if (json_object_object_get_ex(o, "flags", &v))
			out->flags = (uint32_t)json_object_get_int64(v);
		if (json_object_object_get_ex(o, "notify", &v))
			out->notify = json_object_get_boolean(v);
		*listener_path = json_text(o, "listenerPath");
		*listener_metadata = json_text(o, "listenerMetadata");
		json_object_put(o);
		if (out->notify && !*listener_path) {
			free(*listener_metadata);
			*listener_metadata = NULL;
			return hutch_fail(err, 0, "%s is damaged", jpath);
		}
	} else if (errno != ENOENT) {
		return hutch_fail_sys(err, "read %s", jpath);
	}
	out->insns = (struct sock_filter *)steal_ptr(bytes);
	out->n_insns = (unsigned short)(len / sizeof(struct sock_filter));
	*have = true;
	return 0;
}

int seccomp_listener_send(int sock, const char *oci_version, const char *metadata,
			  const char *state_json, pid_t pid, int seccomp_fd, struct hutch_err **err)
{
	struct json_object *state = json_tokener_parse(state_json);
	if (!state)
		return hutch_fail(err, EINVAL, "the container's state is not JSON");
	struct json_object *o = json_object_new_object(), *fds = json_object_new_array();
	json_object_object_add(o, "ociVersion", json_object_new_string(oci_version));
	json_object_array_add(fds, json_object_new_string("seccompFd"));
	json_object_object_add(o, "fds", fds);
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	if (metadata)
		json_object_object_add(o, "metadata", json_object_new_string(metadata));
	json_object_object_add(o, "state", state);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text);
	/* the fd with the first bytes, as the spec asks; the rest after it */
	int rc = 0;
	ssize_t n;
	while ((n = proc_send_with_fd(sock, text, len, seccomp_fd)) < 0 && errno == EINTR)
		;
	for (size_t sent = n > 0 ? (size_t)n : 0; rc == 0 && sent < len;) {
		if (n < 0 && errno != EINTR) {
			rc = hutch_fail_sys(err, "send the container process state");
			break;
		}
		n = send(sock, text + sent, len - sent, MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
	}
	json_object_put(o);
	return rc;
}
