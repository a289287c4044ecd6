/* supervisor/compose.c and compose_yaml.c: compose files into the stack model.
 * The proof that a compose file has no code path of its own: each key, in each
 * of its forms, is written as a compose file and as the hutch.ini that means
 * the same, both are loaded, and the two models are compared field by field.
 * Then merges of override files, anchors and merge keys, interpolation, and
 * every error with its file:line:column and key path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "supervisor/compose.h"
#include "supervisor/stack.h"

static char *tmpdir, *old_cwd;
static char *envp[] = {
    "HOME=/home/u", "TAG=1.36", "EMPTY=", "FROM_ENV=env-value", "PORT=8080", NULL};

static int setup(void **state)
{
	tmpdir = xstrdup("/tmp/hutch-test-compose-XXXXXX");
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
	return 0;
}

static void put(const char *name, const char *text)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static void roundtrip(const struct hutch_stack *a);

static struct hutch_stack *compose_files(const char *const *names, size_t n,
					 const struct hutch_stack_load_opts *o)
{
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	if (compose_load_env(names, n, o, envp, &s, &err) < 0) {
		print_error("unexpected error: %s\n", err->msg);
		hutch_err_free(&err);
		fail();
	}
	roundtrip(s);
	return s;
}

static struct hutch_stack *compose(const char *yaml)
{
	put("compose.yaml", yaml);
	const char *names[] = {"compose.yaml"};
	return compose_files(names, 1, NULL);
}

static struct hutch_stack *ini(const char *text)
{
	put("hutch.ini", text);
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	if (stack_load_env("hutch.ini", envp, &s, &err) < 0) {
		print_error("unexpected INI error: %s\n", err->msg);
		hutch_err_free(&err);
		fail();
	}
	roundtrip(s);
	return s;
}

static void same_strv(char **a, size_t na, char **b, size_t nb, const char *what)
{
	if (na != nb) {
		print_error("%s: %zu words against %zu\n", what, na, nb);
		for (size_t i = 0; i < na; i++)
			print_error("  compose: '%s'\n", a[i]);
		for (size_t i = 0; i < nb; i++)
			print_error("  ini:     '%s'\n", b[i]);
		fail();
	}
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i])) {
			print_error("%s[%zu]: '%s' against '%s'\n", what, i, a[i], b[i]);
			fail();
		}
}

static void same_str(const char *a, const char *b, const char *what)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b))) {
		print_error("%s: '%s' against '%s'\n", what, a ? a : "(null)", b ? b : "(null)");
		fail();
	}
}

/* The two models say the same, field by field (lines apart: they are each
 * file's own). */
static void same(const struct hutch_stack *a, const struct hutch_stack *b)
{
	same_str(a->name, b->name, "name");
	same_str(a->subnet, b->subnet, "subnet");
	same_strv(a->dns_upstream, a->n_dns_upstream, b->dns_upstream, b->n_dns_upstream,
		  "dns_upstream");
	assert_int_equal(a->n_networks, b->n_networks);
	for (size_t i = 0; i < a->n_networks; i++) {
		same_str(a->networks[i].name, b->networks[i].name, "network");
		assert_int_equal(a->networks[i].internal, b->networks[i].internal);
		same_str(a->networks[i].subnet, b->networks[i].subnet, "network subnet");
	}
	assert_int_equal(a->n_services, b->n_services);
	for (size_t i = 0; i < a->n_services; i++) {
		const struct stack_service *x = &a->services[i], *y = &b->services[i];
		same_str(x->name, y->name, "service");
		same_str(x->image, y->image, "image");
		same_strv(x->command, x->n_command, y->command, y->n_command, "command");
		assert_int_equal(x->has_entrypoint, y->has_entrypoint);
		same_strv(x->entrypoint, x->n_entrypoint, y->entrypoint, y->n_entrypoint,
			  "entrypoint");
		same_strv(x->env, x->n_env, y->env, y->n_env, "env");
		assert_int_equal(x->health.kind, y->health.kind);
		same_strv(x->health.cmd, x->health.n_cmd, y->health.cmd, y->health.n_cmd,
			  "health_cmd");
		assert_int_equal(x->health.port, y->health.port);
		same_str(x->health.http_host, y->health.http_host, "health_http host");
		same_str(x->health.http_path, y->health.http_path, "health_http path");
		assert_int_equal(x->health.interval_ns, y->health.interval_ns);
		assert_int_equal(x->health.timeout_ns, y->health.timeout_ns);
		assert_int_equal(x->health.start_period_ns, y->health.start_period_ns);
		assert_int_equal(x->health.start_interval_ns, y->health.start_interval_ns);
		assert_int_equal(x->health.retries, y->health.retries);
		assert_int_equal(x->restart, y->restart);
		assert_int_equal(x->restart_max, y->restart_max);
		assert_int_equal(x->stop_grace_ns, y->stop_grace_ns);
		assert_int_equal(x->replicas, y->replicas);
		assert_int_equal(x->notify, y->notify);
		assert_int_equal(x->n_deps, y->n_deps);
		for (size_t d = 0; d < x->n_deps; d++) {
			same_str(x->deps[d].service, y->deps[d].service, "depends_on");
			assert_int_equal(x->deps[d].condition, y->deps[d].condition);
			assert_int_equal(x->deps[d].restart, y->deps[d].restart);
			assert_int_equal(x->deps[d].index, y->deps[d].index);
		}
		if (x->n_options != y->n_options) {
			for (size_t o = 0; o < x->n_options; o++)
				print_error("  compose: %s\n", x->options[o].key);
			for (size_t o = 0; o < y->n_options; o++)
				print_error("  ini:     %s\n", y->options[o].key);
		}
		assert_int_equal(x->n_options, y->n_options);
		for (size_t o = 0; o < x->n_options; o++) {
			const struct stack_option *ox = &x->options[o];
			const struct stack_option *oy = stack_service_option(y, ox->key);
			if (!oy) {
				print_error("option %s: not in the INI model\n", ox->key);
				fail();
			}
			assert_int_equal(ox->kind, oy->kind);
			if (ox->kind == STACK_OPT_LIST)
				same_strv(ox->words, ox->n_words, oy->words, oy->n_words, ox->key);
			else if (ox->kind == STACK_OPT_FLAG)
				assert_int_equal(ox->flag, oy->flag);
			else
				same_str(ox->text, oy->text, ox->key);
		}
	}
	for (size_t i = 0; i < a->n_services; i++)
		assert_int_equal(a->order[i], b->order[i]);
}

