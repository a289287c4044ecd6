/* The runtime's warnings and notes: to the caller's log callback, or to stderr
 * as the CLI has always said them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/runtime.h"

void hutch_runtime_log(const struct hutch_runtime *rt, enum hutch_log_level level, const char *fmt,
		       ...)
{
	if (!rt->log && rt->quiet)
		return;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (rt->log)
		rt->log(level, msg, rt->log_data);
	else
		fprintf(stderr, "hutch: %s: %s\n", level == HUTCH_LOG_NOTE ? "note" : "warning",
			msg);
	free(msg);
}
