/* Helpers shared by the verbs. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "common/err.h"

int cli_parse_signal(const char *s)
{
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	char *end;
	long n = strtol(s, &end, 10);
	if (*s && !*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);
		if (abbrev && !strcasecmp(abbrev, s))
			return i;
	}
	return -1;
}

int cli_report(struct cli_ctx *ctx, struct hutch_err *err)
{
	hutch_err_print(ctx->prog, err);
	return err && err->exit_code ? err->exit_code : 125;
}
