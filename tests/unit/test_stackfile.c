/* supervisor/: the stack file reader (stackfile.c), its interpolation and env
 * files (interp.c), shell words (words.c), the dependency graph (graph.c), and
 * parse_duration (common/util.c). Files are written to a temporary directory
 * and loaded as `hutch up` would; every error is checked by its exact text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/util.h"
#include "supervisor/stack.h"

/* ---- helpers -------------------------------------------------------------- */

static char *tmpdir;
static char *old_cwd;

static int setup(void **state)
{
	tmpdir = xstrdup("/tmp/hutch-test-stack-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	old_cwd = getcwd(NULL, 0);
	assert_int_equal(chdir(tmpdir), 0);
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(chdir(old_cwd), 0);
	/* independent of the code under test */
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(tmpdir);
	free(old_cwd);
	return 0;
}

static void put_n(const char *name, const char *text, size_t len)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, len), 0);
	close(fd);
}

static void put(const char *name, const char *text)
{
	put_n(name, text, strlen(text));
}

static char *no_env[] = {NULL};

static struct hutch_stack *load_ok_env(const char *text, char **envp)
{
	put("hutch.ini", text);
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	if (stack_load_env("hutch.ini", envp, &s, &err) < 0)
		fail_msg("load failed: %s", err->msg);
	assert_null(err);
	return s;
}

static struct hutch_stack *load_ok(const char *text)
{
	return load_ok_env(text, no_env);
}

static void expect_error_env(const char *text, char **envp, const char *want)
{
	put("hutch.ini", text);
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(stack_load_env("hutch.ini", envp, &s, &err), -1);
	assert_null(s);
	assert_non_null(err);
	if (strcmp(err->msg, want))
		fail_msg("for:\n%s\ngot:  %s\nwant: %s", text, err->msg, want);
	hutch_err_free(&err);
}

static void expect_error(const char *text, const char *want)
{
	expect_error_env(text, no_env, want);
}

static const struct stack_service *svc(const struct hutch_stack *s, const char *name)
{
	ssize_t i = stack_service_index(s, name);
	if (i < 0)
		fail_msg("no service %s", name);
	return &s->services[i];
}

static void assert_words(char **words, size_t n, const char *const *want, size_t n_want)
{
	assert_int_equal(n, n_want);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(words[i], want[i]);
}

#define WORDS(...)                                                                                 \
	(const char *const[]){__VA_ARGS__}, ARRAY_SIZE(((const char *const[]){__VA_ARGS__}))

/* ---- every key ------------------------------------------------------------ */

static void test_every_key(void **state)
{
	put("db.env", "# comment\nTZ=Europe/Paris\nexport FROM_FILE=\"two words\" # c\nA=1\n");
	char *envp[] = {"TAG=16", "HOME=/root", NULL};
	struct hutch_stack *s = load_ok_env(
	    "[stack]\n"
	    "name = shop ; a comment\n"
	    "\n"
	    "[service.db]\n"
	    "image = pg:${TAG}\n"
	    "command = postgres -c 'fsync=off' \"a b\"\n"
	    "entrypoint = /bin/sh -c\n"
	    "env = POSTGRES_PASSWORD=${DB_PASSWORD:-secret} TZ=UTC HOME\n"
	    "env_file = db.env\n"
	    "volumes = pgdata:/var/lib/postgresql/data ./init:/docker-entrypoint-initdb.d:ro\n"
	    "tmpfs = /run\n"
	    "user = 999:999\n"
	    "health_cmd = pg_isready -U postgres\n"
	    "health_interval = 5s\n"
	    "health_timeout = 3s\n"
	    "health_retries = 4\n"
	    "health_start_period = 30s\n"
	    "health_start_interval = 500ms\n"
	    "memory = 512m\n"
	    "memory_swap = 1g\n"
	    "cpus = 1.5\n"
	    "pids = 256\n"
	    "restart = unless-stopped\n"
	    "stop_signal = SIGINT\n"
	    "stop_grace_period = 1m30s\n"
	    "read_only = true\n"
	    "cap_add = NET_ADMIN SYS_TIME\n"
	    "cap_drop = ALL\n"
	    "hostname = db\n"
	    "workdir = /srv\n"
	    "ulimits = nofile=1024:2048 nproc=64\n"
	    "dns = 10.0.0.1\n"
	    "dns_search = example.org\n"
	    "dns_option = ndots:2\n"
	    "add_host = h:10.0.0.2\n"
	    "privileged = no\n"
	    "init = on\n"
	    "security_opt = no-new-privileges\n"
	    "network = host\n"
	    "device = /dev/fuse\n"
	    "\n"
	    "[service.migrate]\n"
	    "image = app:1\n"
	    "command = app migrate\n"
	    "depends_on = db:healthy\n"
	    "restart = on-failure:3\n"
	    "\n"
	    "[service.api]\n"
	    "image = app:1\n"
	    "depends_on = db:healthy migrate:completed cache\n"
	    "health_http = http://:8080/healthz\n"
	    "replicas = 2\n"
	    "notify = true\n"
	    "entrypoint = \"\"\n"
	    "\n"
	    "[service.cache]\n"
	    "image = redis:7\n"
	    "health_tcp = 6379\n"
	    "restart = always\n"
	    "stop_grace_period = 0\n",
	    envp);
	assert_string_equal(s->name, "shop");
	assert_string_equal(s->file, "hutch.ini");
	assert_string_equal(s->dir, ".");
	assert_int_equal(s->n_services, 4);

	const struct stack_service *db = svc(s, "db");
	assert_int_equal(db->line, 4);
	assert_string_equal(db->image, "pg:16");
	assert_words(db->command, db->n_command, WORDS("postgres", "-c", "fsync=off", "a b"));
	assert_true(db->has_entrypoint);
	assert_words(db->entrypoint, db->n_entrypoint, WORDS("/bin/sh", "-c"));
	/* env_file first, env over it whatever the keys' order; NAME alone from
	 * the environment */
	assert_words(db->env, db->n_env,
		     WORDS("TZ=UTC", "FROM_FILE=two words", "A=1", "POSTGRES_PASSWORD=secret",
			   "HOME=/root"));
	assert_int_equal(db->health.kind, STACK_HEALTH_CMD);
	assert_int_equal(db->health.line, 13);
	assert_words(db->health.cmd, db->health.n_cmd, WORDS("pg_isready", "-U", "postgres"));
	assert_int_equal(db->health.interval_ns, 5000000000LL);
	assert_int_equal(db->health.timeout_ns, 3000000000LL);
	assert_int_equal(db->health.retries, 4);
	assert_int_equal(db->health.start_period_ns, 30000000000LL);
	assert_int_equal(db->health.start_interval_ns, 500000000LL);
	assert_int_equal(db->restart, STACK_RESTART_UNLESS_STOPPED);
	assert_int_equal(db->stop_grace_ns, 90000000000LL);
	assert_int_equal(db->replicas, 1);
	assert_false(db->notify);
	assert_int_equal(db->n_deps, 0);

	/* container options: raw text with their line, words for lists */
	static const struct {
		const char *key, *text;
		int line;
		enum stack_option_kind kind;
	} opts[] = {
	    {"volumes", "pgdata:/var/lib/postgresql/data ./init:/docker-entrypoint-initdb.d:ro", 10,
	     STACK_OPT_LIST},
	    {"tmpfs", "/run", 11, STACK_OPT_LIST},
	    {"user", "999:999", 12, STACK_OPT_TEXT},
	    {"memory", "512m", 19, STACK_OPT_TEXT},
	    {"memory_swap", "1g", 20, STACK_OPT_TEXT},
	    {"cpus", "1.5", 21, STACK_OPT_TEXT},
	    {"pids", "256", 22, STACK_OPT_TEXT},
	    {"stop_signal", "SIGINT", 24, STACK_OPT_TEXT},
	    {"read_only", "true", 26, STACK_OPT_FLAG},
	    {"cap_add", "NET_ADMIN SYS_TIME", 27, STACK_OPT_LIST},
	    {"cap_drop", "ALL", 28, STACK_OPT_LIST},
	    {"hostname", "db", 29, STACK_OPT_TEXT},
	    {"workdir", "/srv", 30, STACK_OPT_TEXT},
	    {"ulimits", "nofile=1024:2048 nproc=64", 31, STACK_OPT_LIST},
	    {"dns", "10.0.0.1", 32, STACK_OPT_LIST},
	    {"dns_search", "example.org", 33, STACK_OPT_LIST},
	    {"dns_option", "ndots:2", 34, STACK_OPT_LIST},
	    {"add_host", "h:10.0.0.2", 35, STACK_OPT_LIST},
	    {"privileged", "no", 36, STACK_OPT_FLAG},
	    {"init", "on", 37, STACK_OPT_FLAG},
	    {"security_opt", "no-new-privileges", 38, STACK_OPT_LIST},
	    {"network", "host", 39, STACK_OPT_TEXT},
	    {"device", "/dev/fuse", 40, STACK_OPT_LIST},
	};
	assert_int_equal(db->n_options, ARRAY_SIZE(opts));
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		const struct stack_option *o = stack_service_option(db, opts[i].key);
		if (!o)
			fail_msg("no option %s", opts[i].key);
		assert_string_equal(o->text, opts[i].text);
		assert_int_equal(o->line, opts[i].line);
		assert_int_equal(o->kind, opts[i].kind);
	}
	const struct stack_option *o = stack_service_option(db, "volumes");
	assert_words(
	    o->words, o->n_words,
	    WORDS("pgdata:/var/lib/postgresql/data", "./init:/docker-entrypoint-initdb.d:ro"));
	o = stack_service_option(db, "ulimits");
	assert_words(o->words, o->n_words, WORDS("nofile=1024:2048", "nproc=64"));
	assert_true(stack_service_option(db, "read_only")->flag);
	assert_false(stack_service_option(db, "privileged")->flag);
	assert_true(stack_service_option(db, "init")->flag);

	const struct stack_service *migrate = svc(s, "migrate");
	assert_int_equal(migrate->n_deps, 1);
	assert_string_equal(migrate->deps[0].service, "db");
	assert_int_equal(migrate->deps[0].condition, STACK_DEP_HEALTHY);
	assert_int_equal(migrate->deps[0].line, 45);
	assert_int_equal(migrate->restart, STACK_RESTART_ON_FAILURE);
	assert_int_equal(migrate->restart_max, 3);
	assert_words(migrate->command, migrate->n_command, WORDS("app", "migrate"));
	assert_false(migrate->has_entrypoint);
	/* defaults, as compose's */
	assert_int_equal(migrate->health.kind, STACK_HEALTH_NONE);
	assert_int_equal(migrate->health.interval_ns, 30000000000LL);
	assert_int_equal(migrate->health.timeout_ns, 30000000000LL);
	assert_int_equal(migrate->health.retries, 3);
	assert_int_equal(migrate->health.start_period_ns, 0);
	assert_int_equal(migrate->health.start_interval_ns, 5000000000LL);
	assert_int_equal(migrate->stop_grace_ns, 10000000000LL);
	assert_int_equal(migrate->n_options, 0);

	const struct stack_service *api = svc(s, "api");
	assert_int_equal(api->n_deps, 3);
	assert_int_equal(api->deps[1].condition, STACK_DEP_COMPLETED);
	assert_string_equal(api->deps[2].service, "cache");
	assert_int_equal(api->deps[2].condition, STACK_DEP_STARTED);
	assert_int_equal(api->health.kind, STACK_HEALTH_HTTP);
	assert_int_equal(api->health.port, 8080);
	assert_string_equal(api->health.http_host, "127.0.0.1");
	assert_string_equal(api->health.http_path, "/healthz");
	assert_int_equal(api->replicas, 2);
	assert_true(api->notify);
	assert_true(api->has_entrypoint); /* entrypoint = "": none, not the image's */
	assert_int_equal(api->n_entrypoint, 0);
	assert_null(api->command);

	const struct stack_service *cache = svc(s, "cache");
	assert_int_equal(cache->health.kind, STACK_HEALTH_TCP);
	assert_int_equal(cache->health.port, 6379);
	assert_int_equal(cache->restart, STACK_RESTART_ALWAYS);
	assert_int_equal(cache->stop_grace_ns, 0);

	size_t n_warn = 99;
	hutch_stack_warnings(s, &n_warn);
	assert_int_equal(n_warn, 0);
	hutch_stack_free(s);
}

