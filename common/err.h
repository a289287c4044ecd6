/* Errors in the libcrun style: a failing function returns a negative int and
 * fills *err; callers add context or print it once at the top. */
#pragma once
#include <stdarg.h>

struct hutch_err {
	int errno_; /* 0 when the failure is not a system error */
	int exit_code; /* suggested exit code for the CLI (0 = default 125) */
	char *msg;
};

/* Fill *err (if err is non-NULL and empty) and return -1. errno_ may be 0. */
int hutch_fail(struct hutch_err **err, int errno_, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, taking errno from the current errno. */
#define hutch_fail_sys(err, ...) hutch_fail((err), errno, __VA_ARGS__)
/* Prepend context: "context: previous message". */
int hutch_err_wrap(struct hutch_err **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void hutch_err_free(struct hutch_err **err);
/* "msg: strerror" or "msg" */
void hutch_err_print(const char *prog, struct hutch_err *err);
