/* runtime/options.c: one setter per option, the same for `hutch run` and stack
 * files. Each takes the user's text; good values land in the spec, bad ones
 * are refused with a message that names the value (never a flag) and leave the
 * spec as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static const char valid_id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

typedef int setter_fn(struct hutch_spec *, const char *, struct hutch_err **);

static void ok(struct hutch_spec *s, setter_fn *set, const char *value)
{
	struct hutch_err *err = NULL;
	if (set(s, value, &err) != 0)
		fail_msg("'%s' refused: %s", value, err ? err->msg : "(no message)");
	assert_null(err);
}

/* Refused, with a message holding each of the needles, and never a flag. */
static void bad(struct hutch_spec *s, setter_fn *set, const char *value, const char *needle,
		const char *needle2)
{
	struct hutch_err *err = NULL;
	if (set(s, value, &err) != -1)
		fail_msg("'%s' accepted", value);
	assert_non_null(err);
	if (!strstr(err->msg, needle) || (needle2 && !strstr(err->msg, needle2)))
		fail_msg("'%s': message '%s' lacks '%s'%s%s", value, err->msg, needle,
			 needle2 ? " or " : "", needle2 ? needle2 : "");
	if (strstr(err->msg, "--"))
		fail_msg("'%s': message '%s' names a flag", value, err->msg);
	hutch_err_free(&err);
}