static void test_restart_policies(void **state)
{
	static const struct {
		const char *text;
		enum stack_restart policy;
		unsigned max;
	} cases[] = {
	    {"no", STACK_RESTART_NO, 0},
	    {"always", STACK_RESTART_ALWAYS, 0},
	    {"on-failure", STACK_RESTART_ON_FAILURE, 0},
	    {"on-failure:0", STACK_RESTART_ON_FAILURE, 0},
	    {"on-failure:10", STACK_RESTART_ON_FAILURE, 10},
	    {"unless-stopped", STACK_RESTART_UNLESS_STOPPED, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = xasprintf("[service.a]\nimage = a\nrestart = %s\n", cases[i].text);
		struct hutch_stack *s = load_ok(text);
		assert_int_equal(s->services[0].restart, cases[i].policy);
		assert_int_equal(s->services[0].restart_max, cases[i].max);
		hutch_stack_free(s);
		free(text);
	}
	expect_error("[service.a]\nimage = a\nrestart = sometimes\n",
		     "hutch.ini:3: restart: 'sometimes' is not a restart policy: use no, always, "
		     "on-failure, on-failure:N or unless-stopped");
	expect_error("[service.a]\nimage = a\nrestart = on-failure:-1\n",
		     "hutch.ini:3: restart: 'on-failure:-1': after on-failure: comes the most "
		     "restarts, a number from 0 (no limit) to 1000000");
	expect_error("[service.a]\nimage = a\nrestart = on-failure:\n",
		     "hutch.ini:3: restart: 'on-failure:': after on-failure: comes the most "
		     "restarts, a number from 0 (no limit) to 1000000");
	expect_error("[service.a]\nimage = a\nrestart = Always\n",
		     "hutch.ini:3: restart: 'Always' is not a restart policy: use no, always, "
		     "on-failure, on-failure:N or unless-stopped");
}

static void test_health_forms(void **state)
{
	static const struct {
		const char *url, *host, *path;
		unsigned port;
	} http[] = {
	    {"http://:8080/healthz", "127.0.0.1", "/healthz", 8080},
	    {"http://:80", "127.0.0.1", "/", 80},
	    {"http://localhost:3000/a/b?x=1&y", "localhost", "/a/b?x=1&y", 3000},
	    {"http://10.1.2.3:1/", "10.1.2.3", "/", 1},
	    {"http://[::1]:65535/x", "::1", "/x", 65535},
	    {"HTTP://:9?q", "127.0.0.1", "/?q", 9},
	};
	for (size_t i = 0; i < ARRAY_SIZE(http); i++) {
		char *text = xasprintf("[service.a]\nimage = a\nhealth_http = %s\n", http[i].url);
		struct hutch_stack *s = load_ok(text);
		const struct stack_health *h = &s->services[0].health;
		assert_int_equal(h->kind, STACK_HEALTH_HTTP);
		assert_string_equal(h->http_host, http[i].host);
		assert_string_equal(h->http_path, http[i].path);
		assert_int_equal(h->port, http[i].port);
		hutch_stack_free(s);
		free(text);
	}
	static const struct {
		const char *url, *want;
	} bad_http[] = {
	    {"https://:8443/", "hutch.ini:3: health_http: 'https://:8443/': https is not supported "
			       "(hutch probes with plain http from inside the container): write "
			       "http://[HOST]:PORT/PATH, like http://:8080/healthz"},
	    {"localhost:80/", "hutch.ini:3: health_http: 'localhost:80/' is not an http URL: write "
			      "http://[HOST]:PORT/PATH, like http://:8080/healthz"},
	    {"http://:0/", "hutch.ini:3: health_http: 'http://:0/': the port is missing or not "
			   "1-65535: write http://[HOST]:PORT/PATH, like http://:8080/healthz"},
	    {"http://localhost/", "hutch.ini:3: health_http: 'http://localhost/': the port is "
				  "missing or not 1-65535: write http://[HOST]:PORT/PATH, like "
				  "http://:8080/healthz"},
	    {"http://db:5432/", "hutch.ini:3: health_http: 'http://db:5432/': the host is probed "
				"from inside the container, with no DNS: leave it out, or give "
				"localhost or an IP address"},
	    {"http://[::g]:80/", "hutch.ini:3: health_http: 'http://[::g]:80/': the host is not an "
				 "IPv6 address"},
	    {"'http://:80/a b'", "hutch.ini:3: health_http: 'http://:80/a b': the path has a "
				 "blank, a control character or a '#': percent-encode it"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_http); i++) {
		char *text =
		    xasprintf("[service.a]\nimage = a\nhealth_http = %s\n", bad_http[i].url);
		expect_error(text, bad_http[i].want);
		free(text);
	}
	expect_error("[service.a]\nimage = a\nhealth_tcp = 0\n",
		     "hutch.ini:3: health_tcp: '0' is not a port: use 1 to 65535");
	expect_error("[service.a]\nimage = a\nhealth_tcp = 65536\n",
		     "hutch.ini:3: health_tcp: '65536' is not a port: use 1 to 65535");
	expect_error("[service.a]\nimage = a\nhealth_tcp = +80\n",
		     "hutch.ini:3: health_tcp: '+80' is not a port: use 1 to 65535");
	expect_error("[service.a]\nimage = a\nhealth_cmd = true\nhealth_tcp = 80\n",
		     "hutch.ini:4: health_tcp: a service has one health check: health_cmd, "
		     "health_tcp or health_http, not 2 of them");
	expect_error("[service.a]\nimage = a\nhealth_http = http://:1/\nhealth_cmd = true\n"
		     "health_tcp = 80\n",
		     "hutch.ini:5: health_tcp: a service has one health check: health_cmd, "
		     "health_tcp or health_http, not 3 of them");
	expect_error("[service.a]\nimage = a\nhealth_retries = 2\nhealth_interval = 1s\n",
		     "hutch.ini:3: health_retries: no health check to time: add health_cmd, "
		     "health_tcp or health_http");
	expect_error("[service.a]\nimage = a\nhealth_cmd = true\nhealth_retries = 0\n",
		     "hutch.ini:4: health_retries: '0' is not a number from 1 to 1000000");
	expect_error("[service.a]\nimage = a\nhealth_cmd =\n",
		     "hutch.ini:3: health_cmd: empty: give the command to run");
	expect_error("[service.a]\nimage = a\nhealth_cmd = true\nhealth_interval = 0\n",
		     "hutch.ini:4: health_interval: '0' is too short: at least 1ms");
	expect_error("[service.a]\nimage = a\nhealth_cmd = true\nhealth_start_interval = 100us\n",
		     "hutch.ini:4: health_start_interval: '100us' is too short: at least 1ms");
}

static void test_bad_values(void **state)
{
	expect_error("[service.a]\nimage = a\nhealth_cmd = x\nhealth_timeout = 5\n",
		     "hutch.ini:4: health_timeout: '5' is not a duration: write a number and a "
		     "unit (ms, s, m, h), like 500ms, 5s, 1m30s or 2h");
	expect_error("[service.a]\nimage = a\nstop_grace_period = -1s\n",
		     "hutch.ini:3: stop_grace_period: '-1s' is not a duration: write a number "
		     "and a unit (ms, s, m, h), like 500ms, 5s, 1m30s or 2h");
	expect_error("[service.a]\nimage = a\nreplicas = 0\n",
		     "hutch.ini:3: replicas: '0' is not a number from 1 to 1000");
	expect_error("[service.a]\nimage = a\nreplicas = 1001\n",
		     "hutch.ini:3: replicas: '1001' is not a number from 1 to 1000");
	expect_error("[service.a]\nimage = a\nreplicas = two\n",
		     "hutch.ini:3: replicas: 'two' is not a number from 1 to 1000");
	expect_error("[service.a]\nimage = a\nnotify = maybe\n",
		     "hutch.ini:3: notify: 'maybe' is not a boolean: use true or false");
	expect_error("[service.a]\nimage = a\nread_only = 2\n",
		     "hutch.ini:3: read_only: '2' is not a boolean: use true or false");
	/* the image name is checked as `hutch run IMAGE` checks it */
	expect_error(
	    "[service.a]\nimage = Busybox\n",
	    "hutch.ini:2: image: invalid image reference 'Busybox': the repository "
	    "'library/Busybox' must be lowercase letters and digits separated by '/', '.', "
	    "'_', '__' or '-'");
	expect_error("[service.a]\nimage = pg:${TAG}\n",
		     "hutch.ini:2: image: invalid image reference 'pg:': bad tag (letters, digits, "
		     "'_', '.' and '-', at most 128, not starting with '.' or '-')");
	expect_error("[service.a]\ncommand = x\n", "hutch.ini:1: [service.a]: no image: add image "
						   "= NAME (like image = busybox), or build = DIR");
	expect_error("[service.a]\nimage =\n", "hutch.ini:1: [service.a]: no image: add image = "
					       "NAME (like image = busybox), or build = DIR");
	expect_error("[service.a]\nimage = a\ncommand = ''\n",
		     "hutch.ini:3: command: empty: leave the key out to run the image's Cmd");
	expect_error("[service.a]\nimage = a\nenv = A=1 =x\n",
		     "hutch.ini:3: env: '=x': expected NAME=VALUE (or NAME alone, for the "
		     "variable's value here)");
	expect_error("[stack]\nname = x\n", "hutch.ini: no services: add a [service.NAME] section "
					    "with an image");
	expect_error("", "hutch.ini: no services: add a [service.NAME] section with an image");
}

/* ---- names ---------------------------------------------------------------- */

static void test_names(void **state)
{
	expect_error("[service.-a]\nimage = a\n",
		     "hutch.ini:1: [service.-a]: '-a' is not a service name: use up to 63 letters, "
		     "digits, '_', '.' or '-', starting with a letter or digit");
	expect_error("[service.a b]\nimage = a\n",
		     "hutch.ini:1: [service.a b]: 'a b' is not a service name: use up to 63 "
		     "letters, digits, '_', '.' or '-', starting with a letter or digit");
	expect_error("[service.a]\nimage = a\n[service.a:b]\nimage = b\n",
		     "hutch.ini:3: '[service.a:b]': a section name cannot hold ']' or ':'");
	expect_error("[service.a]\nimage = a\nx:y = b\n",
		     "hutch.ini:3: x:y: a key cannot hold ':'");
	char *long_name = xasprintf("[service.%0*d]\nimage = a\n", 64, 0);
	expect_error(long_name,
		     "hutch.ini:1: [service.00000000000000000000000000000000000000000"
		     "00000000000000000000000]: '00000000000000000000000000000000000000"
		     "00000000000000000000000000' is not a service name: use up to 63 "
		     "letters, digits, '_', '.' or '-', starting with a letter or digit");
	free(long_name);
	expect_error("[stack]\nname = my shop\n[service.a]\nimage = a\n",
		     "hutch.ini:2: name: 'my shop' is not a stack name: use up to 63 letters, "
		     "digits, '_', '.' or '-', starting with a letter or digit");
	expect_error("[service.a]\nimage = a\nname = b\n",
		     "hutch.ini:3: name: a service's name is in its section header, "
		     "[service.NAME]");

	/* case is kept: Web and web are different containers, but one section
	 * to iniparser */
	struct hutch_stack *s = load_ok("[stack]\nname = Shop.1\n[service.Web_2.x]\nimage = a\n");
	assert_string_equal(s->name, "Shop.1");
	assert_string_equal(s->services[0].name, "Web_2.x");
	hutch_stack_free(s);

	/* no [stack] name: the directory's, made valid as compose makes one */
	assert_int_equal(mkdir("My Shop!", 0755), 0);
	put("My Shop!/hutch.ini", "[service.a]\nimage = a\n");
	struct hutch_err *err = NULL;
	assert_int_equal(stack_load_env("My Shop!/hutch.ini", no_env, &s, &err), 0);
	assert_string_equal(s->name, "myshop");
	assert_string_equal(s->dir, "My Shop!");
	hutch_stack_free(s);
	assert_int_equal(mkdir("__", 0755), 0);
	put("__/hutch.ini", "[service.a]\nimage = a\n");
	assert_int_equal(stack_load_env("__/hutch.ini", no_env, &s, &err), -1);
	char *want = xasprintf("__/hutch.ini: no stack name: the directory's name ('%s/__') has "
			       "no letter or digit to make one of: set name = NAME in [stack]",
			       tmpdir);
	assert_string_equal(err->msg, want);
	free(want);
	hutch_err_free(&err);
}

/* ---- the INI layer: what iniparser would silently get wrong ---------------- */

static void test_ini_hazards(void **state)
{
	struct hutch_stack *s = NULL;
	expect_error("[service.a]\nimage = a\ncommand = sh -c \"echo a; echo b\"\n",
		     "hutch.ini:3: command: a ';' inside a value starts a comment and the rest "
		     "would be dropped: put the whole value in quotes (\"...\" or '...')");
	expect_error("[service.a]\nimage = a\nenv = PASS=abc#123\n",
		     "hutch.ini:3: env: a '#' inside a value starts a comment and the rest would "
		     "be dropped: put the whole value in quotes (\"...\" or '...')");
	expect_error("[service.a]\nimage = a\ncommand = \"sh\" -c x\n",
		     "hutch.ini:3: command: text after the closing quote (\") would be dropped: "
		     "quote the whole value or none of it");
	expect_error("[service.a]\nimage = a\ncommand = 'abc\n",
		     "hutch.ini:3: command: the value's opening quote (') is not closed on its "
		     "line");
	expect_error("[service.a]\nimage = a\ncommand = sh -c \"echo a ; echo b\"\n",
		     "hutch.ini:3: command: a double quote (\") is not closed (a ';' or '#' after "
		     "a blank starts a comment: put the whole value in quotes to keep it)");
	expect_error("[service.a] ; web\nimage = a\n",
		     "hutch.ini:1: '[service.a] ; web': a section header is [NAME] alone on its "
		     "line (no comment after it)");
	expect_error("[service.a]\nimage = a\njust words\n",
		     "hutch.ini:3: 'just words': expected KEY = VALUE, a [section] or a comment "
		     "(; or #)");
	expect_error("[service.a]\nimage = a\n= x\n",
		     "hutch.ini:3: '= x': expected KEY = VALUE, a [section] or a comment (; or #)");
	expect_error("image = a\n[service.a]\nimage = a\n",
		     "hutch.ini:1: image: a key before any section: put it under [stack] or a "
		     "[service.NAME]");
	expect_error("[]\n[service.a]\nimage = a\n",
		     "hutch.ini:1: '[]': a section needs a name: [stack] or [service.NAME]");
	expect_error("[service.a]\nimage = a \\",
		     "hutch.ini: 2 errors:\n"
		     "hutch.ini:1: [service.a]: no image: add image = NAME (like image = busybox), "
		     "or build = DIR\n"
		     "hutch.ini:2: the last line ends with '\\', a continuation of nothing: remove "
		     "the '\\'");
	static const char nul[] = "[service.a]\nimage = a\0b\n";
	put_n("hutch.ini", nul, sizeof(nul) - 1);
	struct hutch_err *err = NULL;
	assert_int_equal(stack_load_env("hutch.ini", no_env, &s, &err), -1);
	assert_string_equal(err->msg, "hutch.ini:2: a NUL byte: this is not a text file");
	hutch_err_free(&err);
	char *long_line = xasprintf("[service.a]\nimage = a\ncommand = %01000d\n", 0);
	expect_error(long_line, "hutch.ini:3: the line is longer than 1000 bytes, the most the INI "
				"reader takes: move long lists to an env_file, or shorten it");
	free(long_line);

	/* what works: quotes around the whole value keep ';' and '#', a ';' or
	 * '#' after a blank is a comment, a trailing '\' continues the line
	 * (the next line's leading blanks kept), CRLF line ends */
	s = load_ok("[service.a]\r\n"
		    "image = a ; comment\r\n"
		    "command = 'sh -c \"echo a; echo #b\"'  # comment\r\n"
		    "entrypoint = \"x ';' y\"\n"
		    "env = A=1 \\\n"
		    "  B=2\\\n"
		    "C=3\n"
		    "; comment line\n"
		    "# another\n"
		    "user = \"\"\n");
	const struct stack_service *a = &s->services[0];
	assert_string_equal(a->image, "a");
	assert_words(a->command, a->n_command, WORDS("sh", "-c", "echo a; echo #b"));
	assert_words(a->entrypoint, a->n_entrypoint, WORDS("x", ";", "y"));
	assert_words(a->env, a->n_env, WORDS("A=1", "B=2C=3"));
	assert_string_equal(stack_service_option(a, "user")->text, "");
	assert_int_equal(stack_service_option(a, "user")->line, 10);
	hutch_stack_free(s);
}

/* The line scan reads every file it takes as iniparser does: same keys, same
 * values, nothing more in iniparser's dictionary. */
static void test_scan_agrees_with_iniparser(void **state)
{
	static const char *const agree[] = {
	    "",
	    "[a]\n",
	    "[a]\nk = v\n",
	    "[ A ]\n K = v ; c\nx=\ny = # c\nz ==\n",
	    "[a]\nq = \"a;b\" ; c\nr = 'x#y'\ns = \"\"\nt = ''\nu = \"\" x\n",
	    "[a]\nk = a \\\n  b\\\nc\n\\\nl = 1\n",
	    "[a]\nk=v\ny", /* a last line of one byte: skipped by both */
	    "[a]\r\nk = v\r\n\r\n[b]\nk = w\n",
	    "[a]\nk = 1\nk = 2\n", /* the last one, as iniparser keeps */
	};
	for (size_t i = 0; i < ARRAY_SIZE(agree); i++)
		if (stack_ini_disagreements(agree[i], strlen(agree[i])) != 0)
			fail_msg("disagree on: %s", agree[i]);
	static const char *const refused[] = {
	    "k = v\n", "[a]\nk = \"x\" y\n", "[a]\nk = x;y\n", "[a] ; c\n", "[a]\nk = v\\",
	};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		assert_int_equal(stack_ini_disagreements(refused[i], strlen(refused[i])), -1);
}

static void test_duplicates(void **state)
{
	expect_error("[service.a]\nimage = a\nimage = b\n",
		     "hutch.ini:3: image: set twice in [service.a], here and at line 2 (the INI "
		     "reader would keep the last silently): keep one");
	expect_error("[service.a]\nimage = a\nImage = b\n",
		     "hutch.ini: 2 errors:\n"
		     "hutch.ini:3: Image: set twice in [service.a], here and at line 2 (the INI "
		     "reader would keep the last silently): keep one\n"
		     "hutch.ini:3: Image: unknown key (did you mean 'image'?)");
	expect_error("[service.a]\nimage = a\n[service.b]\nimage = b\n[service.a]\nuser = x\n",
		     "hutch.ini:5: [service.a]: this section is already at line 1: keep a "
		     "section's keys together");
	expect_error("[service.web]\nimage = a\n[service.Web]\nimage = b\n",
		     "hutch.ini: 2 errors:\n"
		     "hutch.ini:3: [service.Web]: the same section as [service.web] at line 1 "
		     "(section names are not case-sensitive): rename one\n"
		     "hutch.ini:4: image: set twice in [service.web], here and at line 2 (the INI "
		     "reader would keep the last silently): keep one");
	expect_error("[service.a]\nimage = a\n[service.b]\nimage = b\ndepends_on = a a:healthy\n",
		     "hutch.ini:5: depends_on: 'a:healthy' is listed twice");
}

static void test_unknown_keys_and_sections(void **state)
{
	static const struct {
		const char *key, *want;
	} cases[] = {
	    {"imag", "hutch.ini:3: imag: unknown key (did you mean 'image'?)"},
	    {"health_intervall", "hutch.ini:3: health_intervall: unknown key (did you mean "
				 "'health_interval'?)"},
	    {"cap-add", "hutch.ini:3: cap-add: unknown key (did you mean 'cap_add'?)"},
	    {"depends", "hutch.ini:3: depends: unknown key (did you mean 'depends_on'?)"},
	    {"environment", "hutch.ini:3: environment: unknown key (docs/stack-file.md lists a "
			    "service's keys)"},
	    {"secrets",
	     "hutch.ini:3: secrets: unknown key (docs/stack-file.md lists a service's keys)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = xasprintf("[service.a]\nimage = a\n%s = x\n", cases[i].key);
		expect_error(text, cases[i].want);
		free(text);
	}
	expect_error("[stack]\nnmae = x\n[service.a]\nimage = a\n",
		     "hutch.ini:2: nmae: unknown key in [stack] (did you mean 'name'?)");
	expect_error(
	    "[stack]\nversion = 3\n[service.a]\nimage = a\n",
	    "hutch.ini:2: version: unknown key in [stack] (it has name, subnet and dns_upstream)");
	expect_error("[stack]\nimage = x\n[service.a]\nimage = a\n",
		     "hutch.ini:2: image: this key belongs in a [service.NAME] section, not in "
		     "[stack]");
	/* an unknown key says so even when its value would not interpolate */
	expect_error("[service.a]\nimage = a\nfoo = ${\n",
		     "hutch.ini:3: foo: unknown key (docs/stack-file.md lists a service's keys)");
	expect_error("[services.db]\nimage = a\n",
		     "hutch.ini:1: [services.db]: unknown section (a service's is [service.NAME]: "
		     "did you mean [service.db]?)");
	expect_error("[service]\nimage = a\n",
		     "hutch.ini:1: [service]: unknown section (a service's is [service.NAME])");
	expect_error("[stak]\n[service.a]\nimage = a\n",
		     "hutch.ini:1: [stak]: unknown section (did you mean [stack]?)");
	expect_error("[Stack]\n[service.a]\nimage = a\n",
		     "hutch.ini:1: [Stack]: unknown section (did you mean [stack]?)");
	expect_error("[volumes]\n[service.a]\nimage = a\n",
		     "hutch.ini:1: [volumes]: unknown section: a stack file has [stack], "
		     "[service.NAME] and [network.NAME] sections");
}

/* ---- several errors: all of them, by line ---------------------------------- */

static void test_many_errors(void **state)
{
	expect_error("[service.b]\n"
		     "image = b\n"
		     "depends_on = a\n"
		     "replicas = x\n"
		     "[service.a]\n"
		     "imag = a\n"
		     "health_tcp = 0\n"
		     "depends_on = c b\n",
		     "hutch.ini: 6 errors:\n"
		     "hutch.ini:4: replicas: 'x' is not a number from 1 to 1000\n"
		     "hutch.ini:5: [service.a]: no image: add image = NAME (like image = busybox), "
		     "or build = DIR\n"
		     "hutch.ini:6: imag: unknown key (did you mean 'image'?)\n"
		     "hutch.ini:7: health_tcp: '0' is not a port: use 1 to 65535\n"
		     "hutch.ini:8: depends_on: no service 'c' in this file\n"
		     "hutch.ini:8: depends_on: a dependency cycle: b -> a -> b (no service can "
		     "start first)");
	/* past 50, the rest are counted */
	char *text = xstrdup("[service.a]\nimage = a\n");
	for (int i = 0; i < 60; i++) {
		char *more = xasprintf("%sbad%d = x\n", text, i);
		free(text);
		text = more;
	}
	put("hutch.ini", text);
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(stack_load_env("hutch.ini", no_env, &s, &err), -1);
	assert_non_null(strstr(err->msg, "hutch.ini: 60 errors:\nhutch.ini:3: bad0: unknown key"));
	assert_non_null(strstr(err->msg, "\nhutch.ini:52: bad49: unknown key"));
	assert_null(strstr(err->msg, "bad50"));
	const char *tail = "\n... and 10 more";
	assert_string_equal(err->msg + strlen(err->msg) - strlen(tail), tail);
	hutch_err_free(&err);
	free(text);
}

/* ---- interpolation ------------------------------------------------------- */

static void test_interpolation(void **state)
{
	char *envp[] = {"SET=value", "EMPTY=", "TAG=16", NULL};
	struct stack_env env = {.envp = envp};
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"plain", "plain"},
	    {"${SET}", "value"},
	    {"$SET/x", "value/x"},
	    {"a${SET}b", "avalueb"},
	    {"${UNSET}", ""},
	    {"${UNSET:-def}", "def"},
	    {"${EMPTY:-def}", "def"},
	    {"${EMPTY-def}", ""},
	    {"${UNSET-def}", "def"},
	    {"${SET:-def}", "value"},
	    {"${SET:+alt}", "alt"},
	    {"${EMPTY:+alt}", ""},
	    {"${EMPTY+alt}", "alt"},
	    {"${UNSET+alt}", ""},
	    {"${SET:?msg}", "value"},
	    {"${EMPTY?msg}", ""},
	    {"$$", "$"},
	    {"$${SET}", "${SET}"},
	    {"$$SET", "$SET"},
	    {"${UNSET:-${TAG:-x}}", "16"},
	    {"${UNSET:-a b}", "a b"},
	    {"${UNSET:-{x}", "{x"},
	    {"pg:${TAG}-$TAG", "pg:16-16"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char *out = NULL, *why = NULL, **unset = NULL;
		size_t n_unset = 0;
		if (stack_interpolate(&env, ok[i].in, &out, &why, &unset, &n_unset) < 0)
			fail_msg("'%s': %s", ok[i].in, why);
		if (strcmp(out, ok[i].out))
			fail_msg("'%s' gave '%s', want '%s'", ok[i].in, out, ok[i].out);
		free(out);
		strv_free(unset, n_unset);
	}
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"${SET", "'${SET': '${' without its closing '}'"},
	    {"${}", "'${}': a variable name is letters, digits and '_', not starting with a digit"},
	    {"${1A}", "'${1A}': a variable name is letters, digits and '_', not starting with a "
		      "digit"},
	    {"${A B}", "'${A B}': after the name comes '}', ':-', '-', ':?', '?', ':+' or '+'"},
	    {"${A:x}", "'${A:x}': after the name comes '}', ':-', '-', ':?', '?', ':+' or '+'"},
	    {"$", "'$': a '$' starts a variable ($NAME or ${NAME}); write $$ for a '$' of its own"},
	    {"cost $5", "'$5': a '$' starts a variable ($NAME or ${NAME}); write $$ for a '$' of "
			"its own"},
	    {"${UNSET:?set it in .env}", "required variable UNSET is unset or empty: set it in "
					 ".env"},
	    {"${EMPTY:?}", "required variable EMPTY is unset or empty"},
	    {"${UNSET?no ${SET}}", "required variable UNSET is unset: no value"},
	    {"${UNSET:-${A:-${B:-${C:-${D:-${E:-${F:-${G:-${H:-${I}}}}}}}}}}",
	     "'${' nested more than 8 deep"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *out = NULL, *why = NULL, **unset = NULL;
		size_t n_unset = 0;
		if (stack_interpolate(&env, bad[i].in, &out, &why, &unset, &n_unset) == 0)
			fail_msg("'%s' gave '%s'", bad[i].in, out);
		assert_null(out);
		if (strcmp(why, bad[i].why))
			fail_msg("'%s': got %s, want %s", bad[i].in, why, bad[i].why);
		free(why);
		strv_free(unset, n_unset);
	}
	/* unset names are listed once each, for the warnings */
	char *out = NULL, *why = NULL, **unset = NULL;
	size_t n_unset = 0;
	assert_int_equal(
	    stack_interpolate(&env, "$A ${B} ${A} ${C:-x} $SET", &out, &why, &unset, &n_unset), 0);
	assert_string_equal(out, "   x value");
	assert_words(unset, n_unset, WORDS("A", "B"));
	free(out);
	strv_free(unset, n_unset);

	/* in a file: errors with file:line and key, warnings for unset names */
	expect_error_env("[service.a]\nimage = ${REGISTRY:?set REGISTRY first}/a\n", envp,
			 "hutch.ini:2: image: required variable REGISTRY is unset or empty: set "
			 "REGISTRY first");
	expect_error_env("[service.a]\nimage = a\nuser = $\n", envp,
			 "hutch.ini:3: user: '$': a '$' starts a variable ($NAME or ${NAME}); "
			 "write $$ for a '$' of its own");
	struct hutch_stack *s =
	    load_ok_env("[stack]\nname = s${TAG}\n[service.a]\nimage = a${NOPE}\n"
			"command = echo $$HOME ${TAG:+\"a b\"}\n",
			envp);
	assert_string_equal(s->name, "s16");
	assert_string_equal(s->services[0].image, "a");
	/* interpolation first, then words: quotes from a value still group */
	assert_words(s->services[0].command, s->services[0].n_command,
		     WORDS("echo", "$HOME", "a b"));
	size_t n_warn = 0;
	const char *const *warn = hutch_stack_warnings(s, &n_warn);
	assert_int_equal(n_warn, 1);
	assert_string_equal(
	    warn[0], "hutch.ini:4: image: variable NOPE is not set: read as an empty string");
	hutch_stack_free(s);
}

