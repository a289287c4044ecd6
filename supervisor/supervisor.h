/* The supervisor: stacks of services read from a stack file (docs/stack-file.md).
 * This is the module's public header; the model behind struct hutch_stack is
 * private to supervisor/ (supervisor/stack.h). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

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