static char *make_tmpdir(void)
{
	char *d = xstrdup("/tmp/hutch-test-options-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void write_text(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static const struct hutch_mount *find_mount(const struct hutch_spec *s, const char *dest)
{
	for (size_t i = 0; i < s->n_mounts; i++)
		if (!strcmp(s->mounts[i].destination, dest))
			return &s->mounts[i];
	return NULL;
}

static bool has_option(const struct hutch_mount *m, const char *opt)
{
	for (size_t i = 0; i < m->n_options; i++)
		if (!strcmp(m->options[i], opt))
			return true;
	return false;
}

/* ---- image, entrypoint, command ---------------------------------------------- */

static char *img_layers[] = {"/layers/a", "/layers/b"};
static char *img_env[] = {"PATH=/img/bin", "A=img"};
static char *img_ep[] = {"/entry", "--flag"};
static char *img_cmd[] = {"serve", "--port=80"};

static struct hutch_image_config image(void)
{
	return (struct hutch_image_config){
	    .name = "app:1",
	    .id = valid_id,
	    .layers = img_layers,
	    .n_layers = 2,
	    .env = img_env,
	    .n_env = 2,
	    .entrypoint = img_ep,
	    .n_entrypoint = 2,
	    .cmd = img_cmd,
	    .n_cmd = 2,
	    .workdir = "/srv",
	    .user = "app:app",
	    .stop_signal = "SIGQUIT",
	};
}

static void assert_args(const struct hutch_spec *s, const char *const *want, size_t n)
{
	assert_int_equal(s->process.n_args, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(s->process.args[i], want[i]);
	assert_null(s->process.args[n]);
}

static void test_apply_image(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	struct hutch_image_config img = image();
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_apply_image(s, &img, &err), 0);
	assert_string_equal(s->image, "app:1");
	assert_string_equal(s->image_id, valid_id);
	assert_int_equal(s->root.n_layers, 2);
	assert_string_equal(s->root.layers[1], "/layers/b");
	assert_string_equal(hutch_spec_get_env(s, "PATH"), "/img/bin"); /* replaces the default */
	assert_string_equal(hutch_spec_get_env(s, "A"), "img");
	assert_args(s, (const char *[]){"/entry", "--flag", "serve", "--port=80"}, 4);
	assert_string_equal(s->process.cwd, "/srv");
	assert_string_equal(s->process.user, "app:app");
	assert_int_equal(s->process.stop_signal, SIGQUIT);

	/* a command replaces the Cmd; an entrypoint replaces the Entrypoint and
	 * drops the Cmd, in either order */
	hutch_spec_set_command(s, (char *[]){"sh", "-c", "x"}, 3);
	assert_args(s, (const char *[]){"/entry", "--flag", "sh", "-c", "x"}, 5);
	hutch_spec_set_entrypoint(s, (char *[]){"/bin/env"}, 1);
	assert_args(s, (const char *[]){"/bin/env", "sh", "-c", "x"}, 4);
	hutch_spec_free(s);

	s = hutch_spec_new();
	hutch_spec_set_entrypoint(s, (char *[]){"/bin/env"}, 1);
	assert_int_equal(hutch_spec_apply_image(s, &img, &err), 0);
	assert_args(s, (const char *[]){"/bin/env"}, 1); /* the image's Cmd is dropped */
	hutch_spec_set_entrypoint(s, NULL, 0);		 /* --entrypoint '': nothing at all */
	assert_int_equal(s->process.n_args, 0);
	hutch_spec_set_command(s, (char *[]){"echo", "hi"}, 2);
	assert_args(s, (const char *[]){"echo", "hi"}, 2);
	hutch_spec_free(s);

	/* fields left NULL are neither used nor checked */
	s = hutch_spec_new();
	img.workdir = img.user = img.stop_signal = NULL;
	img.entrypoint = NULL;
	img.n_entrypoint = 0;
	assert_int_equal(hutch_spec_apply_image(s, &img, &err), 0);
	assert_string_equal(s->process.cwd, "/");
	assert_null(s->process.user);
	assert_int_equal(s->process.stop_signal, SIGTERM);
	assert_args(s, (const char *[]){"serve", "--port=80"}, 2);
	hutch_spec_free(s);

	/* a bad value is named as the image's */
	const struct {
		const char *workdir, *user, *stop_signal, *needle;
	} bads[] = {
	    {"rel", NULL, NULL, "the image's WorkingDir: invalid working directory 'rel'"},
	    {NULL, ":1", NULL, "the image's User: invalid user ':1'"},
	    {NULL, NULL, "SIGBOGUS", "the image's StopSignal: invalid stop signal 'SIGBOGUS'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		s = hutch_spec_new();
		img = image();
		img.workdir = bads[i].workdir;
		img.user = bads[i].user;
		img.stop_signal = bads[i].stop_signal;
		assert_int_equal(hutch_spec_apply_image(s, &img, &err), -1);
		if (!strstr(err->msg, bads[i].needle))
			fail_msg("'%s' lacks '%s'", err->msg, bads[i].needle);
		hutch_err_free(&err);
		hutch_spec_free(s);
	}
}

/* ---- identity and process ------------------------------------------------------ */

static void test_name_and_hostname(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	hutch_spec_set_name(s, "/web-1");
	assert_string_equal(s->name, "web-1");
	hutch_spec_set_name(s, "/");
	assert_string_equal(s->name, "/"); /* kept as given: validation shows it */
	ok(s, hutch_spec_set_hostname, "box.example");
	assert_string_equal(s->hostname, "box.example");
	assert_string_equal(hutch_spec_get_env(s, "HOSTNAME"), "box.example");
	bad(s, hutch_spec_set_hostname, "bad_host", "invalid hostname 'bad_host'",
	    "'_' is not allowed");
	bad(s, hutch_spec_set_hostname, "-lead", "a label starts with '-'", NULL);
	bad(s, hutch_spec_set_hostname, "", "invalid hostname '': it is empty", NULL);
	bad(s, hutch_spec_set_hostname, "a\nb", "invalid hostname 'a\\x0ab'", NULL);
	assert_string_equal(s->hostname, "box.example");
	hutch_spec_free(s);
}

static void test_env(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_add_env, "A=1");
	ok(s, hutch_spec_add_env, "A=2");
	ok(s, hutch_spec_add_env, "EMPTY=");
	assert_string_equal(hutch_spec_get_env(s, "A"), "2");
	assert_string_equal(hutch_spec_get_env(s, "EMPTY"), "");
	setenv("HUTCH_TEST_FROM_HERE", "here", 1);
	unsetenv("HUTCH_TEST_UNSET");
	ok(s, hutch_spec_add_env, "HUTCH_TEST_FROM_HERE");
	ok(s, hutch_spec_add_env, "HUTCH_TEST_UNSET");
	assert_string_equal(hutch_spec_get_env(s, "HUTCH_TEST_FROM_HERE"), "here");
	assert_null(hutch_spec_get_env(s, "HUTCH_TEST_UNSET"));
	bad(s, hutch_spec_add_env, "=x", "invalid environment variable '=x': expected KEY=VALUE",
	    NULL);
	bad(s, hutch_spec_add_env, "", "invalid environment variable ''", NULL);
	hutch_spec_free(s);
}

static void test_env_file(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *good = xasprintf("%s/good.env", dir);
	const char *text = "# comment\n\n  A=1\r\nB=two words\n\tC\n";
	write_text(good, text, strlen(text));
	setenv("C", "from-here", 1);
	struct hutch_spec *s = hutch_spec_new();
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_add_env_file(s, good, NULL, &err), 0);
	assert_string_equal(hutch_spec_get_env(s, "A"), "1");
	assert_string_equal(hutch_spec_get_env(s, "B"), "two words");
	assert_string_equal(hutch_spec_get_env(s, "C"), "from-here");
	/* relative to base_dir, named as given */
	assert_int_equal(hutch_spec_add_env_file(s, "good.env", dir, &err), 0);

	const struct {
		const char *name, *text;
		size_t len;
		const char *needle;
	} bads[] = {
	    {"nul.env", "A=1\nB\0C=2\n", 10, "nul.env: has a NUL byte (at byte 5)"},
	    {"line.env", "A=1\n\n=oops\n", 11,
	     "line.env: line 3: invalid environment variable "
	     "'=oops'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		char *p = xasprintf("%s/%s", dir, bads[i].name);
		write_text(p, bads[i].text, bads[i].len);
		assert_int_equal(hutch_spec_add_env_file(s, bads[i].name, dir, &err), -1);
		if (!strstr(err->msg, bads[i].needle) || strncmp(err->msg, bads[i].name, 4))
			fail_msg("'%s' lacks '%s' at the start", err->msg, bads[i].needle);
		hutch_err_free(&err);
		free(p);
	}
	/* the cap: one byte over is refused before it is read */
	char *big = xasprintf("%s/big.env", dir);
	int fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(ftruncate(fd, HUTCH_ENV_FILE_MAX + 1), 0);
	close(fd);
	assert_int_equal(hutch_spec_add_env_file(s, big, NULL, &err), -1);
	assert_non_null(strstr(err->msg, "big.env: larger than 1 MiB"));
	hutch_err_free(&err);
	assert_int_equal(hutch_spec_add_env_file(s, "/dev/zero", NULL, &err), -1);
	assert_string_equal(err->msg,
			    "/dev/zero: has a NUL byte (at byte 0): expected a text file");
	hutch_err_free(&err);
	assert_int_equal(hutch_spec_add_env_file(s, "missing.env", dir, &err), -1);
	assert_non_null(strstr(err->msg, "missing.env"));
	hutch_err_free(&err);
	hutch_spec_free(s);
	assert_int_equal(remove_tree_at(AT_FDCWD, dir, NULL), 0);
	free(big);
	free(good);
	free(dir);
}

static void test_workdir_user_stop_signal(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_set_workdir, "/srv/app");
	assert_string_equal(s->process.cwd, "/srv/app");
	ok(s, hutch_spec_set_workdir, "/a..b/c.."); /* names with dots are fine */
	bad(s, hutch_spec_set_workdir, "rel/dir",
	    "invalid working directory 'rel/dir': must be an absolute path", NULL);
	bad(s, hutch_spec_set_workdir, "/a/../b", "'..' is not allowed", NULL);
	bad(s, hutch_spec_set_workdir, "/a/..", "'..' is not allowed", NULL);
	assert_string_equal(s->process.cwd, "/a..b/c..");

	ok(s, hutch_spec_set_user, "1000:100");
	assert_string_equal(s->process.user, "1000:100");
	ok(s, hutch_spec_set_user, "app");
	assert_string_equal(s->process.user, "app");
	bad(s, hutch_spec_set_user, ":0", "invalid user ':0': the user is missing before ':'",
	    NULL);
	ok(s, hutch_spec_set_user, "");
	assert_null(s->process.user);

	ok(s, hutch_spec_set_stop_signal, "SIGINT");
	assert_int_equal(s->process.stop_signal, SIGINT);
	ok(s, hutch_spec_set_stop_signal, "hup");
	assert_int_equal(s->process.stop_signal, SIGHUP);
	ok(s, hutch_spec_set_stop_signal, "10");
	assert_int_equal(s->process.stop_signal, 10);
	bad(s, hutch_spec_set_stop_signal, "SIGNOPE", "invalid stop signal 'SIGNOPE'",
	    "a number from 1 to");
	bad(s, hutch_spec_set_stop_signal, "99", "invalid stop signal '99'", NULL);
	bad(s, hutch_spec_set_stop_signal, "0", "invalid stop signal '0'", NULL);
	assert_int_equal(s->process.stop_signal, 10);
	hutch_spec_free(s);
}

/* ---- resources ---------------------------------------------------------------------- */

static void test_memory(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_set_memory, "64m");
	assert_int_equal(s->resources.memory_max, 64 << 20);
	ok(s, hutch_spec_set_memory, "6m");
	ok(s, hutch_spec_set_memory, "1.5g");
	assert_int_equal(s->resources.memory_max, 3LL << 29);
	bad(s, hutch_spec_set_memory, "64q", "invalid memory limit '64q': expected a size", NULL);
	bad(s, hutch_spec_set_memory, "1k", "invalid memory limit '1k': too small, the least is 6m",
	    NULL);
	bad(s, hutch_spec_set_memory, "99999999999999999999", "'99999999999999999999': too big",
	    NULL);
	bad(s, hutch_spec_set_memory, "", "invalid memory limit ''", NULL);
	assert_int_equal(s->resources.memory_max, 3LL << 29);

	ok(s, hutch_spec_set_memory_swap, "-1");
	assert_int_equal(s->resources.memory_swap_max, -1);
	ok(s, hutch_spec_set_memory_swap, "2g");
	assert_int_equal(s->resources.memory_swap_max, 2LL << 30);
	bad(s, hutch_spec_set_memory_swap, "lots", "invalid memory+swap limit 'lots'", NULL);
	bad(s, hutch_spec_set_memory_swap, "-2", "invalid memory+swap limit '-2'", NULL);

	/* the rules between them, in hutch_spec_check_resources (and validation) */
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_check_resources(&s->resources, &err), 0);
	ok(s, hutch_spec_set_memory_swap, "1g");
	assert_int_equal(hutch_spec_check_resources(&s->resources, &err), -1);
	assert_string_equal(err->msg, "the memory+swap limit (1 GiB) is below the memory limit "
				      "(1.5 GiB): it limits memory plus swap, so it must be at "
				      "least the memory limit");
	hutch_err_free(&err);
	s->resources.memory_max = 0;
	assert_int_equal(hutch_spec_check_resources(&s->resources, &err), -1);
	assert_non_null(strstr(err->msg, "a memory+swap limit (1 GiB) needs a memory limit"));
	hutch_err_free(&err);
	ok(s, hutch_spec_set_memory_swap, "-1"); /* unlimited swap needs no memory limit */
	assert_int_equal(hutch_spec_check_resources(&s->resources, &err), 0);
	hutch_spec_free(s);
}

