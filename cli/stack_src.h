/* The options every stack verb takes to find and read its stack (up, down,
 * with, stack ps|logs|...): -f (repeatable), -p, --env-file, --profile,
 * --ignore-unsupported. Shared by cli/up.c and cli/stack.c. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "cli/cli.h"
#include "supervisor/supervisor.h"

struct cli_stack_opts {
	const char **files; /* -f, in order; none: hutch_stack_find */
	size_t n_files;
	const char *project; /* -p */
	const char **env_files;
	size_t n_env_files;
	const char **profiles;
	size_t n_profiles;
	bool ignore_unsupported;
	struct hutch_stack_src src; /* filled by cli_stack_load */
};

enum {
	CLI_STACK_FILE = 1000,
	CLI_STACK_PROJECT,
	CLI_STACK_ENV_FILE,
	CLI_STACK_PROFILE,
	CLI_STACK_IGNORE_UNSUPPORTED,
};
#define CLI_STACK_OPTIONS                                                                          \
	{"file", 'f', true, CLI_STACK_FILE}, {"project-name", 'p', true, CLI_STACK_PROJECT},       \
	    {"env-file", 0, true, CLI_STACK_ENV_FILE}, {"profile", 0, true, CLI_STACK_PROFILE},    \
	{                                                                                          \
		"ignore-unsupported", 0, false, CLI_STACK_IGNORE_UNSUPPORTED                       \
	}
#define CLI_STACK_USAGE                                                                            \
	"  -f, --file FILE       the stack file; again: compose files merged in order\n"           \
	"                        (default: hutch.ini, else compose.yaml ... here or above)\n"      \
	"  -p, --project-name N  the stack's name (default: COMPOSE_PROJECT_NAME, name:)\n"        \
	"      --env-file FILE   read variables from FILE instead of .env (repeatable)\n"          \
	"      --profile NAME    start the services of this profile too (repeatable)\n"            \
	"      --ignore-unsupported  compose keys hutch cannot honour: warnings, not errors\n"

/* Take one of CLI_STACK_OPTIONS (id >= CLI_STACK_FILE). */
int cli_stack_opt(struct cli_stack_opts *o, int id, const char *v);
void cli_stack_opts_fini(struct cli_stack_opts *o);
/* Resolve o->src (absolute paths) and read the stack: 0, or 1 (said). src's
 * files are filled even when the stack does not load. */
int cli_stack_load(struct cli_ctx *ctx, const char *verb, struct cli_stack_opts *o,
		   struct hutch_stack **out);
/* A reader's errors (one per line, "FILE:LINE: ...") as they are; others
 * after "hutch: VERB: ". */
void cli_stack_print_errors(const char *verb, struct hutch_err *err);
/* Start the stack's supervisor, reading src. */
int cli_stack_spawn(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack,
		    const struct hutch_stack_src *src, char *const *services, size_t n,
		    bool adopt_only);
