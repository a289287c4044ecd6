/* `hutch internal ...`: hidden verbs that hutch runs itself, never documented
 * for users. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"
#include "runtime/runtime.h"

/* `hutch internal finish DATA_ROOT RUN_ROOT ID`: what hutch-keeper execs when a
 * detached container has exited (runtime/monitor.c). The roots come from the
 * monitor that started it, not from this process's options or environment. */
static int cmd_internal_finish(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "hutch: internal finish: give DATA_ROOT RUN_ROOT ID\n");
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	if (hutch_runtime_init(&rt, argv[1], argv[2], &err) < 0)
		return cli_report(ctx, err);
	rt.quiet = ctx->quiet;
	int r = hutch_container_finish(&rt, argv[3], &err);
	hutch_runtime_fini(&rt);
	return r < 0 ? cli_report(ctx, err) : 0;
}

int cmd_internal(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc >= 1 && !strcmp(argv[0], "dns"))
		return cmd_internal_dns(ctx, argc, argv);
	if (argc >= 1 && !strcmp(argv[0], "finish"))
		return cmd_internal_finish(ctx, argc, argv);
	fprintf(stderr, "hutch: internal: unknown command '%s' (internal commands: dns, finish)\n",
		argc >= 1 ? argv[0] : "");
	return 125;
}