static void test_dotenv(void **state)
{
	/* the env file format, for .env and env_file alike */
	static const char text[] = "# the stack's variables\n"
				   "TAG=from-dotenv\n"
				   "  SPACED = 'single #quoted' \n"
				   "export QUOTED=\"a\\tb\\n\\\"c\\\" \\q $x\" # comment\n"
				   "PLAIN=x y # comment\n"
				   "HASH=x#y\n"
				   "EMPTY=\n"
				   "DOTTED.NAME-1=v\r\n"
				   "\r\n"
				   "TAG=again";
	struct stack_diag diag = {0};
	char **vars = NULL;
	size_t n = 0;
	stack_parse_env_file(text, sizeof(text) - 1, "x.env", 0, &diag, &vars, &n);
	assert_int_equal(diag.n, 0);
	assert_words(vars, n,
		     WORDS("TAG=from-dotenv", "SPACED=single #quoted", "QUOTED=a\tb\n\"c\" \\q $x",
			   "PLAIN=x y", "HASH=x#y", "EMPTY=", "DOTTED.NAME-1=v", "TAG=again"));
	strv_free(vars, n);

	put(".env", "TAG=from-dotenv\nONLY=dot\nTAG=last\n");
	char *envp[] = {"TAG=from-env", NULL};
	struct hutch_stack *s =
	    load_ok_env("[service.a]\nimage = a:${TAG}\nenv = O=${ONLY}\n", envp);
	/* the environment wins over .env, as compose; .env is for interpolation
	 * only, not a service's environment */
	assert_string_equal(s->services[0].image, "a:from-env");
	assert_words(s->services[0].env, s->services[0].n_env, WORDS("O=dot"));
	hutch_stack_free(s);
	s = load_ok("[service.a]\nimage = a:${TAG}\n");
	assert_string_equal(s->services[0].image, "a:last");
	hutch_stack_free(s);

	put(".env", "OK=1\n1BAD=x\nNOEQ\nQ=\"open\nR='a' b\n");
	expect_error("[service.a]\nimage = a\n",
		     "hutch.ini: 4 errors:\n"
		     ".env:2: '1BAD=x': expected NAME=VALUE (a name is letters, digits, '_', "
		     "'.' or '-', not starting with a digit)\n"
		     ".env:3: 'NOEQ': expected NAME=VALUE (a name is letters, digits, '_', '.' "
		     "or '-', not starting with a digit)\n"
		     ".env:4: Q: a double quote (\") is not closed on its line\n"
		     ".env:5: R: text after the closing quote: quote the whole value");
	static const char nul[] = "A=1\nB=\0\n";
	put_n(".env", nul, sizeof(nul) - 1);
	expect_error("[service.a]\nimage = a\n", ".env:2: a NUL byte: this is not a text file");
	unlink(".env");
}

