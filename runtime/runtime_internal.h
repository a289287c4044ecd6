/* Private to runtime/. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/etcfiles_internal.h"
#include "runtime/runtime.h"

/* ---- cgroup.c ---- */
struct cgroup {
	char *path;   /* absolute path of the container's cgroup, NULL if none */
	int dirfd;    /* O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP), -1 if none */
	bool made;    /* by cgroup_create: only then does cgroup_destroy remove it */
	bool at_path; /* by cgroup_create_at: an engine's path, not <root>/hutch/<id> */
	bool has_memory, has_cpu, has_pids;
};
/* Where the container's cgroup goes (cg->path: <cgroup2>/hutch/<id> for root,
 * <the user's delegated subtree>/hutch/<id> rootless; NULL: none here), known
 * before anything is made so that the first record can name it. What cannot be
 * enforced for want of a cgroup is said once (hutch_runtime_log). */
int cgroup_plan(const struct hutch_runtime *rt, const struct hutch_spec *spec, struct cgroup *cg,
		struct hutch_err **err);
/* Create the planned cgroup and apply the spec's limits (cg->path may become
 * NULL: rootless without a writable subtree). What cannot be enforced here is
 * said once (hutch_runtime_log) and the run goes on. */
int cgroup_create(const struct hutch_runtime *rt, const struct hutch_spec *spec, struct cgroup *cg,
		  struct hutch_err **err);
/* An OCI engine's cgroupsPath (rel: under the cgroup v2 root): its missing
 * parents made (and left, as runc leaves them), the leaf made new (one that
 * exists is refused: not hutch's), the spec's limits applied. 1: made; 0: not
 * hutch's to make here (rootless, no cgroup v2, no permission): the caller
 * goes to its own place; -1: err. */
int cgroup_create_at(const struct hutch_runtime *rt, const struct hutch_spec *spec, const char *rel,
		     struct cgroup *cg, struct hutch_err **err);
/* Remove the cgroup cgroup_create_at made (its parents stay), waiting for its
 * last processes to go. Already gone is fine. */
int cgroup_remove_at(const char *path, struct hutch_err **err);
/* <cgroup2 root>/rel (NULL without cgroup v2): where cgroup_create_at puts rel. */
char *cgroup_path_at(const char *rel);
/* OCI's linux.resources as cgroup v2 values (pure: the parser's and the
 * tests'). blockIO's weight (10-1000, cgroup v1's and bfq's range) in
 * io.weight's (1-10000), linearly as crun does: 10 is 1, 500 is 4950. */
uint64_t cgroup_io_weight(uint64_t blkio_weight);
/* "MAJ:MIN VALUE" (key NULL: io.weight's per-device form) or "MAJ:MIN
 * KEY=VALUE" (io.max's; a rate of 0, cgroup v1's "no limit", is "max"). */
char *cgroup_device_line(uint64_t major, uint64_t minor, const char *key, uint64_t value);
/* A hugepage size as the runtime spec and the hugetlb controller name it
 * ("2MB", "1GB", "64KB"): digits and a unit. */
bool cgroup_hugepage_size_ok(const char *name);
/* That name for a size in KiB (the kernel's hugepages-2048kB): "2MB". */
char *cgroup_hugepage_name(uint64_t kib);
/* cpuset's list syntax: "0-3,5" (no spaces, ranges ascending). */
bool cgroup_cpu_list_ok(const char *list);
/* Why a linux.resources.unified key cannot name a file of the container's
 * cgroup (a "/", "." or "..", not CONTROLLER.NAME, or one of the files that
 * move or kill processes: cgroup.procs, threads, kill, subtree_control), or
 * NULL when it can. */
const char *cgroup_unified_key_problem(const char *key);
struct strbuf;
/* Write w[0..n) into the cgroup at dirfd, in order. One whose controller the
 * cgroup lacks adds its field to missing (to be said as not enforced), or with
 * missing NULL or w->strict is refused by name; a file missing, or a value the
 * kernel refuses, is an error naming the field. */
int cgroup_apply_writes(int dirfd, const struct hutch_cgroup_write *w, size_t n,
			struct strbuf *missing, struct hutch_err **err);
/* update: the controllers r's limits need enabled in the subtree_control of
 * each ancestor of the container's cgroup at path, from the cgroup v2 root
 * down, where each offers them (a container made without a limit can get one
 * later, as with crun, which enables them all). */
void cgroup_enable_for(const char *path, const struct hutch_resources *r);
/* What memory.swap.max gets for these limits, or -1 to leave it alone. */
int64_t cgroup_swap_max(const struct hutch_resources *res);
/* oom kills recorded in memory.events (0 if unknown). */
int64_t cgroup_oom_kills(const struct cgroup *cg);
/* Wait until empty, then rmdir (cgroup_remove). */
int cgroup_destroy(struct cgroup *cg, struct hutch_err **err);
/* Remove the container cgroup at path (.../hutch/ID), waiting for its last
 * processes to go, and the shared hutch/ parent with it when it was the last
 * one. Already gone is fine. */