/* Every model loaded here, written out as a hutch.ini (`hutch stack config`)
 * and loaded again, is the same model, with nothing left to notes. */
static void roundtrip(const struct hutch_stack *a)
{
	char *text = NULL, **notes = NULL;
	size_t n_notes = 0;
	struct hutch_err *err = NULL;
	if (hutch_stack_write(a, HUTCH_STACK_INI, &text, &notes, &n_notes, &err) < 0) {
		print_error("cannot write as INI: %s\n", err->msg);
		hutch_err_free(&err);
		fail();
	}
	put("roundtrip.ini", text);
	struct hutch_stack *b = NULL;
	if (stack_load_env("roundtrip.ini", envp, &b, &err) < 0) {
		print_error("the INI written does not load: %s\n%s\n", err->msg, text);
		hutch_err_free(&err);
		fail();
	}
	same(a, b);
	assert_int_equal(n_notes, 0);
	strv_free(notes, n_notes);
	hutch_stack_free(b);
	free(text);
	unlink("roundtrip.ini");
}

static void pair(const char *yaml, const char *ini_text)
{
	struct hutch_stack *a = compose(yaml), *b = ini(ini_text);
	same(a, b);
	hutch_stack_free(a);
	hutch_stack_free(b);
}

static char *compose_error(const char *const *names, size_t n,
			   const struct hutch_stack_load_opts *o)
{
	struct hutch_stack *s = NULL;
	struct hutch_err *err = NULL;
	if (compose_load_env(names, n, o, envp, &s, &err) == 0) {
		hutch_stack_free(s);
		print_error("loaded, but an error was expected\n");
		fail();
	}
	assert_null(s);
	char *msg = xstrdup(err->msg);
	hutch_err_free(&err);
	return msg;
}

/* The load fails and want is one of the lines of its message. */
static void expect_error(const char *yaml, const char *want)
{
	put("compose.yaml", yaml);
	const char *names[] = {"compose.yaml"};
	char *msg = compose_error(names, 1, NULL);
	bool found = false;
	for (char *line = msg, *nl; line && !found; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		found = !strncmp(line, want, nl ? (size_t)(nl - line) : strlen(line)) &&
			strlen(want) == (nl ? (size_t)(nl - line) : strlen(line));
	}
	if (!found) {
		print_error("got:  %s\nwant: %s\n", msg, want);
		free(msg);
		fail();
	}
	free(msg);
}

/* ---- each key in each form, against the INI that means the same ---------------- */

static void test_command_entrypoint(void **state)
{
	pair("name: shop\n"
	     "services:\n"
	     "  web:\n"
	     "    image: busybox:${TAG}\n"
	     "    command: sh -c \"echo hi; sleep 1\"\n"
	     "    entrypoint: [\"/bin/tini\", \"--\"]\n",
	     "[stack]\nname = shop\n[service.web]\nimage = busybox:1.36\n"
	     "command = 'sh -c \"echo hi; sleep 1\"'\nentrypoint = /bin/tini --\n");
	/* a list keeps each word as it is, quotes and blanks and all */
	pair("name: shop\nservices:\n  web:\n    image: busybox\n"
	     "    command: [\"printf\", \"%s it's\", \"a  b\", \"$$x\"]\n    entrypoint: \"\"\n",
	     "[stack]\nname = shop\n[service.web]\nimage = busybox\n"
	     "command = \"printf '%s it'\\''s' 'a  b' '$$x'\"\nentrypoint = \"\"\n");
	pair("name: shop\nservices:\n  web:\n    image: busybox\n    entrypoint: []\n",
	     "[stack]\nname = shop\n[service.web]\nimage = busybox\nentrypoint = ''\n");
}

