/* runtime/process.c: resource limit names, and the check of what setrlimit will
 * not allow a container, made by the runtime itself before anything is created
 * (so a spec that did not come through `hutch run`'s parser gets it too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "common/util.h"
#include "runtime/runtime.h"

/* Every test runs with this hard limit of nofile, so "above the host's" is
 * known; lowering a hard limit needs no privilege. */
enum { HARD = 4096 };

static int lower_nofile(void **state)
{
	(void)state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > HARD) {
		rl.rlim_max = HARD;
		if (rl.rlim_cur > HARD)
			rl.rlim_cur = HARD;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	return rl.rlim_max == HARD ? 0 : -1;
}

static void test_names_round_trip_and_list(void **state)
{
	(void)state;
	char *known = hutch_rlimit_known_names();
	assert_string_equal(known, "as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, "
				   "nofile, nproc, rss, rtprio, rttime, sigpending, stack");
	size_t n = 0;
	char *save = NULL;
	for (char *name = strtok_r(known, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
		int res = hutch_rlimit_from_name(name);
		assert_true(res >= 0);
		assert_string_equal(hutch_rlimit_name(res), name);
		n++;
	}
	assert_int_equal(n, RLIM_NLIMITS);
	free(known);
	assert_int_equal(hutch_rlimit_from_name("bogus"), -1);
	assert_int_equal(hutch_rlimit_from_name("NOFILE"), -1);
	assert_null(hutch_rlimit_name(RLIM_NLIMITS));
}

static void expect_refused(const struct hutch_rlimit *rl, bool rootless, bool userns,
			   const char *text)
{
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_rlimit_check(rl, rootless, userns, &err), -1);
	assert_non_null(err);
	if (!strstr(err->msg, text))
		fail_msg("'%s' not in '%s'", text, err->msg);
	assert_int_equal(err->errno_, 0);
	hutch_err_free(&err);
}

static void test_check(void **state)
{
	(void)state;
	struct hutch_err *err = NULL;
	struct hutch_rlimit within = {RLIMIT_NOFILE, 100, HARD, true};
	assert_int_equal(hutch_rlimit_check(&within, true, true, &err), 0);
	assert_null(err);
	struct hutch_rlimit above = {RLIMIT_NOFILE, 100, HARD + 1, true};
	expect_refused(&above, true, true,
		       "the hard limit of nofile here is 4096, and an unprivileged user cannot "
		       "raise it: use at most nofile=4096");
	/* root, but the container has a user namespace of its own */
	expect_refused(&above, false, true, "and a container in a user namespace cannot raise it");
	struct hutch_rlimit backwards = {RLIMIT_NPROC, 20, 10, true};
	expect_refused(&backwards, false, false, "the soft limit 20 is above the hard limit 10");
	/* no one gets more open files than fs.nr_open, whatever the hard limit */
	char *text = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, "/proc/sys/fs/nr_open", &text, NULL, NULL), 0);
	uint64_t nr_open = strtoull(text, NULL, 10);
	free(text);
	struct hutch_rlimit too_many = {RLIMIT_NOFILE, nr_open + 1, nr_open + 1, true};
	expect_refused(&too_many, false, false, "open files (fs.nr_open)");
	struct hutch_rlimit unknown = {RLIM_NLIMITS + 3, 1, 1, true};
	expect_refused(&unknown, false, false, "unknown resource limit");
}

/* What a supervisor would hand the runtime: a spec no CLI has checked. */
static void test_container_start_refuses_before_creating_anything(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/hutch-test-rlimit-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *data = xasprintf("%s/data", tmpl), *run = xasprintf("%s/run", tmpl);
	struct hutch_runtime rt;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_runtime_init(&rt, data, run, &err), 0);
	rt.quiet = true;
	rt.rootless = false;

	struct hutch_spec *spec = hutch_spec_new();
	spec->id = xstrdup("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	spec->hostname = xstrdup("box");
	spec->process.args = xcalloc(2, sizeof(char *));
	spec->process.args[0] = xstrdup("true");
	spec->process.n_args = 1;
	spec->root.layers = xcalloc(2, sizeof(char *));
	spec->root.layers[0] = xasprintf("%s/layer", tmpl);
	spec->root.n_layers = 1;
	hutch_spec_set_namespace(spec, HUTCH_NS_USER, NULL);
	spec->uid_map = xcalloc(1, sizeof(*spec->uid_map));
	spec->uid_map[0] = (struct hutch_id_map){0, getuid(), 1};
	spec->n_uid_map = 1;
	for (size_t i = 0; i < spec->process.n_rlimits; i++)
		if (spec->process.rlimits[i].resource == RLIMIT_NOFILE)
			spec->process.rlimits[i] =
			    (struct hutch_rlimit){RLIMIT_NOFILE, 64, 8192, true};

	struct hutch_io io = {.stdin_fd = 0, .stdout_fd = 1, .stderr_fd = 2};
	struct hutch_container *c = NULL;
	assert_int_equal(hutch_container_start(&rt, spec, &io, &c, &err), -1);
	assert_null(c);
	assert_non_null(err);
	assert_string_equal(err->msg,
			    "resource limit nofile=64:8192: the hard limit of nofile here "
			    "is 4096, and a container in a user namespace cannot raise "
			    "it: use at most nofile=4096");
	hutch_err_free(&err);

	/* nothing was made: no container dir, no cgroup named by the id */
	char *containers = xasprintf("%s/containers", data);
	DIR *d = opendir(containers);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fail_msg("left behind: %s/%s", containers, de->d_name);
	closedir(d);
	free(containers);
	static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		char *cg = xasprintf("%s/hutch/%s", roots[i], spec->id);
		assert_int_equal(access(cg, F_OK), -1);
		free(cg);
	}

	hutch_spec_free(spec);
	hutch_runtime_fini(&rt);
	assert_int_equal(remove_tree_at(AT_FDCWD, tmpl, NULL), 0);
	free(data);
	free(run);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_round_trip_and_list),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_container_start_refuses_before_creating_anything),
	};
	return cmocka_run_group_tests(tests, lower_nofile, NULL);
}