int cgroup_remove(const char *path, struct hutch_err **err);
/* The cgroup a container's record names, checked before anything is done to
 * it or in it (kill, remove, exec): it must be the one cgroup_create made for
 * container id, a cgroup v2 directory of this user's at <mount>/hutch/<id>
 * (rootless: <mount>/.../hutch/<id>). Returns an O_DIRECTORY fd, or -1 with err
 * and errno: ENOENT when it is gone, EPERM when it is not the container's
 * cgroup (never touch it), else why it could not be opened. */
int cgroup_open_record(const struct hutch_runtime *rt, const char *path, const char *id,
		       struct hutch_err **err);

/* ---- devices.c: the device cgroup as a cgroup v2 eBPF program ---- */
struct bpf_insn;
/* The program for rules (later rules win, what none matches is denied), in
 * *out (caller frees); its length. Rule values must be valid (validate.c). */
size_t devices_program(const struct hutch_device_rule *rules, size_t n, struct bpf_insn **out);
/* Do the rules allow every access to every device (--privileged)? */
bool devices_allow_all(const struct hutch_device_rule *rules, size_t n);
/* What the rules say of one request (type 'b' or 'c', access from "rwm"),
 * evaluated directly: the reference the program is tested against. */
bool devices_allowed(const struct hutch_device_rule *rules, size_t n, char type, uint32_t major,
		     uint32_t minor, const char *access);
/* Before the container's first process is in cg: attach the spec's rules to
 * it. 0: attached, or nothing to attach (every device allowed; rootless,
 * where the kernel itself refuses mknod and device nodes on the mounts a
 * user namespace makes); 1: no program could be attached (no cgroup, bpf
 * refused), and the container must make up for it (mount_ctx.nodev, no
 * CAP_MKNOD): said once on stderr unless quiet; -1 when it cannot (a device
 * node the rules allow less than read and write: a bind gives both). */
int devices_attach(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		   const struct cgroup *cg, struct hutch_err **err);
/* devices_attach in two steps, so that loading the program (a few hundred
 * microseconds) overlaps the container's setup: what the container needs
 * (-1 as above, the fallback said once), then, for DEVICES_PROGRAM, the
 * program attached before its command runs (0; 1: the kernel refused it and
 * the container must start again as DEVICES_NODEV; -1). */
enum { DEVICES_FREE = 0, DEVICES_NODEV = 1, DEVICES_PROGRAM = 2 };
int devices_plan(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		 const struct cgroup *cg, struct hutch_err **err);
int devices_attach_program(const struct hutch_runtime *rt, const struct hutch_spec *spec,
			   const struct cgroup *cg, struct hutch_err **err);

/* ---- spec.c, validate.c ---- */
/* A non-empty subset of "rwm", each letter at most once. */
bool spec_device_access_valid(const char *access);
/* Does the container have a namespace of type t of its own (new or joined)? */
static inline bool spec_has_ns(const struct hutch_spec *s, enum hutch_ns_type t)
{
	return hutch_spec_namespace(s, t) != NULL;
}
/* Bits (1 << HUTCH_NS_*) of the types the spec lists. */
unsigned spec_ns_mask(const struct hutch_spec *s);
/* The CLONE_NEW* flag of a type, and those of every bit in mask. */
int ns_clone_flag(enum hutch_ns_type t);
int ns_clone_flags(unsigned mask);
/* Spec paths (clean and absolute); trailing slashes do not count. path_below:
 * strictly below dir ("/" has everything else below it). */
bool path_same(const char *a, const char *b);
bool path_below(const char *path, const char *dir);
/* The one check of each kind of DNS and /etc/hosts value, with its message. */
int spec_check_dns_server(const char *address, struct hutch_err **err);
int spec_check_dns_search(const char *domain, struct hutch_err **err);
int spec_check_dns_option(const char *option, struct hutch_err **err);
int spec_check_host_entry(const char *hostname, const char *address, struct hutch_err **err);

/* ---- mounts.c (run in the container's child, before pivot_root) ---- */
/* Parse OCI mount options into mount attributes and fs options. */
struct mount_opts {
	uint64_t attr_set, attr_clr; /* MOUNT_ATTR_* */
	/* MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE; 0: not given */
	uint64_t propagation;
	bool propagation_recursive; /* rprivate, rslave, rshared, runbindable */
	bool bind, recursive, readonly;
	/* id-mapped (idmap, ridmap, or the mount's maps given): the bind, or
	 * with ridmap all of its tree */
	bool idmap, idmap_recursive;
	bool tmpcopyup; /* a tmpfs that starts as a copy of what it covers */
	char *data;	/* comma-separated fs options for fsconfig */
};
int mount_opts_parse(const struct hutch_mount *m, struct mount_opts *out, struct hutch_err **err);
void mount_opts_free(struct mount_opts *o);