static void test_cpus_and_pids(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_set_cpus, "0.5");
	assert_int_equal(s->resources.cpu_quota_us, 50000);
	assert_int_equal(s->resources.cpu_period_us, 100000);
	ok(s, hutch_spec_set_cpus, "0.01");
	assert_int_equal(s->resources.cpu_quota_us, 1000);
	ok(s, hutch_spec_set_cpus, "1");
	assert_int_equal(s->resources.cpu_quota_us, 100000);
	const char *words[] = {"abc", "0", "0.0", "-1", "0x1", "1e0", "inf", ".", "", " 1", "1 "};
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		char *q = xasprintf("invalid number of CPUs '%s'", words[i]);
		bad(s, hutch_spec_set_cpus, words[i], q, NULL);
		free(q);
	}
	bad(s, hutch_spec_set_cpus, "abc", "expected a number like 0.5 or 2", NULL);
	bad(s, hutch_spec_set_cpus, "0.001", "'0.001': the minimum is 0.01", NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char *many = xasprintf("%ld", ncpu + 1);
	char *why = xasprintf("this machine has %ld", ncpu);
	bad(s, hutch_spec_set_cpus, many, many, why);
	free(many);
	free(why);
	assert_int_equal(s->resources.cpu_quota_us, 100000);
	/* validation holds the machine's rule for specs made otherwise */
	struct hutch_err *err = NULL;
	s->resources.cpu_quota_us = (ncpu + 1) * s->resources.cpu_period_us;
	assert_int_equal(hutch_spec_check_resources(&s->resources, &err), -1);
	assert_non_null(strstr(err->msg, "more than this machine has"));
	hutch_err_free(&err);

	ok(s, hutch_spec_set_pids_limit, "256");
	assert_int_equal(s->resources.pids_max, 256);
	ok(s, hutch_spec_set_pids_limit, "-1");
	assert_int_equal(s->resources.pids_max, 0);
	bad(s, hutch_spec_set_pids_limit, "0", "invalid process limit '0'", "a positive number");
	bad(s, hutch_spec_set_pids_limit, "many", "invalid process limit 'many'", NULL);
	bad(s, hutch_spec_set_pids_limit, "-2", "invalid process limit '-2'", NULL);
	bad(s, hutch_spec_set_pids_limit, "", "invalid process limit ''", NULL);
	bad(s, hutch_spec_set_pids_limit, "99999999999999999999", "too big", "-1 for no limit");
	hutch_spec_free(s);
}