static void test_env_file(void **state)
{
	assert_int_equal(mkdir("conf", 0755), 0);
	put("conf/one.env", "A=1\nB=from-one\n");
	put("conf/two.env", "B=from-two\nC=3\n");
	assert_int_equal(mkdir("sub", 0755), 0);
	put("sub/hutch.ini", "[service.a]\nimage = a\nenv = C=env\n"
			     "env_file = ../conf/one.env \"../conf/two.env\"\n");
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(stack_load_env("sub/hutch.ini", no_env, &s, &err), 0);
	/* relative to the stack file's directory; later files over earlier, env
	 * over all */
	assert_words(s->services[0].env, s->services[0].n_env, WORDS("A=1", "B=from-two", "C=env"));
	hutch_stack_free(s);

	expect_error("[service.a]\nimage = a\nenv_file = missing.env\n",
		     "hutch.ini:3: env_file: cannot open missing.env: No such file or "
		     "directory");
	expect_error("[service.a]\nimage = a\nenv_file = conf\n",
		     "hutch.ini:3: env_file: conf is not a regular file");
	put("bad.env", "GOOD=1\n\nnot a line\n");
	expect_error("[service.a]\nimage = a\nenv_file = bad.env\nreplicas = 0\n",
		     "hutch.ini: 2 errors:\n"
		     "bad.env:3: 'not a line': expected NAME=VALUE (a name is letters, digits, "
		     "'_', '.' or '-', not starting with a digit)\n"
		     "hutch.ini:4: replicas: '0' is not a number from 1 to 1000");
}

