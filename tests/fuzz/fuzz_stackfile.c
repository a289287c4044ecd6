/* The stack file reader (supervisor/stackfile.c): arbitrary bytes as a stack
 * file, through the line scan, iniparser, interpolation, shell words and the
 * dependency graph. A load either fails with a message or gives a model that
 * keeps its promises: services with an image, dependencies that point at
 * services, a start order that is a permutation with dependencies first. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "supervisor/stack.h"
#include "tests/fuzz/stack_roundtrip.h"

static char *dir, *path, *rt_path;

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
	}
	/* what `hutch up SERVICE` would start: the last service needs itself */
	const char *last = s->services[n - 1].name;
	size_t *need = NULL, n_need = 0;
	if (stack_graph_needed(s, &last, 1, &need, &n_need, NULL) < 0 || n_need == 0 ||
	    need[n_need - 1] != n - 1)
		abort();
	free(need);
	free(pos);
	free(seen);
}

static void remove_dir(void)
{
	const char *names[] = {"hutch.ini", "roundtrip.ini", "db.env", ".env"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		unlink(p);
		free(p);
	}
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir) {
		char tmpl[] = "/tmp/hutch-fuzz-stack-XXXXXX";
		if (!mkdtemp(tmpl))
			abort();
		dir = xstrdup(tmpl);
		atexit(remove_dir);
		path = xasprintf("%s/hutch.ini", dir);
		rt_path = xasprintf("%s/roundtrip.ini", dir);
		/* an env file and a .env for the inputs that name them */
		char *env = xasprintf("%s/db.env", dir), *dotenv = xasprintf("%s/.env", dir);
		FILE *f = fopen(env, "w");
		if (!f)
			abort();
		fputs("A=1\nexport B=\"two words\" # comment\nC='x#y'\n", f);
		fclose(f);
		f = fopen(dotenv, "w");
		if (!f)
			abort();
		fputs("TAG=7\nEMPTY=\n", f);
		fclose(f);
		free(env);
		free(dotenv);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, data, size) < 0)
		abort();
	close(fd);
	static char *envp[] = {"HOME=/root", "TAG=8", "EMPTY=", NULL};
	struct hutch_stack *stack = NULL;
	struct hutch_err *err = NULL;
	if (stack_load_env(path, envp, &stack, &err) == 0) {
		if (err || !stack)
			abort();
		check_model(stack);
		roundtrip_check(stack, rt_path, envp);
		hutch_stack_free(stack);
	} else if (!err || !err->msg || stack) {
		abort();
	}
	/* The line scan and iniparser must agree on every file the scan takes:
	 * else a line number could point at the wrong text. */
	if (stack_ini_disagreements((const char *)data, size) > 0)
		abort();
	hutch_err_free(&err);
	return 0;
}