static const struct hutch_rlimit *find_rlimit(const struct hutch_spec *s, int res)
{
	for (size_t i = 0; i < s->process.n_rlimits; i++)
		if (s->process.rlimits[i].resource == res)
			return &s->process.rlimits[i];
	return NULL;
}

static void test_ulimit(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_add_ulimit, "nofile=512:1024");
	const struct hutch_rlimit *rl = find_rlimit(s, RLIMIT_NOFILE);
	assert_int_equal(rl->soft, 512);
	assert_int_equal(rl->hard, 1024);
	assert_true(rl->explicit_);
	ok(s, hutch_spec_add_ulimit, "nofile=256"); /* replaces it */
	rl = find_rlimit(s, RLIMIT_NOFILE);
	assert_int_equal(rl->soft, 256);
	assert_int_equal(rl->hard, 256);
	ok(s, hutch_spec_add_ulimit, "core=0:unlimited");
	assert_int_equal(find_rlimit(s, RLIMIT_CORE)->hard, RLIM_INFINITY);
	size_t n = s->process.n_rlimits;
	bad(s, hutch_spec_add_ulimit, "nofile",
	    "invalid ulimit 'nofile': expected NAME=SOFT[:HARD]", NULL);
	bad(s, hutch_spec_add_ulimit, "bogus=1", "invalid ulimit 'bogus=1': unknown limit 'bogus'",
	    "(known: as, core");
	bad(s, hutch_spec_add_ulimit, "nofile=abc", "invalid ulimit 'nofile=abc'", "SOFT <= HARD");
	bad(s, hutch_spec_add_ulimit, "nofile=200:100", "invalid ulimit 'nofile=200:100'", NULL);
	bad(s, hutch_spec_add_ulimit, "nofile=-5", "invalid ulimit 'nofile=-5'", NULL);
	/* above what the kernel allows anyone: said with the value */
	bad(s, hutch_spec_add_ulimit, "nofile=99999999999", "invalid ulimit 'nofile=99999999999'",
	    "fs.nr_open");
	assert_int_equal(s->process.n_rlimits, n);
	hutch_spec_free(s);
}