/* ---- files ---------------------------------------------------------------- */

static void test_files(void **state)
{
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(stack_load_env("nothere.ini", no_env, &s, &err), -1);
	assert_string_equal(err->msg, "cannot open nothere.ini");
	assert_int_equal(err->errno_, ENOENT);
	hutch_err_free(&err);

	/* a stack file has a size cap: 256 KiB */
	char *big = xcalloc(1, STACK_FILE_MAX + 2);
	memset(big, '#', STACK_FILE_MAX + 1);
	big[0] = '\n';
	put("big.ini", big);
	assert_int_equal(stack_load_env("big.ini", no_env, &s, &err), -1);
	assert_string_equal(err->msg,
			    "big.ini is larger than 256 KiB: that is not a stack or env file");
	hutch_err_free(&err);
	/* right at the cap it is read */
	memcpy(big + STACK_FILE_MAX - 32, "\n[service.a]\nimage = a\n", 23);
	big[STACK_FILE_MAX] = '\0';
	for (size_t i = 1; i < STACK_FILE_MAX - 32; i += 80)
		big[i] = '\n';
	put("big.ini", big);
	assert_int_equal(stack_load_env("big.ini", no_env, &s, &err), 0);
	hutch_stack_free(s);
	free(big);

	assert_int_equal(stack_load_env("/dev/null", no_env, &s, &err), -1);
	assert_string_equal(err->msg, "/dev/null is not a regular file");
	hutch_err_free(&err);

	/* the public call reads the process's environment */
	setenv("HUTCH_TEST_STACK_IMAGE", "from-environ", 1);
	put("pub.ini", "[service.a]\nimage = ${HUTCH_TEST_STACK_IMAGE}\n");
	assert_int_equal(hutch_stack_load("pub.ini", &s, &err), 0);
	assert_string_equal(s->services[0].image, "from-environ");
	assert_non_null(hutch_stack_name(s));
	hutch_stack_free(s);
	unsetenv("HUTCH_TEST_STACK_IMAGE");
}

