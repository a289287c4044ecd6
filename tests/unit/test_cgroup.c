/* runtime/cgroup.c: what memory.swap.max gets, as Docker's --memory-swap means it,
 * and which cgroup paths a container's record may name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/statfs.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

#define MiB (1024 * 1024LL)

static int64_t swap_for(int64_t memory, int64_t memory_swap)
{
	struct hutch_resources r = {.memory_max = memory, .memory_swap_max = memory_swap};
	return cgroup_swap_max(&r);
}

static void test_swap_max(void **state)
{
	/* --memory alone: as much swap as memory (memory-swap = 2 x memory) */
	assert_int_equal(swap_for(64 * MiB, 0), 64 * MiB);
	assert_int_equal(swap_for(6 * MiB, 0), 6 * MiB);
	/* --memory-swap equal to --memory: no swap */
	assert_int_equal(swap_for(64 * MiB, 64 * MiB), 0);
	/* --memory-swap is memory + swap */
	assert_int_equal(swap_for(32 * MiB, 48 * MiB), 16 * MiB);
	assert_int_equal(swap_for(1024 * MiB, 3072 * MiB), 2048 * MiB);
	/* below --memory (the CLI refuses it): no swap rather than a negative one */
	assert_int_equal(swap_for(64 * MiB, 32 * MiB), 0);
	/* -1: unlimited, memory.swap.max keeps the kernel's "max" */
	assert_int_equal(swap_for(64 * MiB, -1), -1);
	/* no memory limit: swap is left alone */
	assert_int_equal(swap_for(0, 0), -1);
	assert_int_equal(swap_for(0, -1), -1);
}

static const char id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static const char *unified(void)
{
	struct statfs sfs;
	return statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC
		   ? "/sys/fs/cgroup"
		   : "/sys/fs/cgroup/unified";
}

/* errno after cgroup_open_record(path): EPERM "not the container's", ENOENT
 * "the container's, gone"; err's errno_ is 0 only for EPERM. */
static int open_record(bool rootless, const char *fmt, const char *a, const char *b)
{
	struct hutch_runtime rt = {.rootless = rootless};
	char *path = xasprintf(fmt, a, b);
	struct hutch_err *err = NULL;
	int fd = cgroup_open_record(&rt, path, id, &err);
	int e = errno;
	assert_int_equal(fd, -1); /* none of these exist */
	assert_non_null(err);
	assert_true(e == EPERM ? err->errno_ == 0 && strstr(err->msg, path) : err->errno_ == e);
	hutch_err_free(&err);
	free(path);
	return e;
}

static void test_record_paths(void **state)
{
	const char *u = unified();
	/* root: exactly <mount>/hutch/<id> */
	assert_int_equal(open_record(false, "%s/hutch/%s", u, id), ENOENT);
	assert_int_equal(open_record(false, "%s/x/hutch/%s", u, id), EPERM);
	assert_int_equal(open_record(false, "%s/hutch/%s/", u, id), EPERM);
	assert_int_equal(open_record(false, "%s/hutch/%s/sub", u, id), EPERM);
	assert_int_equal(
	    open_record(false, "%s/hutch/%s", u,
			"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"),
	    EPERM);
	assert_int_equal(open_record(false, "/tmp%s/hutch/%s", u, id), EPERM);
	assert_int_equal(open_record(false, "%s%s", u, ""), EPERM);
	assert_int_equal(open_record(false, "%s/%s", "/sys/fs", "hutch"), EPERM);
	/* rootless: .../hutch/<id> below the mount, every step a plain name */
	assert_int_equal(open_record(true, "%s/user.slice/a/hutch/%s", u, id), ENOENT);
	assert_int_equal(open_record(true, "%s/hutch/%s", u, id), ENOENT);
	assert_int_equal(open_record(true, "%s/a/../../../tmp/hutch/%s", u, id), EPERM);
	assert_int_equal(open_record(true, "%s/a/./hutch/%s", u, id), EPERM);
	assert_int_equal(open_record(true, "%s/a//hutch/%s", u, id), EPERM);
	assert_int_equal(open_record(true, "%s/ahutch/%s", u, id), EPERM);
	assert_int_equal(open_record(true, "%s/a/hutch/%s/", u, id), EPERM);
	assert_int_equal(open_record(true, "%s/a/hutch/x%s", u, id), EPERM);
	assert_int_equal(open_record(true, "%sx/a/hutch/%s", u, id), EPERM);
	/* a file's path, not a directory: the open says why */
	assert_int_equal(open_record(true, "%s/cgroup.procs/hutch/%s", u, id), ENOTDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_swap_max),
	    cmocka_unit_test(test_record_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