/* --privileged: one of the host's device nodes, listed by the parent. */
struct host_dev {
	char *path; /* "/dev/dri/card0" */
	mode_t mode;
	dev_t rdev;
	uid_t uid;
	gid_t gid;
};

struct mount_ctx {
	const struct hutch_spec *spec;
	const char *rootfs; /* where the overlay is mounted (host path) */
	const char *upper, *work;
	const struct etc_files *etc; /* the container's /etc files, NULL: none */
	bool rootless;
	/* the container has a cgroup of its own; without one, /sys/fs/cgroup is an
	 * empty tmpfs (a cgroup2 mount would show the cgroup hutch runs in) */
	bool own_cgroup;
	/* No device program guards the container (devices_attach said so):
	 * every mount but its own devpts is nodev, and its device nodes are
	 * binds of the host's, as rootless */
	bool nodev;
	/* upper and work live on a tmpfs the child mounts on rootfs first */
	bool rw_tmpfs;
	/* Made by mounts_prepare in the parent, so that the child allocates
	 * nothing for them; one entry per spec mount in each array. */
	struct mount_opts *opts; /* its options, parsed once */
	/* a bind that keeps mount propagation with the host, cloned by
	 * mounts_setup_rootfs before "/" is made private, or -1 */
	int *bind_fds;
	/* the mount id of a filesystem the container mounts itself (a tmpfs...),
	 * set by the child as it mounts it; 0 for binds */
	uint64_t *own_mnt_ids;
	/* the overlay's options for mount(2), for kernels without lowerdir+ */
	char *overlay_legacy_opts;
	struct host_dev *host_devs; /* --privileged only */
	size_t n_host_devs;
};
/* Host side, before the clone: parse every mount's options (bad ones named),
 * check that binds with slave or shared propagation have a source on a shared
 * (or slave) mount, as in Docker, and fill in the rest of ctx for the child.
 * mounts_release frees it (in the parent; the child's copy goes with exec). */
int mounts_prepare(struct mount_ctx *ctx, struct hutch_err **err);
void mounts_release(struct mount_ctx *ctx);
int mounts_setup_rootfs(struct mount_ctx *ctx, int *rootfd_out, struct hutch_err **err);
/* Mounts, /dev, the /etc files, masked and read-only paths, and the working
 * directory (created if missing, as Docker does). */
int mounts_setup_container(const struct mount_ctx *ctx, int rootfd, struct hutch_err **err);
int mounts_pivot_root(int rootfd, bool readonly, struct hutch_err **err);
/* After mounts_pivot_root: the root's propagation (MS_SHARED, MS_UNBINDABLE),
 * of all its tree if recursive. A new peer group of the container's own:
 * nothing of the host's is a peer of it (its mounts were all made private). */
int mounts_root_propagation(unsigned long type, bool recursive, struct hutch_err **err);
/* Resolve (creating directories as needed) a path inside the root: O_PATH fd. */
int root_open_dir_p(int rootfd, const char *path, bool create, struct hutch_err **err);

/* ---- user.c (inside the container, after pivot_root) ---- */
struct user_ids {
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	char *home;
};
/* Resolve "uid[:gid]" or "name[:group]" against /etc/passwd and /etc/group of the
 * current root. Empty or NULL means root. */
int user_resolve(const char *spec_user, struct user_ids *out, struct hutch_err **err);
void user_ids_free(struct user_ids *u);
/* Parsers, exposed for unit tests: lookup in a passwd/group file's contents. */
int passwd_lookup(const char *content, const char *name_or_uid, uid_t *uid, gid_t *gid,
		  char **home);
int group_lookup(const char *content, const char *name_or_gid, gid_t *gid);
size_t group_members(const char *content, const char *user, gid_t primary, gid_t **out);

/* ---- ocispec.c ---- */
/* spec->id for an OCI container id (any text): its sha256 in hex. */
void oci_spec_set_id(struct hutch_spec *spec, const char *oci_id);
/* ocispec.c: "0-3,7" (CPUs, NUMA nodes) into a mask of HUTCH_OCI_MAX_CPUS
 * bits; NULL, or what is wrong with it. */
const char *oci_parse_id_list(const char *s, uint64_t *mask);
/* A name the kernel takes for a network interface (linux.netDevices). */
bool oci_ifname_valid(const char *name);
/* container.c: bring up lo in the current network namespace. */
int net_loopback_up(struct hutch_err **err);