/* ---- shell words ------------------------------------------------------------ */

static void test_shell_words(void **state)
{
	static const struct {
		const char *in;
		const char *words[5];
		size_t n;
	} ok[] = {
	    {"", {0}, 0},
	    {"  \t ", {0}, 0},
	    {"a", {"a"}, 1},
	    {" a  b\tc ", {"a", "b", "c"}, 3},
	    {"'a b' c", {"a b", "c"}, 2},
	    {"\"a b\" c", {"a b", "c"}, 2},
	    {"a'b c'd", {"ab cd"}, 1},
	    {"''", {""}, 1},
	    {"\"\" x", {"", "x"}, 2},
	    {"a\\ b", {"a b"}, 1},
	    {"\\'a\\\"", {"'a\""}, 1},
	    {"'it''s'", {"its"}, 1},
	    {"'a\\b'", {"a\\b"}, 1},
	    {"\"a\\\"b\\\\c\\$d\\e\"", {"a\"b\\c$d\\e"}, 1},
	    {"\"a\\e\"", {"a\\e"}, 1},
	    {"$HOME *.c ~", {"$HOME", "*.c", "~"}, 3},
	    {"sh -c 'echo \"$1\"' --", {"sh", "-c", "echo \"$1\"", "--"}, 4},
	    {"a\\\nb", {"ab"}, 1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char **words = NULL;
		size_t n = 0;
		const char *why = NULL;
		if (shell_words(ok[i].in, &words, &n, &why) < 0)
			fail_msg("'%s': %s", ok[i].in, why);
		assert_words(words, n, ok[i].words, ok[i].n);
		strv_free(words, n);
	}
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"'abc", "a single quote (') is not closed"},
	    {"a \"b", "a double quote (\") is not closed"},
	    {"\"a\\\"", "a double quote (\") is not closed"},
	    {"a\\", "a backslash at the end: nothing follows it to escape"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char **words = NULL;
		size_t n = 0;
		const char *why = NULL;
		assert_int_equal(shell_words(bad[i].in, &words, &n, &why), -1);
		assert_null(words);
		assert_string_equal(why, bad[i].why);
	}
	expect_error("[service.a]\nimage = a\ncommand = echo \"hi\n",
		     "hutch.ini:3: command: a double quote (\") is not closed");
	expect_error("[service.a]\nimage = a\ncommand = echo \"hi\ncap_add = 'x\n",
		     "hutch.ini: 2 errors:\n"
		     "hutch.ini:3: command: a double quote (\") is not closed\n"
		     "hutch.ini:4: cap_add: the value's opening quote (') is not closed on its "
		     "line");
	expect_error("[service.a]\nimage = a\nvolumes = a:/a 'b:/b\n",
		     "hutch.ini:3: volumes: a single quote (') is not closed");
}

