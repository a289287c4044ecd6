#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hutch_fail(struct hutch_err **err, int errno_, const char *fmt, ...)
{
	if (!err || *err)
		return -1;
	struct hutch_err *e = calloc(1, sizeof(*e));
	if (!e)
		abort();
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&e->msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	e->errno_ = errno_;
	*err = e;
	return -1;
}

int hutch_err_wrap(struct hutch_err **err, const char *fmt, ...)
{
	if (!err || !*err)
		return -1;
	char *ctx = NULL, *joined = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&ctx, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (asprintf(&joined, "%s: %s", ctx, (*err)->msg) < 0)
		abort();
	free(ctx);
	free((*err)->msg);
	(*err)->msg = joined;
	return -1;
}

void hutch_err_free(struct hutch_err **err)
{
	if (!err || !*err)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}

void hutch_err_print(const char *prog, struct hutch_err *err)
{
	if (!err)
		return;
	if (err->errno_)
		fprintf(stderr, "%s: %s: %s\n", prog, err->msg, strerror(err->errno_));
	else
		fprintf(stderr, "%s: %s\n", prog, err->msg);
}