static void test_environment(void **state)
{
	put("a.env", "A=1\nB=from-file\n");
	put("b.env", "C=3\n");
	const char *want = "[stack]\nname = shop\n[service.web]\nimage = busybox\n"
			   "env_file = a.env b.env\n"
			   "env = B=over \"SPACED=a b\" FROM_ENV UNSET_ONE EMPTY\n";
	pair("name: shop\nservices:\n  web:\n    image: busybox\n"
	     "    env_file: [a.env, b.env]\n"
	     "    environment:\n      - B=over\n      - SPACED=a b\n      - FROM_ENV\n"
	     "      - UNSET_ONE\n      - EMPTY\n",
	     want);
	pair("name: shop\nservices:\n  web:\n    image: busybox\n"
	     "    env_file:\n      - a.env\n      - path: b.env\n        required: true\n"
	     "      - path: missing.env\n        required: false\n"
	     "    environment:\n      B: over\n      SPACED: a b\n      FROM_ENV:\n"
	     "      UNSET_ONE: ~\n      EMPTY: null\n",
	     want);
	/* a number or a boolean is its text as written */
	pair("name: shop\nservices:\n  web:\n    image: busybox\n    env_file: a.env\n"
	     "    environment: {N: 1.50, T: true}\n",
	     "[stack]\nname = shop\n[service.web]\nimage = busybox\nenv_file = a.env\n"
	     "env = N=1.50 T=true\n");
}

static void test_volumes(void **state)
{
	pair("name: shop\nservices:\n  db:\n    image: busybox\n    volumes:\n"
	     "      - pgdata:/var/lib/data\n      - ./init:/init:ro\n      - ~/x:/x\n"
	     "      - type: bind\n        source: ./conf\n        target: /etc/app\n"
	     "        read_only: true\n"
	     "      - type: volume\n        source: pgdata\n        target: /more\n"
	     "      - type: tmpfs\n        target: /cache\n        tmpfs:\n          size: 64m\n"
	     "    tmpfs: /run\n"
	     "volumes:\n  pgdata:\n",
	     "[stack]\nname = shop\n[service.db]\nimage = busybox\n"
	     "volumes = pgdata:/var/lib/data ./init:/init:ro /home/u/x:/x ./conf:/etc/app:ro "
	     "pgdata:/more\n"
	     "tmpfs = /cache:size=64m /run\n");
	pair("name: shop\nservices:\n  db:\n    image: busybox\n    tmpfs: [/run, /tmp:size=1m]\n",
	     "[stack]\nname = shop\n[service.db]\nimage = busybox\ntmpfs = /run /tmp:size=1m\n");
	struct hutch_stack *s = compose("name: shop\nservices:\n  db:\n    image: busybox\n"
					"volumes:\n  pgdata:\n  other: {driver: local}\n");
	assert_int_equal(s->n_volumes, 2);
	assert_string_equal(s->volumes[0].name, "pgdata");
	assert_int_equal(s->volumes[0].line, 6);
	assert_string_equal(s->volumes[1].name, "other");
	hutch_stack_free(s);
}

static void test_ports_expose(void **state)
{
	pair("name: shop\nservices:\n  web:\n    image: busybox\n    ports:\n"
	     "      - 80\n      - \"8080:80\"\n      - 127.0.0.1:8443:443/tcp\n"
	     "      - \"[::1]:53:53/udp\"\n      - 9000-9001:9000-9001\n"
	     "      - target: 81\n        published: \"${PORT}\"\n        host_ip: 10.0.0.1\n"
	     "        protocol: udp\n        mode: host\n"
	     "      - target: 82\n        host_ip: ::1\n"
	     "    expose: [\"3000\", 4000/udp]\n",
	     "[stack]\nname = shop\n[service.web]\nimage = busybox\n"
	     "ports = 80 8080:80 127.0.0.1:8443:443/tcp [::1]:53:53/udp 9000-9001:9000-9001 "
	     "10.0.0.1:8080:81/udp [::1]::82\n"
	     "expose = 3000 4000/udp\n");
}

static void test_depends_health(void **state)
{
	pair("name: shop\nservices:\n"
	     "  db:\n    image: busybox\n"
	     "    healthcheck:\n      test: [\"CMD\", \"pg_isready\", \"-U\", \"postgres\"]\n"
	     "      interval: 5s\n      timeout: 3s\n      retries: 5\n"
	     "      start_period: 30s\n      start_interval: 500ms\n"
	     "  migrate:\n    image: busybox\n    depends_on:\n      db:\n"
	     "        condition: service_healthy\n"
	     "  cache:\n    image: busybox\n"
	     "    healthcheck:\n      test: [\"CMD-SHELL\", \"nc -z localhost 6379 || exit 1\"]\n"
	     "  api:\n    image: busybox\n    depends_on:\n"
	     "      db: {condition: service_healthy, restart: true}\n"
	     "      migrate: {condition: service_completed_successfully}\n"
	     "      cache:\n"
	     "      optional: {condition: service_started, required: false}\n"
	     "    healthcheck:\n      test: wget -q -O- http://localhost/ || exit 1\n"
	     "  worker:\n    image: busybox\n    depends_on: [db, cache]\n"
	     "    healthcheck:\n      test: [\"NONE\"]\n"
	     "  other:\n    image: busybox\n    healthcheck:\n      disable: true\n"
	     "      test: [\"CMD\", \"true\"]\n",
	     "[stack]\nname = shop\n"
	     "[service.db]\nimage = busybox\nhealth_cmd = pg_isready -U postgres\n"
	     "health_interval = 5s\nhealth_timeout = 3s\nhealth_retries = 5\n"
	     "health_start_period = 30s\nhealth_start_interval = 500ms\n"
	     "[service.migrate]\nimage = busybox\ndepends_on = db:healthy\n"
	     "[service.cache]\nimage = busybox\n"
	     "health_cmd = /bin/sh -c 'nc -z localhost 6379 || exit 1'\n"
	     "[service.api]\nimage = busybox\n"
	     "depends_on = db:healthy:restart migrate:completed cache:started\n"
	     "health_cmd = /bin/sh -c 'wget -q -O- http://localhost/ || exit 1'\n"
	     "[service.worker]\nimage = busybox\ndepends_on = db cache\n"
	     "[service.other]\nimage = busybox\n");
	struct hutch_stack *s =
	    compose("services:\n  db:\n    image: busybox\n    healthcheck: {test: [CMD, 'true']}\n"
		    "  api:\n    image: busybox\n    depends_on:\n"
		    "      db: {condition: service_healthy, restart: true}\n");
	assert_true(s->services[1].deps[0].restart);
	assert_int_equal(s->services[1].deps[0].line, 8);
	assert_int_equal(s->services[0].health.line, 4);
	hutch_stack_free(s);
}

