/* supervisor/stack_out.c: `hutch stack config`. The INI it writes loads back
 * to the same model, whatever the values hold (blanks, '$', ';', '#', both
 * quotes, backslashes, empty words), checked by comparing the JSON of both
 * models; a value no INI line can hold is refused with its place; every stack
 * and compose file of the fuzz corpus that loads goes through the INI and
 * back; and the JSON document has the shape docs/compose.md gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "supervisor/compose.h"
#include "supervisor/stack.h"
#include "tests/fuzz/stack_roundtrip.h"

static char *tmpdir, *old_cwd, *corpus;
static char *envp[] = {"HOME=/home/u", "TAG=1.36", "A=", "EMPTY=", NULL};

static int setup(void **state)
{
	/* the corpus is found from the source tree, where `make unit` runs */
	corpus = realpath("tests/fuzz/corpus", NULL);
	if (!corpus) {
		print_error("run from the source tree: tests/fuzz/corpus not found\n");
		return -1;
	}
	tmpdir = xstrdup("/tmp/hutch-test-stack-out-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	old_cwd = getcwd(NULL, 0);
	assert_int_equal(chdir(tmpdir), 0);
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(chdir(old_cwd), 0);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(tmpdir);
	free(old_cwd);
	free(corpus);
	return 0;
}

static void put(const char *name, const char *text)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static bool is_compose(const char *path)
{
	size_t n = strlen(path);
	return (n > 5 && !strcmp(path + n - 5, ".yaml")) ||
	       (n > 4 && !strcmp(path + n - 4, ".yml"));
}

static int load(const char *path, struct hutch_stack **s, struct hutch_err **err)
{
	const char *paths[] = {path};
	struct hutch_stack_load_opts o = {0};
	const char *all[] = {"*"};
	o.profiles = all; /* every service, profiles or not */
	o.n_profiles = 1;
	if (is_compose(path))
		return compose_load_env(paths, 1, &o, envp, s, err);
	return stack_load_env(path, envp, s, err);
}

static char *written(const struct hutch_stack *s, enum hutch_stack_format f)
{
	char *text = NULL;
	struct hutch_err *err = NULL;
	if (hutch_stack_write(s, f, &text, NULL, NULL, &err) < 0) {
		print_error("cannot write: %s\n", err->msg);
		hutch_err_free(&err);
		fail();
	}
	return text;
}

/* load(path) -> INI -> load gives the same model; returns the INI written. */
static char *roundtrip_file(const char *path)
{
	struct hutch_stack *a = NULL, *b = NULL;
	struct hutch_err *err = NULL;
	if (load(path, &a, &err) < 0) {
		print_error("%s: %s\n", path, err->msg);
		hutch_err_free(&err);
		fail();
	}
	char *ini = written(a, HUTCH_STACK_INI);
	put("roundtrip.ini", ini);
	if (stack_load_env("roundtrip.ini", envp, &b, &err) < 0) {
		print_error("%s: the INI written does not load: %s\n%s\n", path, err->msg, ini);
		hutch_err_free(&err);
		fail();
	}
	struct json_object *ja = roundtrip_json(a), *jb = roundtrip_json(b);
	if (!json_object_equal(ja, jb)) {
		print_error("%s: not the same model after the INI:\n%s\n---\n%s\n---\n%s\n", path,
			    json_object_to_json_string_ext(ja, JSON_C_TO_STRING_PRETTY),
			    json_object_to_json_string_ext(jb, JSON_C_TO_STRING_PRETTY), ini);
		fail();
	}
	json_object_put(ja);
	json_object_put(jb);
	hutch_stack_free(a);
	hutch_stack_free(b);
	return ini;
}

static char *roundtrip_yaml(const char *yaml)
{
	put("compose.yaml", yaml);
	return roundtrip_file("compose.yaml");
}

/* ---- quoting ---------------------------------------------------------------- */