/* ---- durations ------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *in;
		int64_t ns;
	} ok[] = {
	    {"0", 0},
	    {"0s", 0},
	    {"5s", 5000000000LL},
	    {"500ms", 500000000LL},
	    {"1m30s", 90000000000LL},
	    {"2h", 7200000000000LL},
	    {"1.5s", 1500000000LL},
	    {".5s", 500000000LL},
	    {"1h1m1s1ms1us1ns", 3661001001001LL},
	    {"10\xc2\xb5s", 10000},
	    {"10\xce\xbcs", 10000},
	    {"2562047h", 2562047LL * 3600 * 1000000000LL},
	    {"1.000000000000000000001s", 1000000000LL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		int64_t ns = -1;
		if (parse_duration(ok[i].in, &ns) < 0)
			fail_msg("'%s' refused", ok[i].in);
		if (ns != ok[i].ns)
			fail_msg("'%s' = %lld, want %lld", ok[i].in, (long long)ns,
				 (long long)ok[i].ns);
	}
	static const char *const bad[] = {
	    "",	    "s",    "5",     "1m30", "-1s", "+1s",	"1 s",	       " 1s",  "1s ", "1d",
	    "1.s.", "1e3s", "0x10s", "5S",   "1.5", "2562048h", "9223372037s", "..5s", "inf",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t ns = 0;
		if (parse_duration(bad[i], &ns) == 0)
			fail_msg("'%s' accepted as %lld", bad[i], (long long)ns);
	}
}

/* ---- the dependency graph --------------------------------------------------- */

