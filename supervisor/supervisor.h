/* The supervisor: stacks of services read from a stack file (docs/stack-file.md).
 * This is the module's public header; the model behind struct hutch_stack is
 * private to supervisor/ (supervisor/stack.h). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct hutch_stack;

/* Read the stack file at path (INI, docs/stack-file.md; a compose file when its
 * name ends in .yaml or .yml, docs/compose.md) with its .env and env
 * files into a validated model, before anything is started. Every problem found
 * is reported, one per line as "FILE:LINE: KEY: what is wrong" (a compiler's
 * way), in one err; nothing is returned then. Interpolation reads the process's
 * environment. Warnings (an unset variable read as "") are kept in the model:
 * hutch_stack_warnings. */
int hutch_stack_load(const char *path, struct hutch_stack **out, struct hutch_err **err);
void hutch_stack_free(struct hutch_stack *stack);

const char *hutch_stack_name(const struct hutch_stack *stack);
/* Warnings found while loading, each "FILE:LINE: KEY: text"; *n gets the count. */
const char *const *hutch_stack_warnings(const struct hutch_stack *stack, size_t *n);

/* ---- compose files (docs/compose.md) and finding a stack's file -------------
 * A compose file is read into the same model as a stack file: every behaviour
 * of a service is the one the INI file gets. */
struct hutch_stack_load_opts {
	const char *project_name;     /* -p NAME: wins over COMPOSE_PROJECT_NAME and name: */
	const char *const *env_files; /* --env-file, in order: instead of .env */
	size_t n_env_files;
	const char *const *profiles; /* --profile ("*": all); none: COMPOSE_PROFILES */
	size_t n_profiles;
	bool ignore_unsupported; /* keys hutch cannot honour: warnings, not errors */
	char **envp;		 /* NULL: the process's environment */
};
/* Load paths: one hutch.ini (INI), or one or more compose files (.yaml, .yml),
 * each later one merged onto the ones before by the compose spec's rules.
 * Errors as hutch_stack_load's, "FILE:LINE:COLUMN: PATH: what is wrong" for
 * compose files. opts may be NULL. */
int hutch_stack_load_files(const char *const *paths, size_t n,
			   const struct hutch_stack_load_opts *opts, struct hutch_stack **out,
			   struct hutch_err **err);
/* The stack file of dir (NULL: the current directory) or the nearest directory
 * above it with one: hutch.ini, else compose.yaml, compose.yml,
 * docker-compose.yaml, docker-compose.yml (with its .override.yaml or
 * .override.yml beside it, as docker compose reads it). *paths (allocated,
 * strv_free) gets 1 or 2 paths. */
int hutch_stack_find(const char *dir, char ***paths, size_t *n, struct hutch_err **err);
/* Where a stack is read from, as `hutch up` was given it: its files (absolute)
 * and the load options. The supervisor reads its stack from it, and it is kept
 * in DATA/stacks/NAME/stack.json for `stack restore` and for a supervisor that
 * adopts the stack, so that each reads the model the CLI read. */
struct hutch_stack_src {
	char **files; /* hutch.ini alone, or compose files (later ones override) */
	size_t n_files;
	char *project_name; /* NULL: none given */
	char **env_files;   /* absolute */
	size_t n_env_files;
	char **profiles;
	size_t n_profiles;
	bool ignore_unsupported;
};
int hutch_stack_load_src(const struct hutch_stack_src *src, struct hutch_stack **out,
			 struct hutch_err **err);
/* Frees what src holds (not src). */
void hutch_stack_src_fini(struct hutch_stack_src *src);

/* ---- a stack written out (stack_out.c): `hutch stack config` ----------------
 * The stack as hutch read it, files merged and values interpolated: a hutch.ini
 * that loads back to the same stack, or a JSON document of the model (both in
 * docs/compose.md). -1 when a value cannot be written as INI (which, and why).
 * *notes (may be NULL; strv_free-able "PATH: text" lines) get what the model
 * holds that a hutch.ini has no key for (nothing today). */
enum hutch_stack_format { HUTCH_STACK_INI, HUTCH_STACK_JSON };
int hutch_stack_write(const struct hutch_stack *stack, enum hutch_stack_format format, char **out,
		      char ***notes, size_t *n_notes, struct hutch_err **err);

/* ---- the supervisor (loop.c) ------------------------------------------------ */
struct hutch_sup_opts {
	const struct hutch_stack_src *src; /* where the stack is read from */
	const char *data_root, *run_root;
	bool rootless;
	int ready_fd;	 /* "OK\n" written there once the control socket listens, or the error */
	char **services; /* `up SERVICE...`: these and what they need; none: all */
	size_t n_services;
	bool adopt_only; /* take over the containers that exist, start nothing else */
};
/* Run the stack's supervisor until the stack is down (or handed over to a new
 * supervisor by `hutch up`). Blocks; the caller has detached it. */