static void test_hard_values_come_back(void **state)
{
	/* YAML double-quoted strings give any text; each is a word or a value
	 * the INI must quote for its line reader, interpolation and words */
	char *ini = roundtrip_yaml(
	    "name: q\n"
	    "services:\n"
	    "  a:\n"
	    "    image: busybox\n"
	    "    command: [\"sh\", \"-c\", \"echo 'a b'; echo \\\"$$HOME\\\" # not a comment\",\n"
	    "              \"\", \" lead\", \"trail \", \"back\\\\slash\", \"end\\\\\", "
	    "\"tab\\there\",\n"
	    "              \"'\", \"\\\"\", \"''\", \"it's \\\"both\\\"\", \"caf\\u00e9\", \"=\", "
	    "\"a=b\"]\n"
	    "    entrypoint: [\"/bin/sh\", \"-c\"]\n"
	    "    environment:\n"
	    "      SEMI: \"a;b\"\n"
	    "      HASH: \"a #b\"\n"
	    "      DOLLAR: \"$$x $${y}\"\n"
	    "      BOTH: \"it's \\\"q\\\"; #\"\n"
	    "      EMPTY_VALUE: \"\"\n"
	    "      SPACES: \"  two  \"\n"
	    "      PEM: \"-----BEGIN-----\\nAAAA\\r\\n-----END-----\\n\"\n"
	    "      CTRL: \"bell\\a\\x7f \\t$$'x'\"\n"
	    "    labels: {\"x.note\": \"one; two # three\", \"y\": \"'\"}\n"
	    "    user: \"1000:1000\"\n"
	    "    working_dir: \"/srv/a b;c#d\"\n"
	    "    hostname: \"h$$\"\n"
	    "    healthcheck:\n"
	    "      test: [\"CMD\", \"sh\", \"-c\", \"test -f '/ready now'; exit $$?\"]\n"
	    "      interval: 1m30s\n"
	    "      timeout: 1.5s\n"
	    "      start_period: 250ms\n"
	    "      start_interval: 1500us\n"
	    "      retries: 7\n"
	    "    stop_grace_period: 1h2m3s4ms\n"
	    "    restart: on-failure:4\n");
	/* interpolation reads "$$" back as one '$' */
	assert_non_null(strstr(ini, "$$HOME"));
	/* line breaks as $'...' ("$$'" for interpolation) */
	assert_non_null(strstr(ini, "$$'PEM=-----BEGIN-----\\nAAAA\\x0d\\n-----END-----\\n'"));
	if (getenv("SHOW"))
		print_message("%s", ini);
	free(ini);
	free(roundtrip_yaml("services:\n"
			    "  a:\n"
			    "    image: busybox\n"
			    "    entrypoint: \"\"\n"
			    "    command: \"a\"\n"
			    "    healthcheck: {test: [\"CMD\", \"x\"], start_period: 0s}\n"
			    "  b:\n"
			    "    image: busybox\n"
			    "    depends_on: {a: {condition: service_healthy, restart: true}}\n"
			    "    restart: always\n"
			    "    tmpfs: [/run]\n"
			    "    volumes: [{type: tmpfs, target: /cache}]\n"
			    "    cap_add: []\n"
			    "  c:\n"
			    "    image: busybox\n"
			    "    restart: unless-stopped\n"
			    "    read_only: true\n"
			    "    privileged: false\n"
			    "    scale: 3\n"
			    "    depends_on: {b: {condition: service_completed_successfully}}\n"));
}

