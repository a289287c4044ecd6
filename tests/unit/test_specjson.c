/* runtime/specjson.c: the whole spec to JSON and back (spec.json, what a
 * container is started again from), and damaged files refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/container_internal.h"

static const char id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static char **strv(size_t n, ...)
{
	va_list ap;
	va_start(ap, n);
	char **v = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(va_arg(ap, const char *));
	va_end(ap);
	return v;
}

/* A spec with every field set to something other than its zero or default. */
static struct hutch_spec *full_spec(void)
{
	struct hutch_spec *s = hutch_spec_new();
	s->id = xstrdup(id);
	s->name = xstrdup("shop-db-1");
	s->image = xstrdup("bb:latest");
	s->image_id = xstrdup("fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
	s->hostname = xstrdup("db");
	s->process.args = strv(3, "sh", "-c", "echo \"quoted\" \\ back\nslash");
	s->process.n_args = 3;
	hutch_spec_set_env(s, "K=v=w");
	hutch_spec_set_env(s, "UNICODE=\u00e9t\u00e9");
	free(s->process.cwd);
	s->process.cwd = xstrdup("/srv/app");
	s->process.user = xstrdup("999:999");
	s->process.terminal = s->process.interactive = s->process.init = true;
	s->process.no_new_privileges = false;
	s->process.caps = (struct hutch_caps){.bounding = HUTCH_DEFAULT_CAPS | (1ULL << 21),
					      .effective = 1ULL << 12,
					      .permitted = 1ULL << 0,
					      .inheritable = 1ULL << 1,
					      .ambient = 1ULL << 40};
	s->process.rlimits = xrealloc(s->process.rlimits, 3 * sizeof(struct hutch_rlimit));
	s->process.rlimits[1] = (struct hutch_rlimit){RLIMIT_CORE, 0, UINT64_MAX, true};
	s->process.rlimits[2] = (struct hutch_rlimit){RLIMIT_NPROC, 7, 9, true};
	s->process.n_rlimits = 3;
	s->process.stop_signal = SIGINT;
	s->root.layers = strv(2, "/var/lib/hutch/images/layers/a", "/x/layers/b");
	s->root.n_layers = 2;
	s->root.readonly = true;
	hutch_spec_add_mount(s, "bind", "/host/data", "/data", "rbind,ro,rslave");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/run", "size=64m,mode=1777");
	hutch_spec_set_namespace(s, HUTCH_NS_NETWORK, "/run/netns/x");
	hutch_spec_set_namespace(s, HUTCH_NS_USER, NULL);
	s->masked_paths = xrealloc(s->masked_paths, (s->n_masked_paths + 2) * sizeof(char *));
	s->masked_paths[s->n_masked_paths++] = xstrdup("/proc/extra");
	s->masked_paths[s->n_masked_paths] = NULL;
	assert_int_equal(hutch_spec_add_dns_server(s, "10.0.0.53", NULL), 0);
	assert_int_equal(hutch_spec_add_dns_search(s, "example.org", NULL), 0);
	assert_int_equal(hutch_spec_add_dns_option(s, "ndots:2", NULL), 0);
	assert_int_equal(hutch_spec_add_host(s, "db.local", "fd00::1", NULL), 0);
	s->uid_map = xcalloc(2, sizeof(*s->uid_map));
	s->uid_map[0] = (struct hutch_id_map){0, 1000, 1};
	s->uid_map[1] = (struct hutch_id_map){1, 100000, 65536};
	s->n_uid_map = 2;
	s->gid_map = xcalloc(1, sizeof(*s->gid_map));
	s->gid_map[0] = (struct hutch_id_map){0, 4294967295u, 1};
	s->n_gid_map = 1;
	s->resources.memory_max = 512 << 20;
	s->resources.memory_swap_max = -1;
	s->resources.cpu_quota_us = 150000;
	s->resources.cpu_period_us = 100000;
	s->resources.pids_max = 256;
	s->seccomp = HUTCH_SECCOMP_UNCONFINED;
	s->privileged = s->auto_remove = s->detached = true;
	hutch_spec_add_device_rule(s, false, 'a', -1, -1, "rwm");
	hutch_spec_add_device_rule(s, true, 'c', 10, 200, "rw");
	s->devices = xcalloc(1, sizeof(*s->devices));
	s->devices[0] = (struct hutch_device){.path = xstrdup("/dev/net/tun"),
					      .type = 'c',
					      .major = 10,
					      .minor = 200,
					      .file_mode = 0666,
					      .uid = 0,
					      .gid = 4294967295u,
					      .host_path = xstrdup("/dev/net/tun")};
	s->n_devices = 1;
	/* as the option setters leave them (not through them: they rebuild args) */
	s->given.image_entrypoint = strv(1, "/docker-entrypoint.sh");
	s->given.n_image_entrypoint = 1;
	s->given.entrypoint = strv(2, "/entry", "--flag");
	s->given.n_entrypoint = 2;
	s->given.command = strv(1, "serve");
	s->given.n_command = 1;
	s->given.entrypoint_set = s->given.command_set = true;
	s->given.caps_added = 1ULL << 21;
	s->given.caps_dropped = ~0ULL;
	return s;
}

static void round_trip_keeps_every_field(void **state)
{
	(void)state;
	struct hutch_spec *s = full_spec();
	_cleanup_free_ char *text = hutch_spec_to_json(s);
	struct hutch_spec *back = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_from_json(text, strlen(text), &back, &err), 0);
	assert_null(err);
	/* every field the tables know is written again the same */
	_cleanup_free_ char *again = hutch_spec_to_json(back);
	assert_string_equal(text, again);
	/* and a few by hand: what a careless writer would lose */
	assert_string_equal(back->id, id);
	assert_string_equal(back->name, "shop-db-1");
	assert_string_equal(back->process.args[2], "echo \"quoted\" \\ back\nslash");
	assert_null(back->process.args[3]); /* NULL-terminated, as execve wants */
	assert_int_equal(back->process.n_env, s->process.n_env);
	assert_string_equal(back->process.user, "999:999");
	assert_true(back->process.init && back->process.terminal && back->process.interactive);
	assert_false(back->process.no_new_privileges);
	assert_true(back->process.caps.bounding == (HUTCH_DEFAULT_CAPS | (1ULL << 21)));
	assert_true(back->process.caps.ambient == 1ULL << 40);
	assert_int_equal(back->process.n_rlimits, 3);
	assert_true(back->process.rlimits[1].hard == UINT64_MAX);
	assert_int_equal(back->process.rlimits[2].resource, RLIMIT_NPROC);
	assert_true(back->process.rlimits[2].explicit_);
	assert_int_equal(back->process.stop_signal, SIGINT);
	assert_int_equal(back->root.n_layers, 2);
	assert_true(back->root.readonly);
	assert_int_equal(back->n_mounts, s->n_mounts);
	const struct hutch_namespace *net = hutch_spec_namespace(back, HUTCH_NS_NETWORK);
	assert_non_null(net);
	assert_string_equal(net->path, "/run/netns/x");
	assert_non_null(hutch_spec_namespace(back, HUTCH_NS_USER));
	assert_int_equal(back->n_uid_map, 2);
	assert_int_equal(back->uid_map[1].size, 65536);
	assert_true(back->gid_map[0].host_id == 4294967295u);
	assert_string_equal(back->extra_hosts[0].address, "fd00::1");
	assert_true(back->resources.memory_swap_max == -1);
	assert_true(back->resources.pids_max == 256);
	assert_int_equal(back->seccomp, HUTCH_SECCOMP_UNCONFINED);
	assert_true(back->privileged && back->auto_remove && back->detached);
	assert_int_equal(back->n_devices, 1);
	assert_int_equal(back->devices[0].type, 'c');
	assert_true(back->devices[0].gid == 4294967295u);
	assert_string_equal(back->devices[0].host_path, "/dev/net/tun");
	size_t nr = back->resources.n_devices;
	assert_true(nr >= 2 && nr == s->resources.n_devices);
	assert_string_equal(back->resources.devices[nr - 1].access, "rw");
	assert_int_equal(back->resources.devices[nr - 2].type, 'a');
	assert_true(back->resources.devices[nr - 2].major == -1);
	assert_false(back->resources.devices[nr - 2].allow);
	assert_true(back->given.entrypoint_set && back->given.command_set);
	assert_string_equal(back->given.entrypoint[1], "--flag");
	assert_true(back->given.caps_dropped == ~0ULL);
	assert_int_equal(hutch_spec_validate(back, NULL), hutch_spec_validate(s, NULL));
	hutch_spec_free(back);
	hutch_spec_free(s);
}

