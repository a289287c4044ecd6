/* Private to runtime/: the container handle. */
#pragma once
#include "runtime/runtime_internal.h"

struct hutch_container {
	struct hutch_runtime *rt;
	char *id;
	char *data_dir; /* DATA/containers/ID: upper/ and work/ of the overlay */
	bool created_data;
	struct cgroup cg;
	pid_t pid;
	int pidfd;
	int pty_master;
	bool terminal;
	bool reaped;
	bool started; /* the command exec'd: keep the record unless auto_remove */
	bool again;   /* an existing container started again: its dir and record stay */
	int64_t memory_limit;
	struct hutch_state *state; /* the record this process owns */
};

/* userns.c: write uid_map/gid_map for pid (newuidmap/newgidmap when rootless). */
int userns_write_maps(const struct hutch_runtime *rt, const struct hutch_spec *spec, pid_t pid,
		      struct hutch_err **err);

/* specjson.c: DATA/containers/ID/spec.json, atomically (the dir must exist). */
int spec_write(const struct hutch_runtime *rt, const struct hutch_spec *spec,
	       struct hutch_err **err);

/* container.c: hutch_container_start, or (again) start an existing, exited
 * container again in its own dir and record (hutch_container_start_existing). */
int container_start(struct hutch_runtime *rt, const struct hutch_spec *spec,
		    const struct hutch_io *io, bool again, struct hutch_container **out,
		    struct hutch_err **err);

/* state.c */
/* The record in DATA/containers/ID/state.json, as it is (no repair). */
int state_read(const struct hutch_runtime *rt, const char *id, struct hutch_state **out);
/* Empty and remove the container's cgroup the record names (if it is its
 * own); s->cgroup becomes NULL. */
int state_remove_cgroup(struct hutch_runtime *rt, struct hutch_state *s, struct hutch_err **err);
int state_write(const struct hutch_runtime *rt, const struct hutch_state *s,
		struct hutch_err **err);
int state_remove_dir(const struct hutch_runtime *rt, const char *id, struct hutch_err **err);
int state_name_taken(struct hutch_runtime *rt, const char *name, char *owner_id);
int64_t now_ns(void);
