/* hutch up | down | with: a stack's lifecycle. The whole stack file is read and
 * every service's container spec built before anything starts; then a
 * supervisor (one process per stack, detached) runs the stack and the CLI
 * talks to it over its control socket (docs/api.md). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack_src.h"
#include "common/err.h"
#include "common/util.h"
#include "supervisor/supervisor.h"

static volatile sig_atomic_t interrupted;
static void on_interrupt(int sig)
{
	interrupted = sig;
}

int cli_up_interrupted(void)
{
	return interrupted;
}

/* Does the message start as a reader's does, "FILE:LINE: " or
 * "FILE:LINE:COLUMN: "? Whatever the file's name. */
static bool located(const char *msg)
{
	const char *end = strstr(msg, ": ");
	const char *nl = strchr(msg, '\n');
	if (!end || (nl && nl < end))
		return false;
	int numbers = 0;
	const char *p = end;
	while (p > msg && numbers < 2) {
		const char *q = p;
		while (q > msg && q[-1] >= '0' && q[-1] <= '9')
			q--;
		if (q == p || q == msg || q[-1] != ':')
			break;
		numbers++;
		p = q - 1;
	}
	return numbers > 0 && p > msg;
}

/* Each error line as the reader gives it ("FILE:LINE: KEY: message"). */
static void print_errors(const char *verb, struct hutch_err *err)
{
	const char *msg = err && err->msg ? err->msg : "unknown error";
	if (strchr(msg, '\n') || located(msg)) {
		fprintf(stderr, "%s%s%s\n", msg, err->errno_ ? ": " : "",
			err->errno_ ? strerror(err->errno_) : "");
		return;
	}
	fprintf(stderr, "hutch: %s: %s%s%s\n", verb, msg, err && err->errno_ ? ": " : "",
		err && err->errno_ ? strerror(err->errno_) : "");
}

void cli_stack_print_errors(const char *verb, struct hutch_err *err)
{
	print_errors(verb, err);
}