static void default_spec_round_trips(void **state)
{
	(void)state;
	struct hutch_spec *s = hutch_spec_new();
	s->id = xstrdup(id);
	_cleanup_free_ char *text = hutch_spec_to_json(s);
	struct hutch_spec *back = NULL;
	assert_int_equal(hutch_spec_from_json(text, strlen(text), &back, NULL), 0);
	assert_null(back->name); /* null stays NULL */
	assert_null(back->process.user);
	assert_int_equal(back->n_uid_map, 0);
	_cleanup_free_ char *again = hutch_spec_to_json(back);
	assert_string_equal(text, again);
	hutch_spec_free(back);
	hutch_spec_free(s);
}

/* text with the first `from` replaced by `to` (must be there) */
static char *edited(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	assert_non_null(at);
	return xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* The edit is refused with a message containing `says`. */
static void refused(const char *text, const char *says)
{
	struct hutch_spec *back = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_from_json(text, strlen(text), &back, &err), -1);
	assert_null(back);
	assert_non_null(err);
	if (!strstr(err->msg, says))
		fail_msg("message '%s' does not say '%s'", err->msg, says);
	hutch_err_free(&err);
}

static void damaged_specs_refused(void **state)
{
	(void)state;
	struct hutch_spec *s = full_spec();
	_cleanup_free_ char *text = hutch_spec_to_json(s);
	hutch_spec_free(s);
	static const struct {
		const char *from, *to, *says;
	} cases[] = {
	    {"\"version\": 1", "\"version\": 2", "spec version 2"},
	    {"\"version\": 1,", "", "no spec version"},
	    {"\"hostname\": \"db\"", "\"hostname\": 7",
	     "hostname: a string or null expected, not a number"},
	    {"\"hostname\": \"db\"", "\"hostname\": \"db\", \"hostnam\": 1",
	     "unknown key 'hostnam'"},
	    {"\"hostname\": \"db\",", "", "'hostname' is missing"},
	    {"\"readonly\": true", "\"readonly\": 1", "root.readonly: true or false expected"},
	    {"\"pids_max\": 256", "\"pids_max\": 2.5",
	     "resources.pids_max: a whole number expected, not a fraction"},
	    {"\"size\": 65536", "\"size\": -1", "uid_map[1].size: -1 is out of range"},
	    {"\"size\": 65536", "\"size\": 4294967296",
	     "uid_map[1].size: 4294967296 is out of range"},
	    {"\"stop_signal\": 2", "\"stop_signal\": 99999999999",
	     "process.stop_signal: 99999999999 is out of range"},
	    {"\"CAP_CHOWN\"", "\"CAP_FLY\"", "unknown capability 'CAP_FLY'"},
	    {"\"type\": \"network\"", "\"type\": \"clock\"", "unknown namespace type 'clock'"},
	    {"\"seccomp\": \"unconfined\"", "\"seccomp\": 1", "seccomp: a name expected"},
	    {"\"resource\": \"core\"", "\"resource\": \"cores\"", "unknown resource limit 'cores'"},
	    {"\"sh\",", "null,", "process.args[0]: a string expected, not null"},
	    {"\"/srv/app\"", "\"/srv\\u0000app\"", "process.cwd: a string with a NUL byte"},
	    {"\"destination\": \"/data\",", "\"destination\": \"/data\", \"x\": 1,",
	     "unknown key 'mounts["},
	    {"\"process\": {", "\"process\": [], \"p\": {",
	     "process: an object expected, not a list"},
	    {"\"id\": \"0123", "\"id\": \"x123", "'id' is not a container id"},
	    {"\"access\": \"rw\"", "\"access\": \"rwmx\"",
	     "access: 'rwmx' is longer than 3 characters"},
	    {"\"type\": \"c\"", "\"type\": \"cb\"", "type: 'cb' is longer than 1 character"},
	    {"\"file_mode\": 438", "\"file_mode\": \"0666\"",
	     "devices[0].file_mode: a whole number expected, not a string"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *bad = edited(text, cases[i].from, cases[i].to);
		refused(bad, cases[i].says);
	}
	/* cut anywhere: never accepted */
	for (size_t cut = 0; cut < strlen(text) - 2; cut += 7) {
		_cleanup_free_ char *part = xasprintf("%.*s", (int)cut, text);
		refused(part, cut ? "not valid JSON" : "not valid JSON");
	}
	_cleanup_free_ char *trailing = xasprintf("%s}", text);
	refused(trailing, "something follows it");
	refused("[]", "no spec version");
}

static void load_names_the_file(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/test_specjson.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	struct hutch_runtime rt = {.data_root = tmpl};
	_cleanup_free_ char *dir = xasprintf("%s/containers/%s", tmpl, id);
	assert_int_equal(mkdir_p_at(AT_FDCWD, dir, 0700, NULL), 0);
	_cleanup_free_ char *path = xasprintf("%s/spec.json", dir);
	struct hutch_spec *got = NULL;
	struct hutch_err *err = NULL;

	/* missing */
	assert_int_equal(hutch_spec_load(&rt, id, &got, &err), -1);
	assert_non_null(strstr(err->msg, path));
	hutch_err_free(&err);

	/* written by spec_write, read back */
	struct hutch_spec *s = full_spec();
	assert_int_equal(spec_write(&rt, s, NULL), 0);
	assert_int_equal(hutch_spec_load(&rt, id, &got, &err), 0);
	assert_string_equal(got->name, "shop-db-1");
	hutch_spec_free(got);

	/* truncated: the message names the file and says what is wrong */
	_cleanup_free_ char *text = hutch_spec_to_json(s);
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, 100), 100);
	close(fd);
	assert_int_equal(hutch_spec_load(&rt, id, &got, &err), -1);
	assert_null(got);
	assert_non_null(strstr(err->msg, path));
	assert_non_null(strstr(err->msg, "damaged"));
	assert_non_null(strstr(err->msg, "not valid JSON"));
	hutch_err_free(&err);

	/* another container's spec in this one's dir */
	free(s->id);
	s->id = xstrdup("1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	_cleanup_free_ char *other = hutch_spec_to_json(s);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, other, strlen(other)), (ssize_t)strlen(other));
	close(fd);
	assert_int_equal(hutch_spec_load(&rt, id, &got, &err), -1);
	assert_non_null(strstr(err->msg, "spec of container 112345678"));
	hutch_err_free(&err);
	hutch_spec_free(s);
	assert_int_equal(remove_tree_at(AT_FDCWD, tmpl, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_keeps_every_field),
	    cmocka_unit_test(default_spec_round_trips),
	    cmocka_unit_test(damaged_specs_refused),
	    cmocka_unit_test(load_names_the_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
