/* cli/: argument parsing and the top-level calls of each verb. */
#pragma once
#include <stdbool.h>

struct cli_ctx {
	const char *prog;
	char *data_root; /* images and containers' rw layers */
	char *run_root; /* runtime state */
	bool rootless;
	bool quiet;
};

int cmd_run(struct cli_ctx *ctx, int argc, char **argv);
int cmd_image(struct cli_ctx *ctx, int argc, char **argv);
int cmd_pull(struct cli_ctx *ctx, int argc, char **argv);
int cmd_ps(struct cli_ctx *ctx, int argc, char **argv);
int cmd_exec(struct cli_ctx *ctx, int argc, char **argv);
int cmd_logs(struct cli_ctx *ctx, int argc, char **argv);
/* stop, kill, rm, inspect */
int cmd_ctr(struct cli_ctx *ctx, int argc, char **argv);

/* "TERM", "SIGTERM", "15" -> 15; -1 if unknown. */
int cli_parse_signal(const char *s);

/* Print "hutch: msg" and return 125 (or the error's own exit code). */
struct hutch_err;
int cli_report(struct cli_ctx *ctx, struct hutch_err *err);