static void test_restart_limits(void **state)
{
	pair("name: shop\nservices:\n  a:\n    image: busybox\n    restart: unless-stopped\n"
	     "    mem_limit: 512m\n    memswap_limit: 1g\n    cpus: 1.5\n    pids_limit: 256\n"
	     "    stop_signal: SIGINT\n    stop_grace_period: 1m30s\n    scale: 2\n",
	     "[stack]\nname = shop\n[service.a]\nimage = busybox\nrestart = unless-stopped\n"
	     "memory = 512m\nmemory_swap = 1g\ncpus = 1.5\npids = 256\nstop_signal = SIGINT\n"
	     "stop_grace_period = 1m30s\nreplicas = 2\n");
	pair("name: shop\nservices:\n  a:\n    image: busybox\n    deploy:\n      replicas: 3\n"
	     "      mode: replicated\n"
	     "      resources:\n        limits: {memory: 256M, cpus: '0.5', pids: 100}\n"
	     "      restart_policy:\n        condition: on-failure\n        max_attempts: 4\n",
	     "[stack]\nname = shop\n[service.a]\nimage = busybox\nreplicas = 3\n"
	     "memory = 256M\ncpus = 0.5\npids = 100\nrestart = on-failure:4\n");
	pair("name: shop\nservices:\n  a:\n    image: busybox\n    deploy:\n"
	     "      restart_policy: {condition: any}\n"
	     "  b:\n    image: busybox\n    deploy:\n      restart_policy: {condition: none}\n",
	     "[stack]\nname = shop\n[service.a]\nimage = busybox\nrestart = always\n"
	     "[service.b]\nimage = busybox\nrestart = no\n");
}

static void test_container_options(void **state)
{
	pair("name: shop\nservices:\n  a:\n    image: busybox\n    hostname: web1\n"
	     "    user: 999:999\n    working_dir: /srv\n    read_only: true\n"
	     "    privileged: false\n    init: true\n    cap_add: [NET_ADMIN, SYS_TIME]\n"
	     "    cap_drop:\n      - ALL\n    security_opt: [no-new-privileges]\n"
	     "    extra_hosts:\n      - db:10.0.0.2\n      - \"cache=10.0.0.3\"\n"
	     "    dns: 10.0.0.1\n    dns_search: [example.org, example.com]\n"
	     "    dns_opt: [ndots:2]\n"
	     "    ulimits:\n      nproc: 512\n      nofile:\n        soft: 1024\n"
	     "        hard: 2048\n"
	     "    labels:\n      - com.example.a=1\n      - \"b=two words\"\n"
	     "    container_name: shop-web\n    network_mode: host\n",
	     "[stack]\nname = shop\n[service.a]\nimage = busybox\nhostname = web1\n"
	     "user = 999:999\nworkdir = /srv\nread_only = yes\nprivileged = no\ninit = on\n"
	     "cap_add = NET_ADMIN SYS_TIME\ncap_drop = ALL\nsecurity_opt = no-new-privileges\n"
	     "add_host = db:10.0.0.2 cache:10.0.0.3\ndns = 10.0.0.1\n"
	     "dns_search = example.org example.com\ndns_option = ndots:2\n"
	     "ulimits = nproc=512 nofile=1024:2048\nlabels = com.example.a=1 \"b=two words\"\n"
	     "container_name = shop-web\nnetwork = host\n");
	pair("name: shop\nservices:\n  a:\n    image: busybox\n"
	     "    extra_hosts: {db: 10.0.0.2}\n    dns: [1.1.1.1, 8.8.8.8]\n"
	     "    labels: {x: 'y', empty: }\n    network_mode: none\n",
	     "[stack]\nname = shop\n[service.a]\nimage = busybox\nadd_host = db:10.0.0.2\n"
	     "dns = 1.1.1.1 8.8.8.8\nlabels = x=y empty=\nnetwork = none\n");
}

