/* cli/: argument parsing and the top-level calls of each verb. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct cli_ctx {
	const char *prog;
	char *data_root; /* images and containers' rw layers */
	char *run_root; /* runtime state */
	bool rootless;
	bool quiet;
};

int cmd_run(struct cli_ctx *ctx, int argc, char **argv);
int cmd_build(struct cli_ctx *ctx, int argc, char **argv);
/* A build as `hutch build` runs it (cli/build.c), also for `hutch up`'s
 * services with build =: its output on stdout, errors reported; the exit code. */
struct cli_build {
	const char *context, *file, *target, *network;
	bool file_in_context;	       /* file is relative to the context (compose's dockerfile:) */
	const char *const *build_args; /* "K=V", or "K": from the environment */
	size_t n_build_args;
	const char *const *tags;
	size_t n_tags;
	bool no_cache;
};
int cli_build_run(struct cli_ctx *ctx, const struct cli_build *cb);
int cmd_builder(struct cli_ctx *ctx, int argc, char **argv);
int cmd_image(struct cli_ctx *ctx, int argc, char **argv);
int cmd_pull(struct cli_ctx *ctx, int argc, char **argv);
int cmd_ps(struct cli_ctx *ctx, int argc, char **argv);
int cmd_exec(struct cli_ctx *ctx, int argc, char **argv);
int cmd_logs(struct cli_ctx *ctx, int argc, char **argv);
/* stacks: up, down, with (cli/up.c); stack ... (cli/stack.c); the supervisor */
int cmd_up(struct cli_ctx *ctx, int argc, char **argv);
int cmd_down(struct cli_ctx *ctx, int argc, char **argv);
int cmd_with(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stack(struct cli_ctx *ctx, int argc, char **argv);
int cmd_supervise(struct cli_ctx *ctx, int argc, char **argv);
/* hidden verbs for hutch's own use (cli/internal.c): internal dns (cli/dns.c),
 * internal finish */
int cmd_internal(struct cli_ctx *ctx, int argc, char **argv);
int cmd_internal_dns(struct cli_ctx *ctx, int argc, char **argv);
/* A standalone network's DNS server (cli/dns.c): started unless it runs (a
 * failure is a warning); its pid (0: none runs, -1: starting); its files gone
 * after `network rm`. */
void cli_network_dns_ensure(struct cli_ctx *ctx, const char *network);
int cli_network_dns_pid(const struct cli_ctx *ctx, const char *network);
void cli_network_dns_forget(const struct cli_ctx *ctx, const char *network);
/* stop, kill, rm, inspect */
int cmd_ctr(struct cli_ctx *ctx, int argc, char **argv);
/* hutch-oci: the OCI runtime command line (cli/oci.c), when argv[0] says so */
int cmd_oci(int argc, char **argv);
/* network create, ls, inspect, rm */
int cmd_network(struct cli_ctx *ctx, int argc, char **argv);

/* s with control characters (C0, DEL, C1) as \xNN, for text from images and
 * containers on a terminal: no escape sequences, no line breaks. Free it. */
char *cli_shown(const char *s);
/* Print "hutch: msg" (control characters escaped, cli_shown) and return 125 (or
 * the error's own exit code). */
struct hutch_err;
int cli_report(struct cli_ctx *ctx, struct hutch_err *err);
/* Put prefix in front of err's message as it is ("--env-file " + "f: ..."),
 * where hutch_err_wrap's "context: " would not read well. */
void cli_err_prefix(struct hutch_err **err, const char *prefix);

/* One option syntax for every verb, Docker's: --name VALUE, --name=VALUE, a flag
 * as --name or --name=true|false, short options combinable (-it, -e K=V, -eK=V),
 * "--" ends the options. */
struct cli_opt {
	const char *name; /* long name, without "--" */
	char shortc; /* 0: none */
	bool value; /* takes a value */
	int id;
};
/* set(arg, id, value) is called for each option given (value NULL for a flag);
 * it returns -1 after printing why a value is bad. Operands end the options
 * unless interspersed (then options may follow them, and the operands are moved
 * to the end of argv). "--help" not in opts prints usage to stdout.
 * Returns the index of the first operand (argc if none), -1 on an error
 * (printed), -2 after --help. */
/* In set(): the option as the user wrote it ("-t" or "--time"), for messages. */
const char *cli_opt_given(void);
int cli_parse_opts(const char *verb, const char *usage, const struct cli_opt *opts, size_t n_opts,
		   bool interspersed, int argc, char **argv,
		   int (*set)(void *arg, int id, const char *value), void *arg);
