/* The compose reader (supervisor/compose.c, compose_yaml.c): arbitrary bytes
 * as a compose file, and the same bytes as an override file onto a fixed base,
 * through libyaml, anchors and merge keys (aliases bounded), the merge rules,
 * interpolation and the INI reader's own checks. A load either fails with a
 * message or gives a model that keeps its promises (as fuzz_stackfile's). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "supervisor/compose.h"
#include "supervisor/stack.h"
#include "tests/fuzz/stack_roundtrip.h"

static char *dir, *path, *base;

static void check_model(const struct hutch_stack *s)
{
	if (!s->name || !*s->name || s->n_services == 0 || !s->order)
		abort();
	size_t n = s->n_services;
	size_t *pos = xcalloc(n, sizeof(*pos));
	bool *seen = xcalloc(n, sizeof(*seen));
	for (size_t i = 0; i < n; i++) {
		if (s->order[i] >= n || seen[s->order[i]])
			abort();
		seen[s->order[i]] = true;
		pos[s->order[i]] = i;
	}
	for (size_t i = 0; i < n; i++) {
		const struct stack_service *svc = &s->services[i];
		if (!svc->image || !*svc->image || svc->replicas < 1 ||
		    svc->replicas > STACK_REPLICAS_MAX)
			abort();
		for (size_t d = 0; d < svc->n_deps; d++)
			if (svc->deps[d].index >= n || pos[svc->deps[d].index] >= pos[i] ||
			    strcmp(s->services[svc->deps[d].index].name, svc->deps[d].service))
				abort();
		/* every option of the model is one the INI reader knows */
		for (size_t o = 0; o < svc->n_options; o++)
			if (!svc->options[o].key)
				abort();
	}
	free(pos);
	free(seen);
}

static void remove_dir(void)
{
	const char *names[] = {"compose.yaml", "base.yaml", "roundtrip.ini", "db.env", ".env"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		unlink(p);
		free(p);
	}
	rmdir(dir);
}

static void put(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

static void load(const char *const *paths, size_t n)
{
	static char *envp[] = {"HOME=/root", "TAG=8", "EMPTY=", NULL};
	struct hutch_stack *stack = NULL;
	struct hutch_err *err = NULL;
	if (compose_load_env(paths, n, NULL, envp, &stack, &err) == 0) {
		if (err || !stack)
			abort();
		check_model(stack);
		char *rt = xasprintf("%s/roundtrip.ini", dir);
		roundtrip_check(stack, rt, envp);
		free(rt);
		hutch_stack_free(stack);
	} else if (!err || !err->msg || stack) {
		abort();
	}
	hutch_err_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir) {
		char tmpl[] = "/tmp/hutch-fuzz-compose-XXXXXX";
		if (!mkdtemp(tmpl))
			abort();
		dir = xstrdup(tmpl);
		atexit(remove_dir);
		path = xasprintf("%s/compose.yaml", dir);
		base = xasprintf("%s/base.yaml", dir);
		char *env = xasprintf("%s/db.env", dir), *dotenv = xasprintf("%s/.env", dir);
		put(env, "A=1\nexport B=\"two words\" # comment\n");
		put(dotenv, "TAG=7\nEMPTY=\n");
		put(base, "name: base\nservices:\n  db:\n    image: busybox\n"
			  "    environment: [A=1]\n    ports: [\"80:80\"]\n"
			  "    volumes: [data:/data]\n"
			  "    healthcheck: {test: [CMD, 'true']}\n"
			  "volumes:\n  data:\n");
		free(env);
		free(dotenv);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, data, size) < 0)
		abort();
	close(fd);
	const char *one[] = {path};
	load(one, 1);
	const char *two[] = {base, path};
	load(two, 2);
	return 0;
}