static void test_networks(void **state)
{
	pair("name: shop\nservices:\n  a:\n    image: busybox\n    networks: [front, back]\n"
	     "  b:\n    image: busybox\n    networks:\n      front:\n        aliases: [web, www]\n"
	     "      default:\n"
	     "networks:\n  front:\n  back:\n    internal: true\n",
	     "[stack]\nname = shop\n[network.front]\n[network.back]\ninternal = true\n"
	     "[service.a]\nimage = busybox\nnetworks = front back\n"
	     "[service.b]\nimage = busybox\nnetworks = front:web,www default\n");
	struct hutch_stack *s =
	    compose("services:\n  a:\n    image: busybox\n"
		    "networks:\n  front:\n  back:\n    internal: true\n    driver: bridge\n");
	assert_int_equal(s->n_networks, 2);
	assert_string_equal(s->networks[0].name, "front");
	assert_false(s->networks[0].internal);
	assert_string_equal(s->networks[1].name, "back");
	assert_true(s->networks[1].internal);
	assert_int_equal(s->networks[1].line, 6);
	assert_null(s->networks[1].subnet);
	hutch_stack_free(s);
	/* ipam's one subnet */
	s = compose(
	    "services:\n  a:\n    image: busybox\n"
	    "networks:\n  back:\n    ipam:\n      config:\n        - subnet: 10.89.9.0/24\n");
	assert_string_equal(s->networks[0].subnet, "10.89.9.0/24");
	assert_int_equal(s->networks[0].subnet_line, 8);
	hutch_stack_free(s);
	expect_error(
	    "services:\n  a:\n    image: busybox\n"
	    "networks:\n  back:\n    ipam:\n      config:\n        - subnet: 10.89.9.1/24\n",
	    "compose.yaml:8:19: networks.back.ipam.config[0].subnet: '10.89.9.1/24' is not "
	    "a subnet hutch can use: give an IPv4 network from /8 to /30 with its host bits "
	    "zero, like 10.89.7.0/24");
}

static void test_profiles_and_name(void **state)
{
	const char *yaml = "services:\n  a:\n    image: busybox\n"
			   "  debug:\n    image: busybox\n    profiles: [debug]\n"
			   "  x-ignored: &x\n"
			   "x-common: {anything: [1, 2]}\n";
	struct hutch_stack *s = compose(yaml);
	assert_int_equal(s->n_services, 1); /* x- keys are extensions there too */
	hutch_stack_free(s);
	put("compose.yaml", "name: fromfile\nservices:\n  a:\n    image: busybox\n"
			    "  debug:\n    image: busybox\n    profiles: [debug, all]\n");
	const char *names[] = {"compose.yaml"};
	s = compose_files(names, 1, NULL);
	assert_int_equal(s->n_services, 1);
	assert_string_equal(s->name, "fromfile");
	hutch_stack_free(s);
	const char *profiles[] = {"all"};
	struct hutch_stack_load_opts o = {
	    .profiles = profiles, .n_profiles = 1, .project_name = "cli"};
	s = compose_files(names, 1, &o);
	assert_int_equal(s->n_services, 2);
	assert_string_equal(s->services[1].name, "debug");
	assert_string_equal(s->name, "cli");
	hutch_stack_free(s);
	/* COMPOSE_PROJECT_NAME from .env, over name: */
	put(".env", "COMPOSE_PROJECT_NAME=fromenv\n");
	s = compose_files(names, 1, NULL);
	assert_string_equal(s->name, "fromenv");
	hutch_stack_free(s);
	unlink(".env");
	/* and with none, the directory's name, as the INI reader makes it */
	put("compose.yaml", "services:\n  a:\n    image: busybox\n");
	s = compose_files(names, 1, NULL);
	put("hutch.ini", "[service.a]\nimage = busybox\n");
	struct hutch_stack *i = ini("[service.a]\nimage = busybox\n");
	assert_string_equal(s->name, i->name);
	hutch_stack_free(s);
	hutch_stack_free(i);
}

/* ---- YAML: anchors, aliases, merge keys ------------------------------------------- */

static void test_anchors_merge_keys(void **state)
{
	pair("name: shop\n"
	     "x-base: &base\n  image: busybox\n  restart: always\n  environment: &env\n"
	     "    A: 1\n"
	     "x-limits: &limits\n  mem_limit: 64m\n  restart: \"no\"\n"
	     "services:\n"
	     "  a:\n    <<: *base\n"
	     "  b:\n    <<: [*base, *limits]\n    command: [echo, b]\n"
	     "  c:\n    <<: *base\n    restart: on-failure:2\n    environment: *env\n",
	     "[stack]\nname = shop\n"
	     "[service.a]\nimage = busybox\nrestart = always\nenv = A=1\n"
	     "[service.b]\nimage = busybox\nrestart = always\nenv = A=1\nmemory = 64m\n"
	     "command = echo b\n"
	     "[service.c]\nimage = busybox\nrestart = on-failure:2\nenv = A=1\n");
}

