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
	int64_t memory_limit;
	struct hutch_state *state; /* the record this process owns */
};

/* userns.c: write uid_map/gid_map for pid (newuidmap/newgidmap when rootless). */
int userns_write_maps(const struct hutch_runtime *rt, const struct hutch_spec *spec, pid_t pid,
		      struct hutch_err **err);

/* specjson.c: DATA/containers/ID/spec.json, atomically (the dir must exist). */
int spec_write(const struct hutch_runtime *rt, const struct hutch_spec *spec,
	       struct hutch_err **err);

/* state.c */
int state_write(const struct hutch_runtime *rt, const struct hutch_state *s,
		struct hutch_err **err);
int state_remove_dir(const struct hutch_runtime *rt, const char *id, struct hutch_err **err);
int state_name_taken(struct hutch_runtime *rt, const char *name, char *owner_id);
int64_t now_ns(void);