static void test_ini_http_tcp_notify(void **state)
{
	put("hutch.ini", "[stack]\nname = h\n"
			 "[service.a]\nimage = busybox\nhealth_http = http://[::1]:8080/h?x=1\n"
			 "[service.b]\nimage = busybox\nhealth_http = http://localhost:80\n"
			 "health_timeout = 2s\n"
			 "[service.c]\nimage = busybox\nhealth_http = http://10.0.0.1:81/\n"
			 "[service.d]\nimage = busybox\nhealth_tcp = 6379\nnotify = true\n"
			 "replicas = 2\nstop_grace_period = 0\n"
			 "[service.e]\nimage = busybox\n"
			 "depends_on = a:healthy b:healthy:restart c:restart d\n");
	char *ini = roundtrip_file("hutch.ini");
	assert_non_null(strstr(ini, "health_http = http://[::1]:8080/h?x=1\n"));
	assert_non_null(strstr(ini, "health_http = http://localhost:80/\n"));
	assert_non_null(strstr(ini, "stop_grace_period = 0s\n"));
	assert_non_null(strstr(ini, "depends_on = a:healthy b:healthy:restart c:started:restart "
				    "d:started\n"));
	free(ini);
}

/* What no INI line can hold is refused, naming the key and the value. */
static void expect_refused(const char *yaml, const char *want)
{
	put("compose.yaml", yaml);
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(load("compose.yaml", &s, &err), 0);
	char *text = NULL;
	assert_int_equal(hutch_stack_write(s, HUTCH_STACK_INI, &text, NULL, NULL, &err), -1);
	assert_null(text);
	if (!strstr(err->msg, want)) {
		print_error("got:  %s\nwant: %s\n", err->msg, want);
		fail();
	}
	hutch_err_free(&err);
	/* the JSON holds it */
	text = written(s, HUTCH_STACK_JSON);
	free(text);
	hutch_stack_free(s);
}

static void test_refused_values(void **state)
{
	expect_refused("services:\n  a:\n    image: busybox\n    working_dir: \"/a\\nb\"\n",
		       "services.a.workdir: '/a\\x0ab': it holds a line break: a hutch.ini cannot "
		       "hold it (--format json shows it)");
	/* a variable longer than a line of its own */
	struct strbuf y = {0};
	strbuf_adds(&y, "services:\n  a:\n    image: busybox\n    environment:\n      A: 1\n");
	strbuf_adds(&y, "      LONG: ");
	for (int i = 0; i < 100; i++)
		strbuf_adds(&y, "0123456789");
	strbuf_adds(&y, "\n");
	expect_refused(y.s, "services.a.env.2: 'LONG=0123456789");
	expect_refused(y.s, "bytes long, and an INI line holds 999 (put long lists of variables "
			    "in an env_file)");
	strbuf_fini(&y);
}

/* Variables past one INI line go on in env.2, env.3, ... and read back. */
static void test_long_env(void **state)
{
	struct strbuf y = {0};
	strbuf_adds(&y, "services:\n  a:\n    image: busybox\n    environment:\n");
	for (int i = 0; i < 80; i++)
		strbuf_addf(&y, "      VARIABLE_%02d: \"some value; of a few $$bytes\"\n", i);
	char *ini = roundtrip_yaml(y.s);
	assert_non_null(strstr(ini, "\nenv = \"VARIABLE_00="));
	assert_non_null(strstr(ini, "\nenv.2 = \"VARIABLE_"));
	assert_non_null(strstr(ini, "\nenv.3 = \"VARIABLE_"));
	assert_non_null(strstr(ini, "\nenv.4 = \"VARIABLE_"));
	assert_null(strstr(ini, "\nenv.5 = "));
	for (const char *l = ini; *l; l = strchr(l, '\n') + 1)
		assert_true(strcspn(l, "\n") <= 999);
	free(ini);
	strbuf_fini(&y);
}

/* depends_on's restart is NAME:CONDITION:restart; nothing is left to notes;
 * declared networks are [network.NAME] sections. */