static void test_billion_laughs(void **state)
{
	char *y = xstrdup("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
	char prev = 'a';
	for (char c = 'b'; c <= 'j'; c++) {
		char *line =
		    xasprintf("%s%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, "
			      "*%c]\n",
			      y, c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev);
		free(y);
		y = line;
		prev = c;
	}
	char *full = xasprintf("%sservices:\n  a:\n    image: busybox\n", y);
	put("compose.yaml", full);
	const char *names[] = {"compose.yaml"};
	char *msg = compose_error(names, 1, NULL);
	assert_non_null(strstr(msg, "aliases here expand to more than 100000 nodes"));
	free(msg);
	free(full);
	free(y);
	/* deep nesting */
	char *deep = xcalloc(1, 2000);
	for (int i = 0; i < 900; i++)
		strcat(deep, "[");
	put("compose.yaml", deep);
	msg = compose_error(names, 1, NULL);
	assert_non_null(strstr(msg, "compose.yaml:1:65: nested more than 64 deep"));
	free(msg);
	free(deep);
}

/* ---- override files ----------------------------------------------------------------- */

static void test_override_merge(void **state)
{
	put("compose.yaml",
	    "name: shop\nservices:\n  web:\n    image: busybox:1\n    command: [a, b]\n"
	    "    environment: [A=1, B=2]\n    ports: [\"80:80\"]\n"
	    "    volumes: [./x:/data, ./y:/keep]\n    dns: [1.1.1.1]\n"
	    "    labels: {l1: a}\n    healthcheck: {test: [CMD, 'true'], interval: 5s}\n"
	    "    depends_on: [db]\n"
	    "  db:\n    image: busybox\n    restart: always\n");
	put("compose.override.yaml",
	    "services:\n  web:\n    image: busybox:2\n    command: [c]\n"
	    "    environment: {B: 3, C: 4}\n    ports: [\"443:443\", \"80:80\"]\n"
	    "    volumes: [./z:/data]\n    dns: [8.8.8.8]\n    labels: [l2=b]\n"
	    "    healthcheck: {retries: 7}\n"
	    "  db:\n    restart: !reset null\n");
	put("third.yaml", "services:\n  web:\n    dns: !override [9.9.9.9]\n"
			  "  cache:\n    image: busybox\n");
	const char *names[] = {"compose.yaml", "compose.override.yaml", "third.yaml"};
	struct hutch_stack *a = compose_files(names, 3, NULL);
	struct hutch_stack *b =
	    ini("[stack]\nname = shop\n[service.web]\nimage = busybox:2\ncommand = c\n"
		"env = A=1 B=3 C=4\nports = 80:80 443:443\nvolumes = ./z:/data ./y:/keep\n"
		"dns = 9.9.9.9\nlabels = l1=a l2=b\nhealth_cmd = true\nhealth_interval = 5s\n"
		"health_retries = 7\ndepends_on = db\n"
		"[service.db]\nimage = busybox\n[service.cache]\nimage = busybox\n");
	same(a, b);
	hutch_stack_free(a);
	hutch_stack_free(b);
}

static void test_find(void **state)
{
	assert_int_equal(mkdir("sub", 0755), 0);
	assert_int_equal(mkdir("sub/deeper", 0755), 0);
	put("docker-compose.yml", "services: {}\n");
	char **paths = NULL;
	size_t n = 0;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_stack_find("sub/deeper", &paths, &n, &err), 0);
	assert_int_equal(n, 1);
	char *want = xasprintf("%s/docker-compose.yml", tmpdir);
	char *real = realpath(tmpdir, NULL);
	char *want_real = xasprintf("%s/docker-compose.yml", real);
	assert_string_equal(paths[0], want_real);
	strv_free(paths, n);
	put("compose.yaml", "services: {}\n");
	put("compose.override.yaml", "services: {}\n");
	assert_int_equal(hutch_stack_find(NULL, &paths, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_non_null(strstr(paths[0], "/compose.yaml"));
	assert_non_null(strstr(paths[1], "/compose.override.yaml"));
	strv_free(paths, n);
	put("sub/hutch.ini", "[service.a]\nimage = a\n");
	assert_int_equal(hutch_stack_find("sub/deeper", &paths, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(paths[0], "/sub/hutch.ini"));
	strv_free(paths, n);
	/* hutch.ini wins over compose.yaml in one directory */
	put("hutch.ini", "[service.a]\nimage = a\n");
	assert_int_equal(hutch_stack_find(NULL, &paths, &n, &err), 0);
	assert_non_null(strstr(paths[0], "/hutch.ini"));
	strv_free(paths, n);
	free(want);
	free(real);
	free(want_real);
}

/* ---- interpolation ------------------------------------------------------------------- */

static void test_interpolation(void **state)
{
	put(".env", "FROM_DOTENV=dot\nFROM_ENV=loses\n");
	pair("name: shop\nservices:\n  a:\n    image: busybox\n    environment:\n"
	     "      - A=${FROM_ENV}\n      - B=${NOPE:-dflt}\n      - C=${EMPTY-keep}\n"
	     "      - D=${EMPTY:-dflt}\n      - E=${TAG:+alt}\n      - F=${NOPE:+alt}\n"
	     "      - G=$$HOME\n      - H=${FROM_DOTENV}\n      - I=$TAG\n"
	     "      - J=${NOPE:-${TAG}}\n",
	     "[stack]\nname = shop\n[service.a]\nimage = busybox\n"
	     "env = A=env-value B=dflt C= D=dflt E=alt F= G=$$HOME H=dot I=1.36 J=1.36\n");
	/* --env-file replaces .env */
	put("other.env", "FROM_DOTENV=other\n");
	put("compose.yaml", "name: shop\nservices:\n  a:\n    image: busybox\n"
			    "    environment: [\"H=${FROM_DOTENV}\"]\n");
	const char *names[] = {"compose.yaml"};
	const char *env_files[] = {"other.env"};
	struct hutch_stack_load_opts o = {.env_files = env_files, .n_env_files = 1};
	struct hutch_stack *s = compose_files(names, 1, &o);
	assert_string_equal(s->services[0].env[0], "H=other");
	hutch_stack_free(s);
	unlink(".env");
	/* an unset variable: empty, with a warning at its place */
	s = compose("services:\n  a:\n    image: busybox\n    hostname: x${NOPE}\n");
	size_t n = 0;
	const char *const *w = hutch_stack_warnings(s, &n);
	assert_int_equal(n, 1);
	assert_string_equal(w[0], "compose.yaml:4:15: services.a.hostname: variable NOPE is not "
				  "set: read as an empty string");
	hutch_stack_free(s);
}

/* ---- errors, all at once, each with file:line:column and the key path ----------------- */

static void test_errors(void **state)
{
	expect_error("services:\n  a:\n    image: busybox\n    healthcheck:\n"
		     "      test: [CMD, 'true']\n      interval: 5x\n",
		     "compose.yaml:6:17: services.a.healthcheck.interval: '5x' is not a "
		     "duration: write a number and a unit (ms, s, m, h), like 500ms, 5s, 1m30s "
		     "or 2h");
	expect_error("services:\n  a:\n    image: busybox\n    build:\n      context: .\n"
		     "      ssh: [default]\n",
		     "compose.yaml:6:7: services.a.build.ssh: not supported: hutch builds from "
		     "context, dockerfile, args and target only (or give --ignore-unsupported to "
		     "go on without it)");
	expect_error("services:\n  a:\n    image: busybox\n    imagee: x\n",
		     "compose.yaml:4:5: services.a.imagee: unknown key (did you mean 'image'?)");
	expect_error("services:\n  a:\n    image: busybox\n    frobnicate: x\n",
		     "compose.yaml:4:5: services.a.frobnicate: unknown key 'frobnicate' in a "
		     "service (docs/compose.md lists what hutch reads)");
	expect_error("services:\n  a:\n    image: busybox\n    restart: sometimes\n",
		     "compose.yaml:4:14: services.a.restart: 'sometimes' is not a restart policy: "
		     "use no, always, on-failure, on-failure:N or unless-stopped");
	expect_error("services:\n  a:\n    image: busybox\n    depends_on: [dbb]\n"
		     "  db:\n    image: busybox\n",
		     "compose.yaml:4:18: services.a.depends_on[0]: no service 'dbb' in this file "
		     "(did you mean 'db'?)");
	expect_error("services:\n  a:\n    image: busybox\n    depends_on:\n      db:\n"
		     "        condition: service_healthy\n  db:\n    image: busybox\n",
		     "compose.yaml:5:7: services.a.depends_on.db: 'db:healthy', but db has no "
		     "health check: give it a healthcheck: with a test");
	expect_error("services:\n  a:\n    image: busybox\n    depends_on:\n      db:\n"
		     "        condition: service_done\n  db:\n    image: busybox\n",
		     "compose.yaml:6:20: services.a.depends_on.db.condition: 'service_done' is "
		     "not a condition: use service_started, service_healthy or "
		     "service_completed_successfully");
	expect_error("services:\n  a:\n    image: busybox\n    depends_on: [b]\n"
		     "  b:\n    image: busybox\n    depends_on: [a]\n",
		     "compose.yaml:7:18: services.b.depends_on[0]: a dependency cycle: a -> b -> a "
		     "(no service can start first)");
	expect_error("services:\n  a:\n    image: ${REQ:?set REQ first}\n",
		     "compose.yaml:3:12: services.a.image: required variable REQ is unset or "
		     "empty: set REQ first");
	expect_error("services:\n  a:\n    image: busybox\n    ports: [\"80:x\"]\n",
		     "compose.yaml:4:12: services.a.ports: '80:x': the container port is not a "
		     "port (1-65535) or a range of them");
	expect_error("services:\n  a:\n    image: busybox\n    volumes: [data:/data]\n",
		     "compose.yaml:4:15: services.a.volumes[0]: named volume 'data' is not "
		     "declared: add it under the top-level volumes:");
	expect_error("services:\n  a:\n    image: busybox\n    networks: [front]\n",
		     "compose.yaml:4:16: services.a.networks[0]: network 'front' is not declared: "
		     "add it under the top-level networks:");
	expect_error("services:\n  a:\n    image: busybox\n    healthcheck:\n      interval: 1s\n",
		     "compose.yaml:5:7: services.a.healthcheck: no test: hutch does not run an "
		     "image's own HEALTHCHECK; give test: [\"CMD\", ...] or [\"CMD-SHELL\", "
		     "\"...\"]");
	expect_error("services:\n  a:\n    image: busybox\n    environment: 3\n",
		     "compose.yaml:4:18: services.a.environment: expected a list of NAME=VALUE or "
		     "a mapping, not text");
	expect_error("services:\n  a:\n    image: busybox\n    image: other\n",
		     "compose.yaml:4:5: 'image' is given twice in this mapping (first at line 3): "
		     "keep one");
	expect_error("services:\n  a:\n    image: busybox\n    command: *nope\n",
		     "compose.yaml:4:14: *nope: no anchor &nope before it");
	expect_error("services:\n  a: [\n", "compose.yaml:3:1: not YAML: did not find expected "
					    "node content while parsing a flow node");
	expect_error("services:\n  a:\n    command: x\n",
		     "compose.yaml:2:3: services.a: no image: add image: NAME (like image: "
		     "busybox), or build: DIR");
	expect_error("services:\n  a:\n    image: busybox\n  b c:\n    image: busybox\n",
		     "compose.yaml:4:3: services.b c: 'b c' is not a service name: use up to 63 "
		     "letters, digits, '_', '.' or '-', starting with a letter or digit");
	expect_error("services:\n  a:\n    image: busybox\n    read_only: maybe\n",
		     "compose.yaml:4:16: services.a.read_only: 'maybe' is not a boolean: use true "
		     "or false");
	expect_error("secrets: {}\nservices:\n  a:\n    image: busybox\n",
		     "compose.yaml:1:1: secrets: not supported: hutch has none: mount files with "
		     "volumes: (read_only) (or give --ignore-unsupported to go on without it)");
	expect_error("verison: '3'\nservices:\n  a:\n    image: busybox\n",
		     "compose.yaml:1:1: verison: unknown top-level key 'verison' (a compose file "
		     "has name, services, networks, volumes and x- extensions)");
	expect_error("services:\n  a:\n    image: busybox\n    profiles: [x]\n"
		     "  b:\n    image: busybox\n    depends_on: [a]\n",
		     "compose.yaml:7:18: services.b.depends_on[0]: 'a' is in profiles that are not "
		     "enabled: give --profile for one of them");
	expect_error(
	    "services:\n  a:\n    image: busybox\n    profiles: [x]\n"
	    "  b:\n    image: busybox\n    depends_on: {a: {condition: service_started}}\n",
	    "compose.yaml:7:18: services.b.depends_on.a: 'a' is in profiles that are not "
	    "enabled: give --profile for one of them");
	expect_error("- a\n", "compose.yaml:1:1: a compose file is a mapping (services: ...), "
			      "not a list");
	expect_error("", "compose.yaml:1:1: a compose file is a mapping (services: ...), not "
			 "empty");
	/* several at once, in the file's order, under a count */
	put("compose.yaml", "services:\n  a:\n    image: busybox\n    restart: never\n"
			    "    stop_grace_period: soon\n    cap_add: NET_ADMIN\n");
	const char *names[] = {"compose.yaml"};
	char *msg = compose_error(names, 1, NULL);
	assert_string_equal(
	    msg, "compose.yaml: 3 errors:\n"
		 "compose.yaml:4:14: services.a.restart: 'never' is not a restart policy: use "
		 "no, always, on-failure, on-failure:N or unless-stopped\n"
		 "compose.yaml:5:24: services.a.stop_grace_period: 'soon' is not a duration: "
		 "write a number and a unit (ms, s, m, h), like 500ms, 5s, 1m30s or 2h\n"
		 "compose.yaml:6:14: services.a.cap_add: expected a list, not text");
	free(msg);
	/* --ignore-unsupported: warnings instead */
	put("compose.yaml",
	    "services:\n  a:\n    image: busybox\n    stdin_open: true\n    tty: true\n");
	struct hutch_stack_load_opts o = {.ignore_unsupported = true};
	struct hutch_stack *s = compose_files(names, 1, &o);
	size_t n = 0;
	const char *const *w = hutch_stack_warnings(s, &n);
	assert_int_equal(n, 2);
	assert_non_null(strstr(w[1], "compose.yaml:5:5: services.a.tty: not supported, ignored: "));
	hutch_stack_free(s);
	/* an error in an override file names that file */
	put("compose.yaml", "services:\n  a:\n    image: busybox\n");
	put("over.yaml", "services:\n  a:\n    stop_signal: SIGINT\n    pids_limit: lots\n");
	const char *two[] = {"compose.yaml", "over.yaml"};
	struct hutch_stack *ok = compose_files(two, 2, NULL);
	/* pids are checked by the runtime's setter at up: the option's line is kept */
	const struct stack_option *pids = stack_service_option(&ok->services[0], "pids");
	assert_non_null(pids);
	assert_int_equal(pids->line, 4);
	hutch_stack_free(ok);
	put("over.yaml", "services:\n  a:\n    stop_grace_period: 5q\n");
	msg = compose_error(two, 2, NULL);
	assert_string_equal(msg, "over.yaml:3:24: services.a.stop_grace_period: '5q' is not a "
				 "duration: write a number and a unit (ms, s, m, h), like 500ms, "
				 "5s, 1m30s or 2h");
	free(msg);
}

/* build: a context, or a mapping of context, dockerfile, args (a mapping or a
 * list) and target: the INI keys build, dockerfile, build_args, target. */
static void test_build(void **state)
{
	struct hutch_stack *s = compose("name: proj\nservices:\n  api:\n    build: ./api\n"
					"  web:\n    image: w\n    build:\n      context: web\n"
					"      dockerfile: Dfile\n      args:\n        A: '1'\n"
					"        B:\n      target: t\n"
					"  list:\n    build:\n      args: [X=2, 'Y=a b']\n");
	const struct stack_service *api = &s->services[stack_service_index(s, "api")];
	const struct stack_service *web = &s->services[stack_service_index(s, "web")];
	const struct stack_service *list = &s->services[stack_service_index(s, "list")];
	assert_string_equal(api->image, "proj-api");
	assert_string_equal(api->build.context, "./api");
	assert_string_equal(web->image, "w");
	assert_string_equal(web->build.context, "web");
	assert_string_equal(web->build.dockerfile, "Dfile");
	assert_string_equal(web->build.target, "t");
	assert_int_equal(web->build.n_args, 2);
	assert_string_equal(web->build.args[0], "A=1");
	assert_string_equal(web->build.args[1], "B");
	assert_string_equal(list->image, "proj-list");
	assert_string_equal(list->build.context, ".");
	assert_int_equal(list->build.n_args, 2);
	assert_string_equal(list->build.args[1], "Y=a b");
	hutch_stack_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_command_entrypoint, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ports_expose, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_depends_health, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_container_options, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_networks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_profiles_and_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_anchors_merge_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_billion_laughs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_override_merge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interpolation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_build, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
