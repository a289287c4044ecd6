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
	struct io_relay *relay; /* without a terminal: the stdio relayed (io.c), or NULL */
	bool terminal;
	bool reaped;
	bool started; /* the command exec'd: keep the record unless auto_remove */
	bool again;   /* an existing container started again: its dir and record stay */
	int64_t memory_limit;
	struct hutch_state *state; /* the record this process owns */
};

/* io.c: the caller's stdio for a container without a terminal. Each of the
 * caller's fds that is not a pipe, a socket or /dev/null gets a pipe of its
 * own (stdout and stderr one together when they are the same file), which
 * hutch_container_attach_wait relays; *child gets the fds the container's
 * process is to have (the caller's, or the pipes' ends). stdin is looked at
 * only if interactive. *out stays NULL when nothing needs a relay. */
struct io_relay;
int io_relay_prepare(const struct hutch_io *io, bool interactive, struct hutch_io *child,
		     struct io_relay **out, struct hutch_err **err);
/* The container's process has its ends (clone3 returned): close ours of them,
 * so that EOF comes when the container's are closed. */
void io_relay_started(struct io_relay *r);
void io_relay_free(struct io_relay *r);

/* userns.c: enter hutch_runtime.userns_parent (if set and not already in it),
 * before the clone that makes the container's user namespace. */
int userns_enter_parent(const struct hutch_runtime *rt, struct hutch_err **err);
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
/* state_write in two steps: the record written under a temporary name while
 * nothing waits for it (the child sets up its mounts), then put in place with
 * one rename once it is true; or dropped. stage returns the container dir's fd
 * for the other two (which close it), -1 with err. */
int state_stage(const struct hutch_runtime *rt, const struct hutch_state *s,
		struct hutch_err **err);
int state_stage_commit(int dfd, struct hutch_err **err);
void state_stage_drop(int dfd);
int state_remove_dir(const struct hutch_runtime *rt, const char *id, struct hutch_err **err);
/* Make DATA/containers/ID (its path, or NULL with err). in_run: a container
 * that lives as long as its hutch process (a foreground --rm): where RUN is in
 * memory, its dir is RUN/rm/ID16 with a link to it in DATA, so that a run
 * makes and frees no block of the disk (on a disk mounted with discard, each
 * freed block cost up to milliseconds). */
char *state_make_dir(const struct hutch_runtime *rt, const char *id, bool in_run,
		     struct hutch_err **err);
/* Remove a container's dir given by path, and what it links to. */
int state_remove_dir_at(const char *dir, struct hutch_err **err);
int state_name_taken(struct hutch_runtime *rt, const char *name, char *owner_id);
int64_t now_ns(void);

/* container.c: the namespaces of an OCI bundle's container. */
/* The clone3 flags for its new namespaces: with a user namespace joined by
 * path only a new pid namespace (the child makes the others in it), never the
 * time namespace (the child makes it, with its offsets). */
uint64_t ns_oci_clone_flags(const struct hutch_spec *spec);
/* A user namespace joined by path and a new pid namespace: the clone is made
 * from a process in that user namespace (spawn_req.clone_userns_fd), its fd
 * in *fd; else -1. */
int ns_oci_clone_userns(const struct hutch_spec *spec, int *fd, struct hutch_err **err);
/* The pid namespace to clone its process into (setns before the clone): the
 * one at its path, in *fd (-1: none to enter). */
int ns_oci_pid_target(const struct hutch_spec *spec, int *fd, struct hutch_err **err);
/* In its process: join those given by path (user first, mount last), make the
 * new ones in a joined user namespace, and the time namespace with its
 * offsets. */
int ns_oci_enter(const struct hutch_oci_config *cfg, struct hutch_err **err);