/* ---- security, network, mounts ----------------------------------------------------- */

static void test_caps(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	const uint64_t raw = 1ULL << CAP_NET_RAW, admin = 1ULL << CAP_SYS_ADMIN;
	/* every drop before every add, in whatever order they come */
	ok(s, hutch_spec_cap_add, "SYS_ADMIN");
	ok(s, hutch_spec_cap_drop, "NET_RAW");
	assert_int_equal(s->process.caps.bounding, (HUTCH_DEFAULT_CAPS & ~raw) | admin);
	assert_int_equal(s->process.caps.effective, s->process.caps.bounding);
	assert_int_equal(s->process.caps.permitted, s->process.caps.bounding);
	assert_int_equal(s->process.caps.ambient, 0);
	ok(s, hutch_spec_cap_drop, "cap_sys_admin"); /* an add still wins over a drop */
	assert_int_equal(s->process.caps.bounding, (HUTCH_DEFAULT_CAPS & ~raw) | admin);
	ok(s, hutch_spec_cap_drop, "ALL");
	assert_int_equal(s->process.caps.bounding, admin);
	ok(s, hutch_spec_cap_add, "all");
	assert_int_equal(s->process.caps.bounding, ~0ULL);
	bad(s, hutch_spec_cap_add, "NOT_A_CAP", "unknown capability 'NOT_A_CAP'", "NET_RAW");
	bad(s, hutch_spec_cap_drop, "ALSO_NOT", "unknown capability 'ALSO_NOT'", NULL);
	hutch_spec_free(s);

	/* privileged ignores both, as in Docker */
	s = hutch_spec_new();
	hutch_spec_set_privileged(s);
	uint64_t all = s->process.caps.bounding;
	ok(s, hutch_spec_cap_drop, "NET_RAW");
	assert_int_equal(s->process.caps.bounding, all);
	hutch_spec_free(s);
}

