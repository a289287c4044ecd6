/* Private to runtime/. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/etcfiles_internal.h"
#include "runtime/runtime.h"

/* ---- cgroup.c ---- */
struct cgroup {
	char *path; /* absolute path of the container's cgroup, NULL if none */
	int dirfd; /* O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP), -1 if none */
	bool made; /* by cgroup_create: only then does cgroup_destroy remove it */
	bool has_memory, has_cpu, has_pids;
};
/* Where the container's cgroup goes (cg->path: <cgroup2>/hutch/<id> for root,
 * <the user's delegated subtree>/hutch/<id> rootless; NULL: none here), known
 * before anything is made so that the first record can name it. What cannot be
 * enforced for want of a cgroup is said once on stderr (unless quiet). */
int cgroup_plan(const struct hutch_runtime *rt, const struct hutch_spec *spec, struct cgroup *cg,
		struct hutch_err **err);
/* Create the planned cgroup and apply the spec's limits (cg->path may become
 * NULL: rootless without a writable subtree). What cannot be enforced here is
 * said once on stderr (unless quiet) and the run goes on. */
int cgroup_create(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		  struct cgroup *cg, struct hutch_err **err);
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

/* ---- mounts.c (run in the container's child, before pivot_root) ---- */
struct mount_ctx {
	const struct hutch_spec *spec;
	const char *rootfs; /* where the overlay is mounted (host path) */
	const char *upper, *work;
	const struct etc_files *etc; /* the container's /etc files, NULL: none */
	bool rootless;
	/* Set by mounts_setup_rootfs, one per spec mount: a bind that keeps mount
	 * propagation with the host, cloned before "/" is made private, or -1. */
	int *bind_fds;
};
/* Host side, before anything is created: a bind with slave or shared
 * propagation needs a source on a shared (or slave) mount, as in Docker. */
int mounts_check_propagation(const struct hutch_spec *spec, struct hutch_err **err);
int mounts_setup_rootfs(struct mount_ctx *ctx, int *rootfd_out, struct hutch_err **err);
int mounts_setup_container(const struct mount_ctx *ctx, int rootfd, struct hutch_err **err);
int mounts_pivot_root(int rootfd, bool readonly, struct hutch_err **err);
/* Resolve (creating directories as needed) a path inside the root: O_PATH fd. */
int root_open_dir_p(int rootfd, const char *path, bool create, struct hutch_err **err);
/* Parse OCI mount options into mount attributes and fs options. */
struct mount_opts {
	uint64_t attr_set, attr_clr; /* MOUNT_ATTR_* */
	/* MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE; 0: not given */
	uint64_t propagation;
	bool propagation_recursive; /* rprivate, rslave, rshared, runbindable */
	bool bind, recursive, readonly;
	char *data; /* comma-separated fs options for fsconfig */
};
int mount_opts_parse(const struct hutch_mount *m, struct mount_opts *out, struct hutch_err **err);
void mount_opts_free(struct mount_opts *o);

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
