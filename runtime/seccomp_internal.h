/* The default seccomp profile (modelled on Docker's), compiled once per
 * capability set and cached as raw BPF so that starting a container costs a
 * file read and one seccomp() call instead of a libseccomp compile.
 *
 * Two steps because the cache lives on the host: prepare before pivot_root
 * (or in the parent before clone; the program is plain memory), load last,
 * after PR_SET_NO_NEW_PRIVS, just before execve. */
#pragma once
#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Bump when the profile's meaning changes in a way the table itself does not
 * show (the cache key also covers the table, the libseccomp build and arch).
 * 2: the ENOSYS prefix for syscalls newer than the table. */
#define HUTCH_SECCOMP_PROFILE_VERSION 2

/* A BPF program ready for SECCOMP_SET_MODE_FILTER. */
struct seccomp_prog {
	struct sock_filter *insns;
	unsigned short n_insns;
	unsigned n_rules; /* syscall rules the profile added (kept in the cache too) */
	bool from_cache;
};

/* Compile the default profile for caps (bit n = capability n) with libseccomp
 * and export its BPF into out, behind the ENOSYS prefix. No cache involved. */
int seccomp_build_default(uint64_t caps, struct seccomp_prog *out, struct hutch_err **err);

/* The ENOSYS prefix: for each ABI in scmp_arches (SCMP_ARCH_*) that hutch
 * knows the numbering of, syscall numbers above the highest one the profile's
 * table names (as the installed libseccomp resolves them) get ERRNO(ENOSYS);
 * the rest goes on to the instruction after it. Returns its length (0: no ABI
 * known), at most SECCOMP_ENOSYS_PREFIX_MAX; its last instruction is
 * "ret ERRNO(ENOSYS)". */
#define SECCOMP_ENOSYS_PREFIX_MAX 64
unsigned seccomp_enosys_prefix(const uint32_t *scmp_arches, size_t n_arches,
			       struct sock_filter out[SECCOMP_ENOSYS_PREFIX_MAX]);

/* Load the program for caps from cache_dir, or build it and store it there
 * (atomically; a failed cache write is not an error). cache_dir may be NULL
 * (always build) and is created if missing. An invalid cache file is ignored
 * and replaced. */
int seccomp_prepare_default(uint64_t caps, const char *cache_dir, struct seccomp_prog *out,
			    struct hutch_err **err);

/* Install p in the calling thread: needs no_new_privs or CAP_SYS_ADMIN.
 * Only a seccomp() (or prctl) call: safe after pivot_root and in a child. */
int seccomp_load_prepared(const struct seccomp_prog *p, struct hutch_err **err);

void seccomp_prog_free(struct seccomp_prog *p);

/* Install the default profile in the calling thread (after no_new_privs or
 * with CAP_SYS_ADMIN). caps = the container's effective capability mask (bit
 * n = capability n) which enables the capability-conditional rules as Docker
 * does (CAP_SYS_ADMIN: mount, umount2, unshare, setns, clone with namespace
 * flags, clone3...; CAP_SYS_PTRACE: kcmp, pidfd_getfd, process_madvise;
 * CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYS_NICE, CAP_SYS_PACCT,
 * CAP_SYS_RAWIO, CAP_SYS_TTY_CONFIG, CAP_SYSLOG, CAP_BPF, CAP_PERFMON,
 * CAP_DAC_READ_SEARCH open_by_handle_at, CAP_SYS_CHROOT chroot).
 * prepare + load + free in one call. */
int seccomp_install_default(uint64_t caps, const char *cache_dir, struct hutch_err **err);

/* The cache file cache_dir/default-<key>.bpf for caps (malloc'd). Capabilities
 * the profile does not look at do not change the key. */
char *seccomp_cache_path(uint64_t caps, const char *cache_dir);