static void test_network_and_hosts(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_set_network, "host");
	assert_null(hutch_spec_namespace(s, HUTCH_NS_NETWORK));
	ok(s, hutch_spec_set_network, "none");
	const struct hutch_namespace *ns = hutch_spec_namespace(s, HUTCH_NS_NETWORK);
	assert_non_null(ns);
	assert_null(ns->path);
	bad(s, hutch_spec_set_network, "bridge0", "network mode 'bridge0' is not available",
	    "none (loopback only) or host");

	ok(s, hutch_spec_add_host_entry, "db:10.0.0.5");
	ok(s, hutch_spec_add_host_entry, "cache=10.0.0.6");
	ok(s, hutch_spec_add_host_entry, "v6:[fd00::1]");
	ok(s, hutch_spec_add_host_entry, "v6b:fd00::2");
	assert_int_equal(s->n_extra_hosts, 4);
	assert_string_equal(s->extra_hosts[1].hostname, "cache");
	assert_string_equal(s->extra_hosts[2].address, "fd00::1");
	assert_string_equal(s->extra_hosts[3].address, "fd00::2");
	bad(s, hutch_spec_add_host_entry, "nocolon",
	    "invalid host entry 'nocolon': expected "
	    "HOST:IP",
	    NULL);
	bad(s, hutch_spec_add_host_entry, "db:host-gateway",
	    "host-gateway needs a container "
	    "network",
	    NULL);
	bad(s, hutch_spec_add_host_entry, "db:1.2.3.999", "host entry 'db:1.2.3.999'", "1.2.3.999");
	bad(s, hutch_spec_add_host_entry, "bad_host!:1.2.3.4", "'bad_host!'", NULL);
	assert_int_equal(s->n_extra_hosts, 4);
	hutch_spec_free(s);
}

static int add_volume_in(struct hutch_spec *s, const char *arg, struct hutch_err **err)
{
	return hutch_spec_add_volume(s, arg, "/tmp", err);
}