static void test_notes(void **state)
{
	put("compose.yaml", "services:\n"
			    "  a:\n    image: busybox\n    networks: [front]\n"
			    "  b:\n    image: busybox\n"
			    "    depends_on: {a: {condition: service_started, restart: true}}\n"
			    "networks:\n  front: {internal: true}\n"
			    "  back:\n    ipam: {config: [{subnet: 10.89.9.0/24}]}\n");
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(load("compose.yaml", &s, &err), 0);
	char *text = NULL, **notes = NULL;
	size_t n = 0;
	assert_int_equal(hutch_stack_write(s, HUTCH_STACK_INI, &text, &notes, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_non_null(strstr(text, "depends_on = a:started:restart\n"));
	assert_non_null(strstr(text, "[network.front]\ninternal = true\n"));
	assert_non_null(strstr(text, "[network.back]\nsubnet = 10.89.9.0/24\n"));
	assert_non_null(strstr(text, "networks = front\n"));
	strv_free(notes, n);
	free(text);
	hutch_stack_free(s);
}

/* $'...' in shell words: C escapes, and what they refuse */
static void test_dollar_quote_words(void **state)
{
	static const struct {
		const char *in;
		const char *words[3];
		size_t n;
	} ok[] = {
	    {"$'a\\nb'", {"a\nb"}, 1},
	    {"x$'\\t\\x41\\x4a2\\101\\'\\\"\\\\'y z", {"x\tAJ2A'\"\\y", "z"}, 2},
	    {"$'' $'a b'", {"", "a b"}, 2},
	    {"'$'a", {"$a"}, 1},     /* a $ inside '...' is a $ */
	    {"\"$\"'a'", {"$a"}, 1}, /* and in "..." */
	    {"$ $x", {"$", "$x"}, 2},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char **words = NULL;
		size_t n = 0;
		const char *why = NULL;
		if (shell_words(ok[i].in, &words, &n, &why) < 0)
			fail_msg("'%s': %s", ok[i].in, why);
		assert_int_equal(n, ok[i].n);
		for (size_t w = 0; w < n; w++)
			assert_string_equal(words[w], ok[i].words[w]);
		strv_free(words, n);
	}
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"$'abc", "a $'...' quote is not closed"},
	    {"$'a\\q'", "in $'...', a backslash takes one of \\\\ \\' \\\" \\a \\b \\e \\f \\n \\r "
			"\\t \\v \\xHH or \\OOO (octal)"},
	    {"$'\\x00'", "a word cannot hold a NUL byte (or an octal escape past \\377)"},
	    {"$'\\0'", "a word cannot hold a NUL byte (or an octal escape past \\377)"},
	    {"$'\\777'", "a word cannot hold a NUL byte (or an octal escape past \\377)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char **words = NULL;
		size_t n = 0;
		const char *why = NULL;
		assert_int_equal(shell_words(bad[i].in, &words, &n, &why), -1);
		assert_string_equal(why, bad[i].why);
	}
}

/* ---- the corpus ----------------------------------------------------------------- */

static void corpus_dir(const char *sub, size_t *loaded)
{
	char *dir = xasprintf("%s/%s", corpus, sub);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct hutch_stack *s = NULL;
		struct hutch_err *err = NULL;
		/* the corpus holds broken files on purpose: those that load */
		if (load(path, &s, &err) == 0) {
			char *text = NULL;
			struct hutch_err *werr = NULL;
			/* a huge value is past what an INI line holds: said so */
			if (hutch_stack_write(s, HUTCH_STACK_INI, &text, NULL, NULL, &werr) < 0) {
				if (!strstr(werr->msg, "an INI line holds 999")) {
					print_error("%s: %s\n", path, werr->msg);
					fail();
				}
				hutch_err_free(&werr);
			} else {
				free(roundtrip_file(path));
				(*loaded)++;
			}
			free(text);
			hutch_stack_free(s);
		}
		hutch_err_free(&err);
		free(path);
	}
	closedir(d);
	free(dir);
}

static void test_corpus_roundtrip(void **state)
{
	size_t loaded = 0;
	/* env files the corpus names, beside it */
	corpus_dir("stackfile", &loaded);
	corpus_dir("compose", &loaded);
	/* a change that made the corpus fail to load would make this test empty */
	assert_true(loaded >= 8);
}