static void add(const char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

int cli_stack_opt(struct cli_stack_opts *o, int id, const char *v)
{
	switch (id) {
	case CLI_STACK_FILE:
		add(&o->files, &o->n_files, v);
		break;
	case CLI_STACK_PROJECT:
		o->project = v;
		break;
	case CLI_STACK_ENV_FILE:
		add(&o->env_files, &o->n_env_files, v);
		break;
	case CLI_STACK_PROFILE:
		add(&o->profiles, &o->n_profiles, v);
		break;
	case CLI_STACK_IGNORE_UNSUPPORTED:
		o->ignore_unsupported = true;
		break;
	}
	return 0;
}

void cli_stack_opts_fini(struct cli_stack_opts *o)
{
	free(o->files);
	free(o->env_files);
	free(o->profiles);
	hutch_stack_src_fini(&o->src);
}

static void src_add(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

/* The source the supervisor gets too: absolute paths (it runs in /), and
 * COMPOSE_PROFILES as profiles given (a `stack restore` from another shell
 * reads the same services). COMPOSE_PROJECT_NAME becomes -p once the name is
 * known. */
static int resolve_src(const char *verb, struct cli_stack_opts *o)
{
	struct hutch_stack_src *src = &o->src;
	hutch_stack_src_fini(src);
	if (o->n_files == 0) {
		_cleanup_err_ struct hutch_err *err = NULL;
		if (hutch_stack_find(NULL, &src->files, &src->n_files, &err) < 0) {
			print_errors(verb, err);
			return 1;
		}
	}
	for (size_t i = 0; i < o->n_files; i++) {
		char *abs = realpath(o->files[i], NULL);
		if (!abs) {
			_cleanup_free_ char *shown = cli_shown(o->files[i]);
			fprintf(stderr, "hutch: %s: %s: %s\n", verb, shown, strerror(errno));
			return 1;
		}
		src_add(&src->files, &src->n_files, abs);
	}
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	for (size_t i = 0; i < o->n_env_files; i++) {
		const char *f = o->env_files[i];
		src_add(&src->env_files, &src->n_env_files,
			f[0] == '/' || !cwd ? xstrdup(f) : xasprintf("%s/%s", cwd, f));
	}
	for (size_t i = 0; i < o->n_profiles; i++)
		src_add(&src->profiles, &src->n_profiles, xstrdup(o->profiles[i]));
	const char *env = getenv("COMPOSE_PROFILES");
	if (!o->n_profiles && env) {
		_cleanup_free_ char *copy = xstrdup(env);
		char *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			src_add(&src->profiles, &src->n_profiles, xstrdup(t));
	}
	src->project_name = o->project ? xstrdup(o->project) : NULL;
	src->ignore_unsupported = o->ignore_unsupported;
	return 0;
}

int cli_stack_load(struct cli_ctx *ctx, const char *verb, struct cli_stack_opts *o,
		   struct hutch_stack **out)
{
	*out = NULL;
	if (resolve_src(verb, o))
		return 1;
	_cleanup_err_ struct hutch_err *err = NULL;
	if (hutch_stack_load_src(&o->src, out, &err) < 0) {
		print_errors(verb, err);
		return 1;
	}
	if (!o->src.project_name)
		o->src.project_name = xstrdup(hutch_stack_name(*out));
	size_t nw = 0;
	const char *const *w = hutch_stack_warnings(*out, &nw);
	for (size_t i = 0; i < nw && !ctx->quiet; i++)
		fprintf(stderr, "%s\n", w[i]);
	return 0;
}

/* Start the stack's supervisor detached: its own session, / as its directory,
 * no fd of ours but the ready pipe, its output to its log. Returns when its
 * control socket listens (0) or it failed (its message printed: 1). */
int cli_stack_spawn(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack,
		    const struct hutch_stack_src *src, char *const *services, size_t n,
		    bool adopt_only)
{
	const char *name = hutch_stack_name(stack);
	_cleanup_free_ char *log = hutch_stack_log_path(ctx->data_root, name);
	_cleanup_free_ char *logdir = xstrdup(log);
	*strrchr(logdir, '/') = '\0';
	struct hutch_err *err = NULL;
	if (mkdir_p_at(AT_FDCWD, logdir, 0700, &err) < 0) {
		print_errors(verb, err);
		hutch_err_free(&err);
		return 1;
	}
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0) {
		fprintf(stderr, "hutch: %s: pipe: %s\n", verb, strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hutch: %s: fork: %s\n", verb, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setsid();
		if (chdir("/") < 0)
			_exit(125);
		int devnull = open("/dev/null", O_RDWR);
		int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (devnull < 0 || logfd < 0)
			_exit(125);
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		int fd = dup(ready[1]); /* without O_CLOEXEC: it crosses the exec */
		int keep[] = {fd};
		close_fds_except(keep, 1);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		char fdtext[16];
		snprintf(fdtext, sizeof(fdtext), "%d", fd);
		const char **args =
		    xcalloc(n + 16 + 2 * (src->n_files + src->n_env_files + src->n_profiles),
			    sizeof(char *));
		size_t a = 0;
		args[a++] = "hutch";
		args[a++] = "__supervise";
		args[a++] = "--data-root";
		args[a++] = ctx->data_root;
		args[a++] = "--run-root";
		args[a++] = ctx->run_root;
		args[a++] = "--ready-fd";
		args[a++] = fdtext;
		if (adopt_only)
			args[a++] = "--adopt-only";
		for (size_t i = 0; i < src->n_files; i++) {
			args[a++] = "--file";
			args[a++] = src->files[i];
		}
		if (src->project_name) {
			args[a++] = "--project-name";
			args[a++] = src->project_name;
		}
		for (size_t i = 0; i < src->n_env_files; i++) {
			args[a++] = "--env-file";
			args[a++] = src->env_files[i];
		}
		for (size_t i = 0; i < src->n_profiles; i++) {
			args[a++] = "--profile";
			args[a++] = src->profiles[i];
		}
		if (src->ignore_unsupported)
			args[a++] = "--ignore-unsupported";
		args[a++] = "--";
		for (size_t i = 0; i < n; i++)
			args[a++] = services[i];
		execv("/proc/self/exe", (char **)args);
		_exit(127);
	}
	close(ready[1]);
	char buf[4096];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(buf) - 1 &&
	       (r = read(ready[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		got += (size_t)r;
	}
	close(ready[0]);
	buf[got] = '\0';
	if (!strncmp(buf, "OK\n", 3))
		return 0;
	/* it failed and exited: collect it */
	waitpid(pid, NULL, 0);
	if (!got)
		fprintf(stderr,
			"hutch: %s: the supervisor of stack %s died while starting (see %s)\n",
			verb, name, log);
	else
		fprintf(stderr, "hutch: %s: %s\n", verb, buf);
	return 1;
}

/* Is there a supervisor? If not, start one that adopts the stack's containers
 * (after a SIGKILL of the last one), when the stack has any. 0: running; 1:
 * failed (said); 2: nothing of the stack runs. */
int cli_stack_ensure(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack)
{
	const char *name = hutch_stack_name(stack);
	if (hutch_stack_supervisor(ctx->data_root, ctx->run_root, name) > 0)
		return 0;
	struct hutch_stack_info *info = NULL;
	size_t n = 0;
	int rc = 2;
	/* the new supervisor reads the stack as `up` was given it (stack.json) */
	if (hutch_stack_list(ctx->data_root, ctx->run_root, &info, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			if (!strcmp(info[i].name, name) && info[i].up)
				rc = cli_stack_spawn(ctx, verb, stack, &info[i].src, NULL, 0, true);
	hutch_stack_info_free(info, n);
	return rc;
}

struct reply {
	bool ok;
	char *error;
	struct json_object *obj; /* kept when wanted */
	bool keep;
};

static int on_reply(const char *line, void *data)
{
	struct reply *r = data;
	struct json_object *o = json_tokener_parse(line);
	if (!o)
		return 0;
	struct json_object *ok = NULL, *e = NULL;
	/* events are not replies */
	if (!json_object_object_get_ex(o, "ok", &ok)) {
		json_object_put(o);
		return 0;
	}
	r->ok = json_object_get_boolean(ok);
	if (json_object_object_get_ex(o, "error", &e))
		r->error = xstrdup(json_object_get_string(e));
	if (r->keep)
		r->obj = o;
	else
		json_object_put(o);
	return 1;
}

/* One request, one reply. 0 ok, 1 error (said, unless quiet_err), 2 timeout,
 * 3 interrupted. */
int cli_stack_call(struct cli_ctx *ctx, const char *verb, const char *name, const char *req,
		   int timeout_ms, struct json_object **out, char **errmsg)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	int fd = hutch_stack_connect(ctx->run_root, name, &err);
	if (fd < 0) {
		if (errmsg)
			*errmsg = xstrdup(err->msg);
		else
			print_errors(verb, err);
		return 1;
	}
	struct reply r = {.keep = out != NULL};
	int rc = hutch_stack_request(fd, req, timeout_ms, on_reply, &r, &err);
	close(fd);
	if (rc < 0) {
		print_errors(verb, err);
		return 1;
	}
	if (rc == 1 && !r.ok && !r.error && !r.obj && timeout_ms >= 0)
		return 2;
	if (rc == 2)
		return 3;
	if (rc == 0) {
		const char *m = "the supervisor closed the connection without an answer";
		if (errmsg)
			*errmsg = xstrdup(m);
		else
			fprintf(stderr, "hutch: %s: %s\n", verb, m);
		return 1;
	}
	if (!r.ok) {
		if (errmsg)
			*errmsg = r.error ? r.error : xstrdup("failed");
		else {
			fprintf(stderr, "hutch: %s: %s\n", verb, r.error ? r.error : "failed");
			free(r.error);
		}
		json_object_put(r.obj);
		return 1;
	}
	free(r.error);
	if (out)
		*out = r.obj;
	return 0;
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until pid (a supervisor, maybe not our child) has gone. */
static void wait_gone(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return;
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	poll(&p, 1, timeout_ms);
	/* our child (started by this command): reap it */
	waitid((idtype_t)3 /* P_PIDFD */, (id_t)pfd, &(siginfo_t){0}, WEXITED | WNOHANG);
	close(pfd);
}

/* ---- up --------------------------------------------------------------------- */

enum up_build { UP_BUILD_STALE, UP_BUILD_ALWAYS, UP_BUILD_NEVER };

struct up_opts {
	struct cli_stack_opts st;
	bool detach, wait;
	double wait_timeout; /* s; <= 0: none */
	bool no_color;
	enum up_build build;
};

static int parse_secs(const char *verb, const char *opt, const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= 0) || d > 31536000) {
		fprintf(stderr, "hutch: %s: invalid %s '%s': a number of seconds expected\n", verb,
			opt, v);
		return -1;
	}
	*out = d;
	return 0;
}

enum { UP_DETACH, UP_WAIT, UP_WAIT_TIMEOUT, UP_HELP, UP_NO_COLOR, UP_BUILD, UP_NO_BUILD };
static const struct cli_opt up_options[] = {
    CLI_STACK_OPTIONS,
    {"detach", 'd', false, UP_DETACH},
    {"wait", 0, false, UP_WAIT},
    {"wait-timeout", 0, true, UP_WAIT_TIMEOUT},
    {"no-color", 0, false, UP_NO_COLOR},
    {"build", 0, false, UP_BUILD},
    {"no-build", 0, false, UP_NO_BUILD},
};

static int up_set(void *arg, int id, const char *v)
{
	struct up_opts *o = arg;
	if (id >= CLI_STACK_FILE)
		return cli_stack_opt(&o->st, id, v);
	switch (id) {
	case UP_DETACH:
		o->detach = true;
		break;
	case UP_WAIT:
		o->wait = true;
		break;
	case UP_WAIT_TIMEOUT:
		return parse_secs("up", "--wait-timeout", v, &o->wait_timeout);
	case UP_NO_COLOR:
		o->no_color = true;
		break;
	case UP_BUILD:
	case UP_NO_BUILD:
		if (o->build != UP_BUILD_STALE &&
		    o->build != (id == UP_BUILD ? UP_BUILD_ALWAYS : UP_BUILD_NEVER)) {
			fprintf(stderr, "hutch: up: --build and --no-build: give one of them\n");
			return -1;
		}
		o->build = id == UP_BUILD ? UP_BUILD_ALWAYS : UP_BUILD_NEVER;
		break;
	}
	return 0;
}

/* ---- builds: services with build = ------------------------------------------ */

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* One service's build, in a child whose output (stdout and stderr) comes here
 * and goes to stderr, where up's messages go, each line after "SERVICE | ".
 * Unless verbose, a build whose every step is cached (nothing was stale) says
 * one line instead of its steps. 0, or 1 (said). */
static int build_service(struct cli_ctx *ctx, const struct hutch_stack_build *b, bool verbose)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "hutch: up: build %s: pipe: %s\n", b->service, strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hutch: up: build %s: fork: %s\n", b->service, strerror(errno));
		close(p[0]);
		close(p[1]);
		return 1;
	}
	if (pid == 0) {
		if (dup2(p[1], STDOUT_FILENO) < 0 || dup2(p[1], STDERR_FILENO) < 0)
			_exit(125);
		setvbuf(stdout, NULL, _IOLBF, 0);
		struct cli_build cb = {
		    .context = b->context,
		    .file = b->dockerfile,
		    .file_in_context = true,
		    .target = b->target,
		    .build_args = (const char *const *)b->args,
		    .n_build_args = b->n_args,
		    .tags = &b->image,
		    .n_tags = 1,
		};
		_exit(cli_build_run(ctx, &cb));
	}
	close(p[1]);
	FILE *in = fdopen(p[0], "r");
	char *line = NULL, **held = NULL;
	size_t cap = 0, n_held = 0;
	bool streaming = verbose && !ctx->quiet;
	while (in && getline(&line, &cap, in) >= 0) {
		line[strcspn(line, "\n")] = '\0';
		bool routine = starts(line, "STEP ") || !strcmp(line, "--> CACHED") ||
			       starts(line, "Successfully ");
		if (!streaming && (routine || ctx->quiet)) {
			held = xrealloc(held, (n_held + 1) * sizeof(*held));
			held[n_held++] = xstrdup(line);
			continue;
		}
		if (!streaming) { /* a step runs: what led to it, then everything */
			for (size_t i = 0; i < n_held; i++)
				fprintf(stderr, "%s | %s\n", b->service, held[i]);
			streaming = true;
		}
		fprintf(stderr, "%s | %s\n", b->service, line);
	}
	free(line);
	if (in)
		fclose(in);
	else
		close(p[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!ok && !streaming)
		for (size_t i = 0; i < n_held; i++)
			fprintf(stderr, "%s | %s\n", b->service, held[i]);
	else if (ok && !streaming && !ctx->quiet)
		fprintf(stderr, "%s | image %s is up to date (every build step cached)\n",
			b->service, b->image);
	for (size_t i = 0; i < n_held; i++)
		free(held[i]);
	free(held);
	if (!ok) {
		fprintf(stderr, "hutch: up: building the image of service %s failed\n", b->service);
		return 1;
	}
	return 0;
}

/* Build the images of the stack's services with build = (docs/build.md): by
 * default each one, from the cache: a rebuild whose steps are all cached costs
 * little and says so in a line, and one with a changed input rebuilds from the
 * step that changed; --build shows every step; --no-build builds nothing. */
static int up_build_images(struct cli_ctx *ctx, const struct hutch_stack *stack, enum up_build how)
{
	if (how == UP_BUILD_NEVER)
		return 0;
	for (size_t i = 0; i < hutch_stack_n_services(stack); i++) {
		struct hutch_stack_build b;
		if (hutch_stack_service_build(stack, i, &b) &&
		    build_service(ctx, &b, how == UP_BUILD_ALWAYS) != 0)
			return 1;
	}
	return 0;
}

/* up --wait: until the stack is up, failed, or the timeout. 0, or 1 (said). */
static int wait_ready(struct cli_ctx *ctx, const char *verb, const char *name, double timeout)
{
	char *why = NULL;
	int tmo = timeout > 0 ? (int)(timeout * 1000) : -1;
	int rc = cli_stack_call(ctx, verb, name, "{\"cmd\":\"wait\"}", tmo, NULL, &why);
	if (rc == 0)
		return 0;
	if (rc == 1) {
		/* why may quote a probe's output: what a container said */
		_cleanup_free_ char *shown = cli_shown(why);
		fprintf(stderr, "hutch: %s: stack %s is not up: %s\n", verb, name, shown);
		free(why);
		return 1;
	}
	free(why);
	if (rc == 3) {
		fprintf(stderr, "hutch: %s: interrupted while waiting for stack %s\n", verb, name);
		return 1;
	}
	/* timed out: why, in the supervisor's words */
	struct json_object *o = NULL;
	const char *w = "unknown";
	if (cli_stack_call(ctx, verb, name, "{\"cmd\":\"ready\"}", 5000, &o, NULL) == 0) {
		struct json_object *v = NULL;
		if (json_object_object_get_ex(o, "why", &v))
			w = json_object_get_string(v);
	}
	_cleanup_free_ char *shown = cli_shown(w);
	fprintf(stderr, "hutch: %s: stack %s is not up after %gs: %s\n", verb, name, timeout,
		shown);
	json_object_put(o);
	return 1;
}

/* Ask the running supervisor to hand over to a new one (a changed file):
 * it exits, leaving the containers running. */
static int handover(struct cli_ctx *ctx, const char *verb, const char *name, pid_t pid)
{
	if (cli_stack_call(ctx, verb, name, "{\"cmd\":\"up\"}", 30000, NULL, NULL) != 0)
		return 1;
	wait_gone(pid, 10000);
	return 0;
}

/* Take the stack down: through its supervisor, or without one. */
static int stack_down_named(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack,
			    const char *name, double t);

int cli_stack_down(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack, double t)
{
	return stack_down_named(ctx, verb, stack, hutch_stack_name(stack), t);
}

/* stack may be NULL (a file that no longer loads): then by name only. */
static int stack_down_named(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack,
			    const char *name, double t)
{
	pid_t pid = hutch_stack_supervisor(ctx->data_root, ctx->run_root, name);
	if (pid > 0) {
		_cleanup_free_ char *req = t >= 0
					       ? xasprintf("{\"cmd\":\"down\",\"timeout\":%g}", t)
					       : xstrdup("{\"cmd\":\"down\"}");
		char *why = NULL;
		/* a supervisor that does not finish in 10 minutes is stuck: take
		 * the stack down without it */
		int rc = cli_stack_call(ctx, verb, name, req, 600000, NULL, &why);
		if (rc == 2) {
			fprintf(stderr,
				"hutch: %s: the supervisor (pid %d) did not finish: killing it and "
				"taking the stack down without it\n",
				verb, pid);
			kill(pid, SIGKILL);
			wait_gone(pid, 5000);
		}
		if (rc == 0 || rc == 1) {
			if (rc == 1 &&
			    hutch_stack_supervisor(ctx->data_root, ctx->run_root, name) > 0) {
				fprintf(stderr, "hutch: %s: %s\n", verb, why);
				free(why);
				return 1;
			}
			free(why);
			wait_gone(pid, 30000);
			if (hutch_stack_supervisor(ctx->data_root, ctx->run_root, name) <= 0)
				return 0;
		}
		/* the supervisor died on the way: finish without it */
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	if (hutch_stack_down_offline(ctx->data_root, ctx->run_root, ctx->rootless, stack, name,
				     t >= 0 ? (int)t : -1, &err) < 0) {
		print_errors(verb, err);
		return 1;
	}
	return 0;
}

int cli_stack_logs_follow(struct cli_ctx *ctx, struct hutch_stack *stack, char *const *services,
			  size_t n, bool follow, long tail, bool color, bool timestamps,
			  bool until_down);

int cmd_up(struct cli_ctx *ctx, int argc, char **argv)
{
	struct up_opts o = {0};
	int i = cli_parse_opts(
	    "up",
	    "Usage: hutch up [-f FILE]... [-p NAME] [-d] [--wait] [--wait-timeout S] "
	    "[--build|--no-build] "
	    "[SERVICE...]\n"
	    "\n" CLI_STACK_USAGE "  -d, --detach          return once the stack's supervisor runs\n"
	    "      --wait            return when the stack is up (or say why not)\n"
	    "      --wait-timeout S  give up waiting after S seconds\n"
	    "      --no-color        no colors in the foreground's logs\n"
	    "      --build           build the images of services with build = (every\n"
	    "                        step shown; the default builds from the cache too)\n"
	    "      --no-build        build nothing: use the images there are\n"
	    "  SERVICE...            only these and what they depend on\n"
	    "Without -d: the services' logs until Ctrl-C, which takes the stack "
	    "down.\n",
	    up_options, ARRAY_SIZE(up_options), true, argc, argv, up_set, &o);
	if (i < 0) {
		cli_stack_opts_fini(&o.st);
		return i == -2 ? 0 : 125;
	}
	if (o.wait)
		o.detach = true;
	struct hutch_stack *stack = NULL;
	int rc = cli_stack_load(ctx, "up", &o.st, &stack);
	if (rc) {
		cli_stack_opts_fini(&o.st);
		return rc;
	}
	const char *name = hutch_stack_name(stack);
	_cleanup_err_ struct hutch_err *err = NULL;
	rc = up_build_images(ctx, stack, o.build);
	if (rc)
		goto out;
	if (hutch_stack_check(stack, ctx->data_root, ctx->run_root, ctx->rootless, &err) < 0) {
		print_errors("up", err);
		rc = 1;
		goto out;
	}
	/* a container of `hutch run --restart|--health-cmd` is supervised as a stack
	 * named as it is, with its file there (cli/run.c): another file would
	 * remove it as "no longer in the file" */
	char *run_ini = xasprintf("%s/stacks/%s/hutch.ini", ctx->data_root, name);
	bool taken = access(run_ini, F_OK) == 0 && strcmp(run_ini, hutch_stack_file(stack));
	free(run_ini);
	if (taken) {
		fprintf(stderr,
			"hutch: up: the stack name '%s' is taken by container %s (run with "
			"--restart or --health-cmd, supervised as a stack of that name): give "
			"this stack another name (-p NAME, or name = in [stack])\n",
			name, name);
		rc = 1;
		goto out;
	}
	for (int k = i; k < argc; k++) {
		bool known = false;
		for (size_t s = 0; s < hutch_stack_n_services(stack); s++)
			known |= !strcmp(hutch_stack_service_name(stack, s), argv[k]);
		if (!known) {
			fprintf(stderr, "hutch: up: no service '%s' in %s\n", argv[k],
				hutch_stack_file(stack));
			rc = 1;
			goto out;
		}
	}
	pid_t pid = hutch_stack_supervisor(ctx->data_root, ctx->run_root, name);
	if (pid > 0) {
		char *changed = NULL, *removed = NULL;
		if (!ctx->quiet && hutch_stack_diff(stack, ctx->data_root, ctx->run_root,
						    ctx->rootless, &changed, &removed, NULL) == 0) {
			fprintf(stderr, "stack %s is up: applying %s\n", name,
				hutch_stack_file(stack));
			if (changed)
				fprintf(stderr, "recreating (settings changed): %s\n", changed);
			if (removed)
				fprintf(stderr, "removing (no longer in the file): %s\n", removed);
			if (!changed && !removed)
				fprintf(stderr, "nothing changed\n");
		}
		free(changed);
		free(removed);
		if (handover(ctx, "up", name, pid) != 0) {
			rc = 1;
			goto out;
		}
	}
	rc = cli_stack_spawn(ctx, "up", stack, &o.st.src, argv + i, (size_t)(argc - i), false);
	if (rc)
		goto out;
	if (o.detach) {
		if (o.wait) {
			rc = wait_ready(ctx, "up", name, o.wait_timeout);
			if (rc == 0 && !ctx->quiet)
				fprintf(stderr, "stack %s is up\n", name);
		}
		goto out;
	}
	/* foreground: the services' logs until Ctrl-C, which takes the stack down */
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool color = isatty(STDOUT_FILENO) && !o.no_color && !getenv("NO_COLOR");
	cli_stack_logs_follow(ctx, stack, argv + i, (size_t)(argc - i), true, -1, color, false,
			      true);
	if (interrupted) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (!ctx->quiet)
			fprintf(stderr, "\ntaking stack %s down\n", name);
		rc = cli_stack_down(ctx, "up", stack, -1);
	}
out:
	hutch_stack_free(stack);
	cli_stack_opts_fini(&o.st);
	return rc;
}

/* ---- down ------------------------------------------------------------------- */

/* The stack that was brought up from file (by its path), or NULL. */
static char *stack_of_file(struct cli_ctx *ctx, const char *file)
{
	char abs[PATH_MAX];
	if (!realpath(file, abs))
		return NULL;
	struct hutch_stack_info *v = NULL;
	size_t n = 0;
	char *name = NULL;
	if (hutch_stack_list(ctx->data_root, ctx->run_root, &v, &n, NULL) == 0)
		for (size_t i = 0; i < n && !name; i++)
			if (!strcmp(v[i].file, abs) && (v[i].up || v[i].supervisor > 0))
				name = xstrdup(v[i].name);
	hutch_stack_info_free(v, n);
	return name;
}

struct down_opts {
	struct cli_stack_opts st;
	double t;
	bool volumes;
};
enum { DOWN_T, DOWN_VOLUMES };
static const struct cli_opt down_options[] = {
    CLI_STACK_OPTIONS,
    {"timeout", 't', true, DOWN_T},
    {"volumes", 'v', false, DOWN_VOLUMES},
};

static int down_set(void *arg, int id, const char *v)
{
	struct down_opts *o = arg;
	if (id >= CLI_STACK_FILE)
		return cli_stack_opt(&o->st, id, v);
	switch (id) {
	case DOWN_T:
		return parse_secs("down", cli_opt_given(), v, &o->t);
	case DOWN_VOLUMES:
		o->volumes = true;
		break;
	}
	return 0;
}

int cmd_down(struct cli_ctx *ctx, int argc, char **argv)
{
	struct down_opts o = {.t = -1};
	int i = cli_parse_opts(
	    "down",
	    "Usage: hutch down [-f FILE]... [-p NAME] [-t SECS] [--volumes]\n"
	    "\n" CLI_STACK_USAGE
	    "  -t, --timeout SECS    grace before SIGKILL (default: each service's)\n"
	    "  -v, --volumes         remove the stack's named volumes too\n",
	    down_options, ARRAY_SIZE(down_options), true, argc, argv, down_set, &o);
	if (i < 0) {
		cli_stack_opts_fini(&o.st);
		return i == -2 ? 0 : 125;
	}
	if (i < argc) {
		_cleanup_free_ char *shown = cli_shown(argv[i]);
		fprintf(stderr,
			"hutch: down: unexpected argument '%s' (down [-f FILE] [-t SECS] "
			"[--volumes])\n",
			shown);
		cli_stack_opts_fini(&o.st);
		return 125;
	}
	struct hutch_stack *stack = NULL;
	_cleanup_free_ char *name = NULL;
	int rc = cli_stack_load(ctx, "down", &o.st, &stack);
	if (rc) {
		/* a file edited into errors while its stack is up must not keep the
		 * stack up: the stack that was brought up from this file goes */
		name = o.st.src.n_files ? stack_of_file(ctx, o.st.src.files[0]) : NULL;
		if (!name) {
			cli_stack_opts_fini(&o.st);
			return rc;
		}
		fprintf(stderr, "hutch: down: taking down stack %s, brought up from this file\n",
			name);
	} else {
		name = xstrdup(hutch_stack_name(stack));
	}
	rc = stack_down_named(ctx, "down", stack, name, o.t);
	if (rc == 0 && o.volumes) {
		_cleanup_err_ struct hutch_err *err = NULL;
		if (hutch_stack_remove_volumes(ctx->data_root, name, &err) < 0) {
			print_errors("down", err);
			rc = 1;
		}
	}
	if (rc == 0 && !ctx->quiet)
		fprintf(stderr, "stack %s is down\n", name);
	hutch_stack_free(stack);
	cli_stack_opts_fini(&o.st);
	return rc;
}

/* ---- with ------------------------------------------------------------------- */

struct with_opts {
	struct cli_stack_opts st;
	double timeout;
	double wait_timeout;
};
enum { WITH_TIMEOUT, WITH_WAIT_TIMEOUT };
static const struct cli_opt with_options[] = {
    CLI_STACK_OPTIONS,
    {"timeout", 0, true, WITH_TIMEOUT},
    {"wait-timeout", 0, true, WITH_WAIT_TIMEOUT},
};

static int with_set(void *arg, int id, const char *v)
{
	struct with_opts *o = arg;
	if (id >= CLI_STACK_FILE)
		return cli_stack_opt(&o->st, id, v);
	switch (id) {
	case WITH_TIMEOUT:
		return parse_secs("with", "--timeout", v, &o->timeout);
	case WITH_WAIT_TIMEOUT:
		return parse_secs("with", "--wait-timeout", v, &o->wait_timeout);
	}
	return 0;
}

/* Run CMD on the host in its own process group; its status as a shell gives
 * it (128+N for a signal), 124 after --timeout, or 128+N when we got signal N. */
static int run_cmd(char **cmd, double timeout)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hutch: with: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		setpgid(0, 0);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "hutch: with: %s: %s\n", cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	setpgid(pid, pid);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int64_t deadline = timeout > 0 ? ms_now() + (int64_t)(timeout * 1000) : -1;
	int got_sig = 0;
	bool timed_out = false;
	int64_t kill_at = -1;
	for (;;) {
		struct pollfd p[2] = {{.fd = pfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		int wait = -1;
		int64_t next = deadline;
		if (kill_at >= 0 && (next < 0 || kill_at < next))
			next = kill_at;
		if (next >= 0) {
			int64_t left = next - ms_now();
			wait = left > 0 ? (int)left : 0;
		}
		int n = poll(p, 2, wait);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (p[0].revents & POLLIN))
			break;
		if (n > 0 && (p[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				got_sig = (int)si.ssi_signo;
				kill(-pid, (int)si.ssi_signo);
				if (kill_at < 0)
					kill_at = ms_now() + 10000;
			}
			continue;
		}
		int64_t now = ms_now();
		if (deadline >= 0 && now >= deadline && !timed_out) {
			timed_out = true;
			fprintf(stderr,
				"hutch: with: the command ran past --timeout %gs: stopping it\n",
				timeout);
			kill(-pid, SIGTERM);
			kill_at = now + 5000;
			deadline = -1;
		} else if (kill_at >= 0 && now >= kill_at) {
			kill(-pid, SIGKILL);
			kill_at = -1;
		}
	}
	int status = 0;
	waitpid(pid, &status, 0);
	/* whatever the command left in its group goes too */
	kill(-pid, SIGKILL);
	if (pfd >= 0)
		close(pfd);
	close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (timed_out)
		return 124;
	if (got_sig)
		return 128 + got_sig;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int with_run(struct cli_ctx *ctx, struct with_opts *op, int argc, char **argv, int i);

int cmd_with(struct cli_ctx *ctx, int argc, char **argv)
{
	struct with_opts o = {0};
	int i = cli_parse_opts(
	    "with",
	    "Usage: hutch with [-f FILE]... [-p NAME] [--timeout S] -- CMD [ARG...]\n"
	    "\n" CLI_STACK_USAGE "      --timeout S       stop CMD after S seconds (exit 124)\n"
	    "      --wait-timeout S  give up waiting for the stack after S seconds\n"
	    "Brings the stack up (as up --wait), runs CMD, takes the stack down; "
	    "exits with CMD's status.\n",
	    with_options, ARRAY_SIZE(with_options), false, argc, argv, with_set, &o);
	if (i < 0) {
		cli_stack_opts_fini(&o.st);
		return i == -2 ? 0 : 125;
	}
	int rc = with_run(ctx, &o, argc, argv, i);
	cli_stack_opts_fini(&o.st);
	return rc;
}

static int with_run(struct cli_ctx *ctx, struct with_opts *op, int argc, char **argv, int i)
{
	struct with_opts o = *op;
	if (i >= argc) {
		fprintf(stderr, "hutch: with: give a command to run (hutch with [-f FILE] "
				"[--timeout S] -- CMD [ARG...])\n");
		return 125;
	}
	struct hutch_stack *stack = NULL;
	int rc = cli_stack_load(ctx, "with", &op->st, &stack);
	if (rc)
		return rc;
	const char *name = hutch_stack_name(stack);
	_cleanup_err_ struct hutch_err *err = NULL;
	if (up_build_images(ctx, stack, UP_BUILD_STALE) != 0) {
		hutch_stack_free(stack);
		return 1;
	}
	if (hutch_stack_check(stack, ctx->data_root, ctx->run_root, ctx->rootless, &err) < 0) {
		print_errors("with", err);
		hutch_stack_free(stack);
		return 1;
	}
	pid_t pid = hutch_stack_supervisor(ctx->data_root, ctx->run_root, name);
	if (pid > 0) {
		fprintf(
		    stderr,
		    "hutch: with: stack %s is already up: 'with' brings a stack up and takes it "
		    "down; run 'hutch down' first, or run the command yourself\n",
		    name);
		hutch_stack_free(stack);
		return 1;
	}
	/* SIGINT/SIGTERM while the stack comes up: note it, and take it down */
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	rc = cli_stack_spawn(ctx, "with", stack, &op->st.src, NULL, 0, false);
	if (rc == 0 && !interrupted)
		rc = wait_ready(ctx, "with", name, o.wait_timeout > 0 ? o.wait_timeout : 0);
	if (rc == 0 && !interrupted)
		rc = run_cmd(argv + i, o.timeout);
	else if (interrupted)
		rc = 128 + interrupted;
	else
		rc = 1;
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (cli_stack_down(ctx, "with", stack, -1) != 0 && rc == 0)
		rc = 1;
	hutch_stack_free(stack);
	return rc;
}

/* ---- the supervisor itself (hutch __supervise, started by up) ----------------- */

int cmd_supervise(struct cli_ctx *ctx, int argc, char **argv)
{
	struct hutch_sup_opts o = {.ready_fd = -1, .rootless = ctx->rootless};
	struct hutch_stack_src src = {0};
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!strcmp(argv[i], "--file") && i + 1 < argc) {
			src_add(&src.files, &src.n_files, xstrdup(argv[++i]));
			continue;
		}
		if (!strcmp(argv[i], "--project-name") && i + 1 < argc) {
			free(src.project_name);
			src.project_name = xstrdup(argv[++i]);
			continue;
		}
		if (!strcmp(argv[i], "--env-file") && i + 1 < argc) {
			src_add(&src.env_files, &src.n_env_files, xstrdup(argv[++i]));
			continue;
		}
		if (!strcmp(argv[i], "--profile") && i + 1 < argc) {
			src_add(&src.profiles, &src.n_profiles, xstrdup(argv[++i]));
			continue;
		}
		if (!strcmp(argv[i], "--ignore-unsupported")) {
			src.ignore_unsupported = true;
			continue;
		}
		if (!strcmp(argv[i], "--data-root") && i + 1 < argc)
			o.data_root = argv[++i];
		else if (!strcmp(argv[i], "--run-root") && i + 1 < argc)
			o.run_root = argv[++i];
		else if (!strcmp(argv[i], "--ready-fd") && i + 1 < argc)
			o.ready_fd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--adopt-only"))
			o.adopt_only = true;
		else {
			fprintf(stderr, "hutch: __supervise: unknown option '%s'\n", argv[i]);
			hutch_stack_src_fini(&src);
			return 125;
		}
	}
	if (!src.n_files || !o.data_root || !o.run_root) {
		fprintf(stderr, "hutch: __supervise: internal command of 'hutch up'\n");
		hutch_stack_src_fini(&src);
		return 125;
	}
	if (o.ready_fd >= 0)
		fcntl(o.ready_fd, F_SETFD, FD_CLOEXEC);
	o.src = &src;
	o.services = argv + i;
	o.n_services = (size_t)(argc - i);
	_cleanup_err_ struct hutch_err *err = NULL;
	int rc = hutch_supervise(&o, &err) < 0 ? 1 : 0;
	if (rc)
		hutch_err_print("hutch: supervisor", err);
	hutch_stack_src_fini(&src);
	return rc;
}