static void test_graph(void **state)
{
	struct hutch_stack *s =
	    load_ok("[service.web]\nimage = a\ndepends_on = api cache\n"
		    "[service.api]\nimage = a\ndepends_on = db migrate:completed\n"
		    "[service.cache]\nimage = a\n"
		    "[service.db]\nimage = a\n"
		    "[service.migrate]\nimage = a\ndepends_on = db\n"
		    "[service.lone]\nimage = a\n");
	/* dependencies first, otherwise the file's order */
	const char *want[] = {"db", "migrate", "api", "cache", "web", "lone"};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(s->services[s->order[i]].name, want[i]);

	size_t *need = NULL, n = 0;
	const char *up_api[] = {"api"};
	assert_int_equal(stack_graph_needed(s, up_api, 1, &need, &n, NULL), 0);
	const char *want_api[] = {"db", "migrate", "api"};
	assert_int_equal(n, ARRAY_SIZE(want_api));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(s->services[need[i]].name, want_api[i]);
	free(need);

	const char *up_two[] = {"lone", "cache", "lone"};
	assert_int_equal(stack_graph_needed(s, up_two, 3, &need, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(s->services[need[0]].name, "cache");
	assert_string_equal(s->services[need[1]].name, "lone");
	free(need);

	struct hutch_err *err = NULL;
	const char *up_bad[] = {"cache", "nope"};
	assert_int_equal(stack_graph_needed(s, up_bad, 2, &need, &n, &err), -1);
	char *msg = xasprintf("stack %s has no service 'nope' (see hutch.ini)", s->name);
	assert_string_equal(err->msg, msg);
	free(msg);
	hutch_err_free(&err);
	hutch_stack_free(s);

	/* a chain longer than any recursion would like */
	char *text = xstrdup("");
	for (int i = 0; i < 3000; i++) {
		char *more =
		    xasprintf("%s[service.s%d]\nimage=x\ndepends_on=s%d\n", text, i, i + 1);
		free(text);
		text = more;
	}
	char *full = xasprintf("%s[service.s3000]\nimage=x\n", text);
	s = load_ok(full);
	assert_string_equal(s->services[s->order[0]].name, "s3000");
	assert_string_equal(s->services[s->order[3000]].name, "s0");
	hutch_stack_free(s);
	free(full);
	free(text);
}

static void test_cycles(void **state)
{
	expect_error("[service.a]\nimage = a\ndepends_on = a\n",
		     "hutch.ini:3: depends_on: a dependency cycle: a -> a (no service can start "
		     "first)");
	expect_error("[service.a]\nimage = a\ndepends_on = b\n"
		     "[service.b]\nimage = a\ndepends_on = c\n"
		     "[service.c]\nimage = a\ndepends_on = a\n",
		     "hutch.ini:9: depends_on: a dependency cycle: a -> b -> c -> a (no service "
		     "can start first)");
	/* two cycles, each named; the service outside them is no part of it */
	expect_error("[service.x]\nimage = a\ndepends_on = a\n"
		     "[service.a]\nimage = a\ndepends_on = b:healthy\n"
		     "[service.b]\nimage = a\ndepends_on = a\nhealth_tcp = 1\n"
		     "[service.c]\nimage = a\ndepends_on = d:completed\n"
		     "[service.d]\nimage = a\ndepends_on = c\n",
		     "hutch.ini: 2 errors:\n"
		     "hutch.ini:9: depends_on: a dependency cycle: a -> b -> a (no service can "
		     "start first)\n"
		     "hutch.ini:16: depends_on: a dependency cycle: c -> d -> c (no service can "
		     "start first)");
	expect_error("[service.a]\nimage = a\ndepends_on = db\n[service.db]\nimage = b\n"
		     "depends_on = dbb:ready\n",
		     "hutch.ini:6: depends_on: 'dbb:ready': the condition after ':' is started "
		     "(the default), healthy or completed");
	expect_error("[service.a]\nimage = a\ndepends_on = dbb\n[service.db]\nimage = b\n",
		     "hutch.ini:3: depends_on: no service 'dbb' in this file (did you mean 'db'?)");
	expect_error("[service.a]\nimage = a\ndepends_on = zzzzzz\n",
		     "hutch.ini:3: depends_on: no service 'zzzzzz' in this file");
	/* healthy needs a check or notify */
	struct hutch_stack *s = load_ok("[service.a]\nimage = a\ndepends_on = b:healthy\n"
					"[service.b]\nimage = b\nnotify = true\n");
	hutch_stack_free(s);
}

/* build = CONTEXT: the image is named STACK-SERVICE (lower case) unless image
 * = says; the keys that go with it need it. */
static void test_build_keys(void **state)
{
	struct hutch_stack *s = load_ok("[stack]\nname = St\n[service.api]\nbuild = ./api\n"
					"build_args = A=1 'B=two words' C\ndockerfile = Other\n"
					"target = prod\n[service.db]\nimage = bb\nbuild = /abs/db\n"
					"[service.plain]\nimage = bb\n");
	const struct stack_service *api = svc(s, "api"), *db = svc(s, "db");
	assert_string_equal(api->image, "st-api");
	assert_string_equal(api->build.context, "./api");
	assert_string_equal(api->build.dockerfile, "Other");
	assert_string_equal(api->build.target, "prod");
	assert_int_equal(api->build.n_args, 3);
	assert_string_equal(api->build.args[1], "B=two words");
	assert_string_equal(api->build.args[2], "C");
	assert_string_equal(db->image, "bb");
	assert_string_equal(db->build.context, "/abs/db");
	assert_null(svc(s, "plain")->build.context);
	hutch_stack_free(s);
	expect_error("[service.a]\nimage = bb\ntarget = x\n",
		     "hutch.ini:3: target: goes with build = CONTEXT, which a lacks");
	expect_error("[service.a]\nbuild =\n",
		     "hutch.ini:2: build: empty: give the build context (a directory)");
	expect_error("[service.a]\nbuild = x\nbuild_args = =1\n",
		     "hutch.ini:3: build_args: '=1': expected NAME=VALUE (or NAME alone, from "
		     "the environment)");
}

/* ---- networks ------------------------------------------------------------ */

static void test_networks(void **state)
{
	struct hutch_stack *s = load_ok("[stack]\nname = shop\nsubnet = 10.89.40.0/24\n"
					"dns_upstream = 192.168.1.1 10.0.0.2:5353\n"
					"[network.back]\ninternal = yes\nsubnet = 10.89.77.0/24\n"
					"[network.front]\n"
					"[service.web]\nimage = a\nnetworks = front:www,shop back\n"
					"aliases = site\nports = 8080:80 127.0.0.1:53:53/udp\n"
					"[service.db]\nimage = a\nnetwork = none\n");
	assert_string_equal(s->subnet, "10.89.40.0/24");
	assert_int_equal(s->subnet_line, 3);
	const char *up[] = {"192.168.1.1", "10.0.0.2:5353"};
	assert_words(s->dns_upstream, s->n_dns_upstream, up, 2);
	assert_int_equal(s->n_networks, 2);
	assert_string_equal(s->networks[0].name, "back");
	assert_true(s->networks[0].internal);
	assert_string_equal(s->networks[0].subnet, "10.89.77.0/24");
	assert_int_equal(s->networks[0].line, 5);
	assert_string_equal(s->networks[1].name, "front");
	assert_false(s->networks[1].internal);
	assert_null(s->networks[1].subnet);
	const struct stack_option *o = stack_service_option(svc(s, "web"), "networks");
	const char *nets[] = {"front:www,shop", "back"};
	assert_words(o->words, o->n_words, nets, 2);
	o = stack_service_option(svc(s, "web"), "aliases");
	const char *al[] = {"site"};
	assert_words(o->words, o->n_words, al, 1);
	hutch_stack_free(s);

	expect_error("[service.a]\nimage = a\nnetworks = bak\n[network.back]\n",
		     "hutch.ini:3: networks: service a: no network 'bak' in this file (did you "
		     "mean 'back'?): declare it as a [network.bak] section");
	expect_error("[network.x]\ninternal = maybe\n[service.a]\nimage = a\n",
		     "hutch.ini:2: internal: 'maybe' is not a boolean: use true or false");
	expect_error("[network.x]\nsubnet = 10.0.0.1/24\n[service.a]\nimage = a\n",
		     "hutch.ini:2: subnet: '10.0.0.1/24' is not a subnet hutch can use: give an "
		     "IPv4 network from /8 to /30 with its host bits zero, like 10.89.7.0/24");
	expect_error("[network.x]\nsubnet = 10.0.0.0/31\n[service.a]\nimage = a\n",
		     "hutch.ini:2: subnet: '10.0.0.0/31' is not a subnet hutch can use: give an "
		     "IPv4 network from /8 to /30 with its host bits zero, like 10.89.7.0/24");
	expect_error(
	    "[network.x]\ncolour = red\n[service.a]\nimage = a\n",
	    "hutch.ini:2: colour: unknown key in [network.x] (it has internal, subnet, ipv6 and subnet6)");
	expect_error("[network.-x]\n[service.a]\nimage = a\n",
		     "hutch.ini:1: [network.-x]: '-x' is not a network name: use up to 63 letters, "
		     "digits, '_', '.' or '-', starting with a letter or digit");
	expect_error(
	    "[stack]\nsubnet = 10.89.1.0/24\n[network.default]\nsubnet = "
	    "10.89.2.0/24\n[service.a]\nimage = a\n",
	    "hutch.ini:4: subnet: the default network's subnet is also given in [stack] at "
	    "line 2: keep one");
	expect_error(
	    "[stack]\ndns_upstream = resolver\n[service.a]\nimage = a\n",
	    "hutch.ini:2: dns_upstream: 'resolver' is not a resolver's address: give IP or "
	    "IP:PORT (IPv4), like 192.168.1.1 or 10.0.0.2:5353");
	expect_error("[service.a]\nimage = a\nnetwork = none\nports = 80\n",
		     "hutch.ini:4: ports: service a has network = none (line 3), so it is on no "
		     "network of the stack: remove one of the two");
	expect_error("[service.a]\nimage = a\nnetwork = host\nnetworks = default\n",
		     "hutch.ini:4: networks: service a has network = host (line 3), so it is on no "
		     "network of the stack: remove one of the two");
	expect_error(
	    "[service.a]\nimage = a\naliases = -x\n",
	    "hutch.ini:3: aliases: '-x': an alias is a DNS name: up to 63 letters, digits, "
	    "'_', '.' or '-', starting with a letter or digit");
	/* the host's network: its ports are the host's, accepted */
	s = load_ok("[service.a]\nimage = a\nnetwork = host\nports = 80\n");
	hutch_stack_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_policies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_health_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ini_hazards, setup, teardown),
	    cmocka_unit_test(test_scan_agrees_with_iniparser),
	    cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_keys_and_sections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interpolation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dotenv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shell_words, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_duration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_graph, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cycles, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_build_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_networks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