/* ---- JSON ------------------------------------------------------------------------ */

static void test_json_shape(void **state)
{
	put("compose.yaml", "name: shop\n"
			    "services:\n"
			    "  db:\n    image: pg:16\n"
			    "    environment: {A: '1'}\n"
			    "    healthcheck: {test: [CMD, pg_isready], interval: 5s}\n"
			    "    volumes: [data:/data]\n"
			    "    read_only: true\n"
			    "  api:\n    image: app:1\n    command: app serve\n"
			    "    depends_on: {db: {condition: service_healthy}}\n"
			    "    deploy: {replicas: 2}\n"
			    "    user: '1000'\n"
			    "volumes:\n  data:\n");
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(load("compose.yaml", &s, &err), 0);
	char *text = written(s, HUTCH_STACK_JSON);
	struct json_object *j = json_tokener_parse(text), *v;
	assert_non_null(j);
	assert_string_equal(json_object_get_string(json_object_object_get(j, "name")), "shop");
	struct json_object *svcs = json_object_object_get(j, "services");
	struct json_object *db = json_object_object_get(svcs, "db");
	struct json_object *api = json_object_object_get(svcs, "api");
	assert_string_equal(json_object_get_string(json_object_object_get(db, "image")), "pg:16");
	assert_true(json_object_is_type(json_object_object_get(db, "command"), json_type_null));
	assert_true(json_object_is_type(json_object_object_get(db, "entrypoint"), json_type_null));
	v = json_object_object_get(json_object_object_get(db, "environment"), "A");
	assert_string_equal(json_object_get_string(v), "1");
	struct json_object *h = json_object_object_get(db, "healthcheck");
	assert_string_equal(json_object_get_string(json_object_object_get(h, "type")), "cmd");
	assert_string_equal(json_object_get_string(json_object_object_get(h, "interval")), "5s");
	assert_string_equal(json_object_get_string(json_object_object_get(h, "timeout")), "30s");
	assert_int_equal(json_object_get_int(json_object_object_get(h, "retries")), 3);
	struct json_object *opts = json_object_object_get(db, "options");
	v = json_object_object_get(opts, "volumes");
	assert_int_equal(json_object_array_length(v), 1);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "data:/data");
	assert_true(json_object_get_boolean(json_object_object_get(opts, "read_only")));
	v = json_object_object_get(api, "command");
	assert_int_equal(json_object_array_length(v), 2);
	v = json_object_object_get(json_object_object_get(api, "depends_on"), "db");
	assert_string_equal(json_object_get_string(json_object_object_get(v, "condition")),
			    "healthy");
	assert_false(json_object_get_boolean(json_object_object_get(v, "restart")));
	assert_int_equal(json_object_get_int(json_object_object_get(api, "replicas")), 2);
	assert_string_equal(json_object_get_string(json_object_object_get(api, "restart")), "no");
	assert_string_equal(
	    json_object_get_string(json_object_object_get(api, "stop_grace_period")), "10s");
	assert_true(
	    json_object_is_type(json_object_object_get(api, "healthcheck"), json_type_null));
	v = json_object_object_get(json_object_object_get(api, "options"), "user");
	assert_string_equal(json_object_get_string(v), "1000");
	v = json_object_object_get(j, "start_order");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "db");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 1)), "api");
	v = json_object_object_get(j, "volumes");
	assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "data");
	assert_true(json_object_is_type(json_object_object_get(j, "networks"), json_type_object));
	json_object_put(j);
	free(text);
	hutch_stack_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hard_values_come_back),
	    cmocka_unit_test(test_ini_http_tcp_notify),
	    cmocka_unit_test(test_refused_values),
	    cmocka_unit_test(test_long_env),
	    cmocka_unit_test(test_notes),
	    cmocka_unit_test(test_dollar_quote_words),
	    cmocka_unit_test(test_corpus_roundtrip),
	    cmocka_unit_test(test_json_shape),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
