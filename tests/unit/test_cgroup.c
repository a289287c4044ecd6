/* runtime/cgroup.c: what memory.swap.max gets, as Docker's --memory-swap means it,
 * which cgroup paths a container's record may name, and OCI's linux.resources
 * values as cgroup v2's files take them. */
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

/* blockIO's weight (10-1000) in io.weight's range (1-10000), linearly as
 * crun: the ends map to the ends, 500 (bfq's and v1's default) to 5000 */
static void test_io_weight(void **state)
{
	assert_int_equal(cgroup_io_weight(10), 1);
	assert_int_equal(cgroup_io_weight(1000), 10000);
	assert_int_equal(cgroup_io_weight(500), 4950);
	assert_int_equal(cgroup_io_weight(100), 910);
	/* outside the range (the parser refuses it): clamped, never 0 or above */
	assert_int_equal(cgroup_io_weight(0), 1);
	assert_int_equal(cgroup_io_weight(5000), 10000);
}

static void line_is(char *got, const char *want)
{
	assert_string_equal(got, want);
	free(got);
}

static void test_device_lines(void **state)
{
	line_is(cgroup_device_line(8, 0, NULL, 500), "8:0 500");
	line_is(cgroup_device_line(8, 16, "rbps", 1048576), "8:16 rbps=1048576");
	line_is(cgroup_device_line(259, 3, "wiops", 100), "259:3 wiops=100");
	/* cgroup v1's 0, no limit, is io.max's "max" (the kernel refuses 0) */
	line_is(cgroup_device_line(8, 0, "riops", 0), "8:0 riops=max");
	line_is(cgroup_device_line(4294967295u, 1048575, "wbps", UINT64_MAX),
		"4294967295:1048575 wbps=18446744073709551615");
}

static void test_hugepage_names(void **state)
{
	/* the kernel's hugepages-<n>kB directories as the spec and hugetlb name them */
	line_is(cgroup_hugepage_name(2048), "2MB");
	line_is(cgroup_hugepage_name(1048576), "1GB");
	line_is(cgroup_hugepage_name(64), "64KB");
	line_is(cgroup_hugepage_name(32768), "32MB");
	line_is(cgroup_hugepage_name(16 * 1048576), "16GB");
	line_is(cgroup_hugepage_name(1536), "1536KB");
	const char *good[] = {"2MB", "1GB", "64KB", "16GB", "512MB"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_true(cgroup_hugepage_size_ok(good[i]));
	const char *bad[] = {"",     "2M",  "2mb",  "MB",	"02MB",		  "2 MB",
			     "2MB ", "2TB", "-2MB", "2MB/../x", "1234567890123MB"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (cgroup_hugepage_size_ok(bad[i]))
			fail_msg("'%s' taken as a hugepage size", bad[i]);
}

static void test_cpu_lists(void **state)
{
	const char *good[] = {"0", "0-3", "0-1,3", "1,3,5-7", "0-0"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!cgroup_cpu_list_ok(good[i]))
			fail_msg("'%s' refused", good[i]);
	const char *bad[] = {"", "3-1", "0,", ",0", "0-", "a", "0 1", "0-3\n", "-1", "0--1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (cgroup_cpu_list_ok(bad[i]))
			fail_msg("'%s' taken as a cpu list", bad[i]);
}

static void test_unified_keys(void **state)
{
	const char *good[] = {"memory.high",	 "io.max",	     "cgroup.freeze",
			      "hugetlb.2MB.max", "memory.oom.group", "cpu.max.burst"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (cgroup_unified_key_problem(good[i]))
			fail_msg("'%s' refused: %s", good[i], cgroup_unified_key_problem(good[i]));
	const char *bad[] = {"", "memory", ".max", "memory.", "../memory.max", "a/b.c",
			     "memory..max", "..", ".", "memory.max\n", "mem ory.x", "io.max*",
			     /* not limits: they move or kill processes */
			     "cgroup.procs", "cgroup.threads", "cgroup.kill",
			     "cgroup.subtree_control"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (!cgroup_unified_key_problem(bad[i]))
			fail_msg("'%s' taken as a cgroup file", bad[i]);
	assert_string_equal(cgroup_unified_key_problem("x/y.z"), "a file name has no '/'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_swap_max),	   cmocka_unit_test(test_record_paths),
	    cmocka_unit_test(test_io_weight),	   cmocka_unit_test(test_device_lines),
	    cmocka_unit_test(test_hugepage_names), cmocka_unit_test(test_cpu_lists),
	    cmocka_unit_test(test_unified_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