static void test_volumes(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *sub = xasprintf("%s/data", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	struct hutch_spec *s = hutch_spec_new();
	struct hutch_err *err = NULL;
	char *arg = xasprintf("%s:/data:ro,nosuid", sub);
	ok(s, add_volume_in, arg);
	const struct hutch_mount *m = find_mount(s, "/data");
	assert_non_null(m);
	assert_string_equal(m->type, "bind");
	assert_string_equal(m->source, sub);
	assert_true(has_option(m, "rbind") && has_option(m, "ro") && has_option(m, "nosuid"));
	/* relative to base_dir: the current directory for run, the stack file's for a stack */
	assert_int_equal(hutch_spec_add_volume(s, "./data:/rel", dir, &err), 0);
	assert_string_equal(find_mount(s, "/rel")->source, sub);
	assert_int_equal(hutch_spec_add_volume(s, "../../data:/up", sub, &err), -1);
	assert_non_null(strstr(err->msg, "the source ../../data does not exist"));
	hutch_err_free(&err);
	free(arg);

	bad(s, add_volume_in, "nocolon", "invalid volume 'nocolon': expected SRC:DST[:ro|rw]",
	    NULL);
	bad(s, add_volume_in, ":/x", "invalid volume ':/x'", NULL);
	bad(s, add_volume_in, "myvol:/data",
	    "invalid volume 'myvol:/data': named volumes are not "
	    "supported",
	    NULL);
	bad(s, add_volume_in, "/tmp:data", "the destination must be an absolute path", NULL);
	bad(s, add_volume_in, "/nonexistent-src-qq:/d",
	    "the source /nonexistent-src-qq does not "
	    "exist",
	    NULL);
	bad(s, add_volume_in, "/tmp:/d:rx", "invalid volume '/tmp:/d:rx': unknown option 'rx'",
	    NULL);
	assert_null(find_mount(s, "/d"));
	hutch_spec_free(s);
	assert_int_equal(remove_tree_at(AT_FDCWD, dir, NULL), 0);
	free(sub);
	free(dir);
}

static void test_tmpfs(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	ok(s, hutch_spec_add_tmpfs, "/run");
	const struct hutch_mount *m = find_mount(s, "/run");
	assert_string_equal(m->type, "tmpfs");
	assert_true(has_option(m, "nosuid") && has_option(m, "nodev") && has_option(m, "noexec"));
	ok(s, hutch_spec_add_tmpfs, "/cache:size=64m,mode=1777,exec");
	m = find_mount(s, "/cache");
	assert_true(has_option(m, "size=64m") && has_option(m, "mode=1777") &&
		    has_option(m, "exec"));
	ok(s, hutch_spec_add_tmpfs, "/dev/shm:size=1g"); /* replaces the default */
	assert_true(has_option(find_mount(s, "/dev/shm"), "size=1g"));
	bad(s, hutch_spec_add_tmpfs, "tmp",
	    "invalid tmpfs 'tmp': the destination must be an "
	    "absolute path",
	    NULL);
	bad(s, hutch_spec_add_tmpfs, "/t:size=lots", "invalid tmpfs '/t:size=lots': size 'lots'",
	    "expected a size");
	bad(s, hutch_spec_add_tmpfs, "/t:size=99999999999999999999", "too big", NULL);
	assert_null(find_mount(s, "/t"));
	hutch_spec_free(s);
}

/* ---- what the runtime adds ----------------------------------------------------------- */

struct logged {
	int n;
	enum hutch_log_level level;
	char msg[1024];
};

static void record(enum hutch_log_level level, const char *msg, void *data)
{
	struct logged *l = data;
	l->n++;
	l->level = level;
	snprintf(l->msg, sizeof(l->msg), "%s", msg);
}

static void test_for_runtime_and_log(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	struct hutch_runtime rt = {.data_root = dir, .run_root = dir, .rootless = false};
	struct hutch_spec *s = hutch_spec_new();
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_for_runtime(&rt, s, &err), 0);
	assert_null(hutch_spec_namespace(s, HUTCH_NS_USER)); /* rootful: nothing added */
	assert_int_equal(s->n_uid_map, 0);
	rt.rootless = true;
	struct logged l = {0};
	rt.log = record;
	rt.log_data = &l;
	assert_int_equal(hutch_spec_for_runtime(&rt, s, &err), 0);
	assert_non_null(hutch_spec_namespace(s, HUTCH_NS_USER));
	assert_true(s->n_uid_map >= 1 && s->n_gid_map >= 1);
	/* the caller is root inside */
	assert_int_equal(s->uid_map[0].container_id, 0);
	assert_int_equal(s->uid_map[0].host_id, getuid());
	assert_int_equal(s->gid_map[0].host_id, getgid());
	/* with no subordinate ids a note is said once per user, through the log */
	if (s->n_uid_map == 1) {
		assert_int_equal(l.n, 1);
		assert_int_equal(l.level, HUTCH_LOG_NOTE);
		assert_non_null(strstr(l.msg, "no subordinate ids for uid"));
		assert_int_equal(hutch_spec_for_runtime(&rt, s, &err), 0);
		assert_int_equal(l.n, 1);
	}
	/* whatever the runtime says goes to the callback, quiet or not */
	rt.quiet = true;
	hutch_runtime_log(&rt, HUTCH_LOG_WARNING, "not enforced:%s", " --memory");
	assert_int_equal(l.level, HUTCH_LOG_WARNING);
	assert_string_equal(l.msg, "not enforced: --memory");
	hutch_spec_free(s);
	assert_int_equal(remove_tree_at(AT_FDCWD, dir, NULL), 0);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apply_image),
	    cmocka_unit_test(test_name_and_hostname),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_env_file),
	    cmocka_unit_test(test_workdir_user_stop_signal),
	    cmocka_unit_test(test_memory),
	    cmocka_unit_test(test_cpus_and_pids),
	    cmocka_unit_test(test_ulimit),
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_network_and_hosts),
	    cmocka_unit_test(test_volumes),
	    cmocka_unit_test(test_tmpfs),
	    cmocka_unit_test(test_for_runtime_and_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