int hutch_supervise(const struct hutch_sup_opts *o, struct hutch_err **err);

/* ---- for the CLI (client.c) --------------------------------------------------- */
/* Build every service's container spec once (images resolved, every option
 * through the runtime's setters): all the errors, one per line, as
 * "FILE:LINE: KEY: message". Nothing is created. */
int hutch_stack_check(const struct hutch_stack *stack, const char *data_root, const char *run_root,
		      bool rootless, struct hutch_err **err);
/* The running supervisor's pid for stack name, 0 if none. */
pid_t hutch_stack_supervisor(const char *data_root, const char *run_root, const char *name);
/* Connect to the stack's control socket; the fd or -1. */
int hutch_stack_connect(const char *run_root, const char *name, struct hutch_err **err);
/* Send one request line and read answers, calling on_line for each until it
 * returns non-zero (its value is returned) or the supervisor closes (0).
 * timeout_ms < 0: none; 1 is returned on a timeout. */
int hutch_stack_request(int fd, const char *request, int timeout_ms,
			int (*on_line)(const char *line, void *data), void *data,
			struct hutch_err **err);
/* Take the stack down without a supervisor (it was killed): every container
 * labelled as the stack's, in the reverse of the file's start order when
 * stack is given, stop signal then SIGKILL after grace_s (-1: 10 s), removed
 * with its run dir. */
int hutch_stack_down_offline(const char *data_root, const char *run_root, bool rootless,
			     const struct hutch_stack *stack, const char *name, int grace_s,
			     struct hutch_err **err);
/* Remove the stack's named volumes (DATA/stacks/NAME/volumes). */
int hutch_stack_remove_volumes(const char *data_root, const char *name, struct hutch_err **err);
/* The stack's directories and files, for the CLI's messages. */
char *hutch_stack_log_path(const char *data_root, const char *name);
/* Stacks known here (DATA/stacks/NAME with a stack.json): names, with their
 * file (the first of src's) and whether they were up. */
struct hutch_stack_info {
	char *name, *file;
	struct hutch_stack_src src;
	bool up;
	pid_t supervisor;
};
int hutch_stack_list(const char *data_root, const char *run_root, struct hutch_stack_info **out,
		     size_t *n, struct hutch_err **err);
void hutch_stack_info_free(struct hutch_stack_info *v, size_t n);
/* A service whose image is built (build = / compose's build:), for `hutch up`
 * to build it before the stack starts. Strings are the stack's. */
struct hutch_stack_build {
	const char *service, *image;		   /* image: image = NAME, else STACK-SERVICE */
	const char *context, *dockerfile, *target; /* dockerfile, target: NULL if not given */
	char *const *args;			   /* "K=V", or "K": from the environment */
	size_t n_args;
};
/* The i-th service in start order's build, or NULL when it is not built. */
const struct hutch_stack_build *hutch_stack_service_build(const struct hutch_stack *stack,
							  size_t i_in_order,
							  struct hutch_stack_build *out);
/* hutch_stack's service names in start order and each one's replicas. */
size_t hutch_stack_n_services(const struct hutch_stack *stack);
const char *hutch_stack_service_name(const struct hutch_stack *stack, size_t i_in_order);
const char *hutch_stack_file(const struct hutch_stack *stack);
/* `hutch up` on a stack that is up: which services' containers were made from
 * other settings (*changed, "a, b"), and which containers belong to no replica
 * of the file any more (*removed); NULL when none. */
int hutch_stack_diff(const struct hutch_stack *stack, const char *data_root, const char *run_root,
		     bool rootless, char **changed, char **removed, struct hutch_err **err);
/* `hutch ps` of a stack's container: its status (as the caller made it, "Up 5
 * minutes") with what the supervisor knows, as docker ps shows a compose
 * service: "Up 5 minutes (healthy)", "Restarting (3) 2 seconds ago". */
void hutch_stack_ps_status(const char *data_root, char *const *labels, size_t n_labels,
			   bool running, int exit_code, int64_t finished_ns, char *status,
			   size_t len);
/* How many replicas the named service has (0: no such service). */
unsigned hutch_stack_service_replicas(const struct hutch_stack *stack, const char *service);
/* The config hash (label hutch.config-hash) the supervisor expects on the
 * containers of service made from image image_id: a container made elsewhere
 * (`hutch run --restart`) that carries it is adopted as it is, not recreated.
 * -1 when there is no such service. */
int hutch_stack_service_hash(const struct hutch_stack *stack, const char *service,
			     const char *image_id, char out[17]);
