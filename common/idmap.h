/* Rootless id mappings: the user as root in the container, plus its subordinate
 * ranges from /etc/subuid and /etc/subgid (set up with the setuid newuidmap and
 * newgidmap helpers of the uidmap package). Shared by runtime/ (containers) and
 * images/ (unpacking layers and removing files owned by subordinate ids). */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct id_range {
	uint32_t inside, outside, count;
};

struct id_mapping {
	struct id_range uid[8], gid[8];
	size_t n_uid, n_gid;
	bool subordinate; /* has ranges beyond the user itself */
};

/* Parse a subuid/subgid file's text for user (name) or uid; up to max ranges,
 * in file order. Returns how many were found. Exposed for unit tests. */
size_t subid_parse(const char *text, const char *user, uid_t uid, struct id_range *out, size_t max);
/* The mapping for the calling user: 0 -> self, then subordinate ranges from 1. */
void id_mapping_for_self(struct id_mapping *m);
/* Write the maps for pid (a process that just entered a new user namespace). */
int id_mapping_apply(const struct id_mapping *m, pid_t pid, struct hutch_err **err);
/* Run fn(arg) in a child that is root in a new user namespace with mapping m.
 * Returns fn's result (0 or -1 with *err filled from the child's message). */
int userns_run(const struct id_mapping *m, int (*fn)(void *arg, struct hutch_err **err),
	       void *arg, struct hutch_err **err);
/* remove_tree_at, done inside the user namespace when rootless with
 * subordinate ids (files may belong to ids the user cannot touch directly). */
int remove_tree_as_owner(const char *path, struct hutch_err **err);
