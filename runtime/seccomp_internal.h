/* The default seccomp profile (modelled on Docker's), compiled once per
 * capability set and cached as raw BPF so that starting a container costs a
 * file read and one seccomp() call instead of a libseccomp compile.
 *
 * Two steps because the cache lives on the host: prepare before pivot_root
 * (or in the parent before clone; the program is plain memory), load last,
 * after PR_SET_NO_NEW_PRIVS, just before execve. */
#pragma once
#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Bump when the profile's meaning changes in a way the table itself does not
 * show (the cache key also covers the table, the libseccomp build and arch).
 * 2: the ENOSYS prefix for syscalls newer than the table.
 * 3: the prefix also refuses the table's .prefix groups (socket families on
 *    the low 32 bits, i386 socketcall(SYS_SOCKET)). */
#define HUTCH_SECCOMP_PROFILE_VERSION 3

/* One entry of the profile's table: names that get action, under conditions. */
struct rule_group {
	const char *const *names; /* NULL-terminated */
	uint32_t action;
	uint64_t if_caps;     /* only with all of these capabilities */
	uint64_t unless_caps; /* not with any of these */
	uint16_t if_arches;   /* only on these native arches (0: any) */
	uint16_t unless_arches;
	/* Not a libseccomp rule: the prefix refuses (action, an SCMP_ACT_ERRNO)
	 * each name whose argument args[0].arg, as the int the kernel reads
	 * (its low 32 bits), equals args[0].datum_a; on every ABI with a
	 * layout, whatever the libseccomp rules allow. No other conditions. */
	bool prefix;
	unsigned n_args;
	struct scmp_arg_cmp args[1];
};

/* The default profile's table, n_groups entries. */
const struct rule_group *seccomp_default_table(size_t *n_groups);

/* The cache key of a table for caps under profile version `version`: covers
 * every field of every group, the capabilities the table looks at, the
 * libseccomp build and the native arch. seccomp_cache_path uses it with the
 * default table and HUTCH_SECCOMP_PROFILE_VERSION. */
uint64_t seccomp_table_key(const struct rule_group *table, size_t n_groups, uint32_t version,
			   uint64_t caps);

/* A BPF program ready for SECCOMP_SET_MODE_FILTER. */
struct seccomp_prog {
	struct sock_filter *insns;
	unsigned short n_insns;
	unsigned n_rules; /* syscall rules the profile added (kept in the cache too) */
	bool from_cache;
	uint32_t flags; /* SECCOMP_FILTER_FLAG_* for seccomp(2) (linux.seccomp.flags) */
	bool notify;	/* has SCMP_ACT_NOTIFY rules: loaded with a listener */
};

/* Compile the default profile for caps (bit n = capability n) with libseccomp
 * and export its BPF into out, behind the ENOSYS prefix. No cache involved. */
int seccomp_build_default(uint64_t caps, struct seccomp_prog *out, struct hutch_err **err);

/* The prefix: for each ABI in scmp_arches (SCMP_ARCH_*) that hutch knows the
 * numbering of, the table's .prefix groups get their action, and syscall
 * numbers above the highest one the table names (as the installed libseccomp
 * resolves them) get ERRNO(ENOSYS); the rest goes on to the instruction after
 * it. Returns its length (0: no ABI known), at most SECCOMP_ENOSYS_PREFIX_MAX;
 * its last instruction is "ret ERRNO(ENOSYS)". -1 if the table has more
 * .prefix groups than fit (a table error the unit test catches). */
#define SECCOMP_ENOSYS_PREFIX_MAX 256
int seccomp_enosys_prefix(const uint32_t *scmp_arches, size_t n_arches,
			  struct sock_filter out[SECCOMP_ENOSYS_PREFIX_MAX]);
/* The same, with the numbers of enosys_arch (an SCMP_ARCH_* sharing an
 * AUDIT_ARCH with one in scmp_arches, left out of the filter because the
 * kernel does not run that ABI) answered ENOSYS, as the kernel itself would,
 * rather than left to libseccomp (which kills a caller of an ABI it was not
 * given). 0: none. */
int seccomp_enosys_prefix_without(const uint32_t *scmp_arches, size_t n_arches,
				  uint32_t enosys_arch,
				  struct sock_filter out[SECCOMP_ENOSYS_PREFIX_MAX]);
/* Does the kernel run x32 syscalls (bit 30 of the number on x86_64)? Where it
 * does not, the default filter leaves x32 out (a third of its length and of
 * its load time) and the prefix answers its numbers ENOSYS. */
bool seccomp_kernel_runs_x32(void);

/* Load the program for caps from cache_dir, or build it and store it there
 * (atomically; a failed cache write is not an error). cache_dir may be NULL
 * (always build) and is created if missing. An invalid cache file is ignored
 * and replaced. */
int seccomp_prepare_default(uint64_t caps, const char *cache_dir, struct seccomp_prog *out,
			    struct hutch_err **err);

/* Install p in the calling thread with p->flags: needs no_new_privs or
 * CAP_SYS_ADMIN. Only a seccomp() (or prctl) call: safe after pivot_root and
 * in a child. With p->notify the filter gets a listener, its fd (CLOEXEC) in
 * *listener (which must then be given); else *listener is -1. */
int seccomp_load_prepared(const struct seccomp_prog *p, int *listener, struct hutch_err **err);

void seccomp_prog_free(struct seccomp_prog *p);

/* A libseccomp filter's BPF into out (an OCI bundle's linux.seccomp). */
int seccomp_export_prog(scmp_filter_ctx ctx, struct seccomp_prog *out, struct hutch_err **err);

/* linux.seccomp's names, as the runtime spec takes them from libseccomp.
 * An action's value without its data (SCMP_ACT_ERRNO(0), SCMP_ACT_TRACE(0));
 * *takes_data: ERRNO and TRACE, the actions errnoRet goes with. -1: no such
 * action. */
int seccomp_oci_action(const char *name, uint32_t *action, bool *takes_data);
int seccomp_oci_op(const char *name, int *op);
/* 1: *arch is its SCMP_ARCH_*; 0: an architecture this libseccomp does not
 * know; -1: not an architecture's name. */
int seccomp_oci_arch(const char *name, uint32_t *arch);
/* SECCOMP_FILTER_FLAG_*; -1: not one of the spec's flags. */
int seccomp_oci_flag(const char *name, uint32_t *flag);

struct hutch_oci_seccomp;
/* linux.seccomp compiled by libseccomp exactly as given (no prefix of
 * hutch's own), with its flags and whether it notifies. */
int seccomp_compile_oci(const struct hutch_oci_seccomp *sc, struct seccomp_prog *out,
			struct hutch_err **err);
/* The compiled filter in the container's state directory dir (for exec: a
 * bundle may change after create): seccomp.bpf and, with flags or a
 * listener, seccomp.json. load: *have false when there is none. */
int seccomp_oci_save(const char *dir, const struct hutch_oci_seccomp *sc,
		     const struct seccomp_prog *p, struct hutch_err **err);
int seccomp_oci_load(const char *dir, struct seccomp_prog *out, bool *have, char **listener_path,
		     char **listener_metadata, struct hutch_err **err);
/* The runtime spec's container process state to the listener connected on
 * sock: ociVersion, fds ["seccompFd"], pid, metadata, state (state_json, the
 * container's state), with seccomp_fd by SCM_RIGHTS. */
int seccomp_listener_send(int sock, const char *oci_version, const char *metadata,
			  const char *state_json, pid_t pid, int seccomp_fd,
			  struct hutch_err **err);

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
