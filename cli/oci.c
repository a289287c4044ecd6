/* hutch-oci: the OCI runtime command line (as runc and crun speak it), for
 * engines that run containers through a runtime binary: podman, containerd.
 * hutch runs as this when its name (argv[0]) is hutch-oci. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "net/net.h"
#include "runtime/runtime.h"

#define HUTCH_OCI_VERSION "0.1.0"
#define OCI_SPEC_VERSION  "1.0.2"

struct oci_ctx {
	char *root; /* --root: the containers' state */
	const char *log_path;
	bool log_json;
	bool debug;
	bool systemd_cgroup;
	FILE *log;
};

/* One message: on stderr, and in --log (text or json, where engines read
 * a failed command's reason). With a --log, only errors go to stderr too: an
 * engine's create hands the container's own stderr to the runtime, and a
 * warning there would be read as the container's output (runc too keeps its
 * warnings to its log). */
static void oci_log(struct oci_ctx *o, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void oci_log(struct oci_ctx *o, const char *level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	_cleanup_free_ char *shown = cli_shown(msg);
	if (!strcmp(level, "error") || (!o->log && (strcmp(level, "debug") || o->debug)))
		fprintf(stderr, "hutch-oci: %s%s%s\n", strcmp(level, "error") ? level : "",
			strcmp(level, "error") ? ": " : "", shown);
	if (o->log && (strcmp(level, "debug") || o->debug)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		char when[64];
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (o->log_json) {
			struct json_object *j = json_object_new_object();
			json_object_object_add(j, "level", json_object_new_string(level));
			json_object_object_add(j, "msg", json_object_new_string(msg));
			json_object_object_add(j, "time", json_object_new_string(when));
			fprintf(o->log, "%s\n",
				json_object_to_json_string_ext(
				    j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(j);
		} else {
			fprintf(o->log, "time=\"%s\" level=%s msg=\"%s\"\n", when, level, shown);
		}
		fflush(o->log);
	}
	free(msg);
}

static int fail(struct oci_ctx *o, struct hutch_err *err)
{
	int code = err && err->exit_code ? err->exit_code : 1;
	if (err && err->errno_)
		oci_log(o, "error", "%s: %s", err->msg, strerror(err->errno_));
	else
		oci_log(o, "error", "%s", err && err->msg ? err->msg : "unknown error");
	hutch_err_free(&err);
	return code;
}

/* A hook's failure that the spec says is only warned about. */
static void warn_of(struct oci_ctx *o, struct hutch_err *w)
{
	if (w)
		oci_log(o, "warning", "%s", w->msg);
	hutch_err_free(&w);
}

static int usage_error(struct oci_ctx *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(struct oci_ctx *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	oci_log(o, "error", "%s", msg);
	free(msg);
	return 1;
}

static void runtime_log(enum hutch_log_level level, const char *msg, void *data)
{
	oci_log(data, level == HUTCH_LOG_WARNING ? "warning" : "info", "%s", msg);
}

/* ---- options ------------------------------------------------------------------------ */

enum {
	O_BUNDLE = 1,
	O_PID_FILE,
	O_CONSOLE_SOCKET,
	O_NO_PIVOT,
	O_NO_NEW_KEYRING,
	O_PRESERVE_FDS,
	O_DETACH,
	O_FORCE,
	O_ALL,
	O_FORMAT,
	O_QUIET,
	O_ROOTLESS,
	O_PROCESS,
	O_TTY,
	O_CWD,
	O_ENV,
	O_USER,
	O_CAP,
	O_NNP,
	O_RESOURCES,
};

struct verb_opts {
	struct oci_ctx *o;
	const char *bundle, *pid_file, *console_socket, *format;
	int preserve_fds;
	bool no_pivot, detach, force, all, quiet, rootless;
	/* exec */
	const char *process, *cwd, *user, *resources;
	char **env, **caps;
	size_t n_env, n_caps;
	bool tty, nnp;
};

static void push(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = (char *)s;
	(*v)[*n] = NULL;
}

static int set_opt(void *arg, int id, const char *value)
{
	struct verb_opts *v = arg;
	switch (id) {
	case O_BUNDLE:
		v->bundle = value;
		break;
	case O_PID_FILE:
		v->pid_file = value;
		break;
	case O_CONSOLE_SOCKET:
		v->console_socket = value;
		break;
	case O_NO_PIVOT:
		v->no_pivot = true;
		break;
	case O_NO_NEW_KEYRING:
		break; /* hutch makes no session keyring */
	case O_PRESERVE_FDS: {
		char *end;
		errno = 0;
		long n = strtol(value, &end, 10);
		if (errno || *end || n < 0 || n > 65536)
			return usage_error(v->o, "--preserve-fds '%s': give a number of fds",
					   value),
			       -1;
		v->preserve_fds = (int)n;
		break;
	}
	case O_DETACH:
		v->detach = true;
		break;
	case O_FORCE:
		v->force = true;
		break;
	case O_ALL:
		v->all = true;
		break;
	case O_FORMAT:
		if (strcmp(value, "json") && strcmp(value, "table"))
			return usage_error(v->o, "--format '%s': use table or json", value), -1;
		v->format = value;
		break;
	case O_QUIET:
		v->quiet = true;
		break;
	case O_ROOTLESS:
		v->rootless = true;
		break;
	case O_PROCESS:
		v->process = value;
		break;
	case O_TTY:
		v->tty = true;
		break;
	case O_CWD:
		v->cwd = value;
		break;
	case O_ENV:
		push(&v->env, &v->n_env, value);
		break;
	case O_USER:
		v->user = value;
		break;
	case O_CAP:
		push(&v->caps, &v->n_caps, value);
		break;
	case O_NNP:
		v->nnp = true;
		break;
	case O_RESOURCES:
		v->resources = value;
		break;
	}
	return 0;
}

static const struct cli_opt create_opts[] = {
    {"bundle", 'b', true, O_BUNDLE},
    {"pid-file", 0, true, O_PID_FILE},
    {"console-socket", 0, true, O_CONSOLE_SOCKET},
    {"no-pivot", 0, false, O_NO_PIVOT},
    {"no-new-keyring", 0, false, O_NO_NEW_KEYRING},
    {"preserve-fds", 0, true, O_PRESERVE_FDS},
    {"detach", 'd', false, O_DETACH},
};

/* Parse a verb's options; *first the first operand. Returns 0, or an exit code. */
static int parse(struct verb_opts *v, const char *verb, const char *usage,
		 const struct cli_opt *opts, size_t n, int argc, char **argv, int *first)
{
	int i = cli_parse_opts(verb, usage, opts, n, true, argc, argv, set_opt, v);
	if (i == -2)
		return -2;
	if (i < 0)
		return 1;
	*first = i;
	return 0;
}

/* As runc has it (filepath.Abs): the state's bundle is "/b", not "/b/." */
static char *absolute(const char *path)
{
	if (path[0] == '/')
		return path_clean(path);
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	_cleanup_free_ char *joined = xasprintf("%s/%s", cwd ? cwd : "/", path);
	return path_clean(joined);
}

/* ---- create, run ---------------------------------------------------------------------- */

static int load_bundle(struct oci_ctx *o, const char *bundle, struct hutch_oci_config **cfg,
		       struct hutch_err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/config.json", bundle);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at_most(AT_FDCWD, path, 4 << 20, 0, &text, &len, err) < 0)
		return hutch_err_wrap(err, "the bundle %s", bundle);
	if (hutch_oci_config_parse(text, len, bundle, cfg, err) < 0)
		return hutch_err_wrap(err, "%s", path);
	for (size_t i = 0; i < (*cfg)->n_warnings; i++)
		oci_log(o, "warning", "%s", (*cfg)->warnings[i]);
	return 0;
}

static int do_create(struct oci_ctx *o, int argc, char **argv, bool run)
{
	struct verb_opts v = {.o = o};
	int first;
	int rc = parse(&v, run ? "run" : "create",
		       run ? "Usage: hutch-oci run [--bundle DIR] [--pid-file F] [--detach] ID\n"
			   : "Usage: hutch-oci create [--bundle DIR] [--pid-file F] "
			     "[--console-socket S] [--preserve-fds N] ID\n",
		       create_opts, ARRAY_SIZE(create_opts), argc, argv, &first);
	if (rc)
		return rc == -2 ? 0 : rc;
	if (argc - first != 1)
		return usage_error(o, "%s takes one container id", run ? "run" : "create");
	const char *id = argv[first];
	_cleanup_free_ char *bundle = absolute(v.bundle ? v.bundle : ".");
	struct hutch_err *err = NULL;
	struct hutch_oci_config *cfg = NULL;
	if (load_bundle(o, bundle, &cfg, &err) < 0)
		return fail(o, err);
	struct hutch_runtime rt = {.data_root = o->root,
				   .run_root = o->root,
				   .rootless = hutch_oci_rootless(),
				   .log = runtime_log,
				   .log_data = o};
	_cleanup_free_ char *console = v.console_socket ? absolute(v.console_socket) : NULL;
	struct hutch_oci_create_opts co = {.id = id,
					   .bundle = bundle,
					   .state_root = o->root,
					   .console_socket = console,
					   .pid_file = v.pid_file,
					   .preserve_fds = v.preserve_fds,
					   .wait_start = !run || v.detach,
					   .no_pivot = v.no_pivot,
					   .systemd_cgroup = o->systemd_cgroup,
					   /* the runtime moves linux.netDevices with
					    * net/'s rtnetlink, which it cannot call */
					   .move_net_device = hutch_net_link_move};
	pid_t pid = -1;
	/* run in the foreground takes its signals and SIGCHLD with sigwaitinfo;
	 * the container's process unblocks them before its exec */
	sigset_t set;
	sigfillset(&set);
	if (run && !v.detach)
		sigprocmask(SIG_BLOCK, &set, NULL);
	rc = hutch_oci_create(&rt, cfg, &co, &pid, &err);
	hutch_oci_config_free(cfg);
	if (rc < 0)
		return fail(o, err);
	if (!run)
		return 0;
	if (v.detach) {
		struct hutch_err *w = NULL;
		if (hutch_oci_start(o->root, id, &err, &w) < 0) {
			hutch_oci_delete(o->root, id, true, NULL, NULL);
			return fail(o, err);
		}
		warn_of(o, w);
		return 0;
	}
	/* run in the foreground: the container's process is our child; pass
	 * on the signals we get, collect its status, then remove it */
	int status = 0;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(pid, sig);
			continue;
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	struct hutch_err *w = NULL;
	if (hutch_oci_delete(o->root, id, true, &err, &w) < 0 && err)
		fail(o, err);
	warn_of(o, w);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- the other verbs ----------------------------------------------------------------- */

static int one_id(struct oci_ctx *o, const char *verb, const char *usage,
		  const struct cli_opt *opts, size_t n, struct verb_opts *v, int argc, char **argv,
		  const char **id)
{
	int first;
	int rc = parse(v, verb, usage, opts, n, argc, argv, &first);
	if (rc)
		return rc == -2 ? -2 : rc;
	if (argc - first != 1)
		return usage_error(o, "%s takes one container id", verb);
	*id = argv[first];
	return 0;
}

static int do_start(struct oci_ctx *o, int argc, char **argv)
{
	struct verb_opts v = {.o = o};
	const char *id;
	int rc = one_id(o, "start", "Usage: hutch-oci start ID\n", NULL, 0, &v, argc, argv, &id);
	if (rc)
		return rc == -2 ? 0 : rc;
	struct hutch_err *err = NULL, *w = NULL;
	if (hutch_oci_start(o->root, id, &err, &w) < 0)
		return fail(o, err);
	warn_of(o, w);
	return 0;
}

static int do_state(struct oci_ctx *o, int argc, char **argv)
{
	struct verb_opts v = {.o = o};
	const char *id;
	int rc = one_id(o, "state", "Usage: hutch-oci state ID\n", NULL, 0, &v, argc, argv, &id);
	if (rc)
		return rc == -2 ? 0 : rc;
	struct hutch_err *err = NULL;
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(o->root, id, &s, &err) < 0)
		return fail(o, err);
	_cleanup_free_ char *text = hutch_oci_state_json(s, true);
	printf("%s\n", text);
	hutch_oci_state_free(s);
	return 0;
}

static int do_kill(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"all", 'a', false, O_ALL}};
	struct verb_opts v = {.o = o};
	int first;
	int rc = parse(&v, "kill", "Usage: hutch-oci kill [--all] ID [SIGNAL]\n", opts,
		       ARRAY_SIZE(opts), argc, argv, &first);
	if (rc)
		return rc == -2 ? 0 : rc;
	if (argc - first < 1 || argc - first > 2)
		return usage_error(o, "kill takes a container id and a signal (default SIGTERM)");
	/* 0 as kill(2) has it, as runc takes it: is the container there to signal */
	int sig = argc - first < 2		  ? SIGTERM
		  : !strcmp(argv[first + 1], "0") ? 0
						  : signal_from_name(argv[first + 1]);
	if (sig < 0)
		return usage_error(o, "unknown signal '%s'", argv[first + 1]);
	struct hutch_err *err = NULL;
	return hutch_oci_kill(o->root, argv[first], sig, v.all, &err) < 0 ? fail(o, err) : 0;
}

static int do_delete(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"force", 'f', false, O_FORCE}};
	struct verb_opts v = {.o = o};
	const char *id;
	int rc = one_id(o, "delete", "Usage: hutch-oci delete [--force] ID\n", opts,
			ARRAY_SIZE(opts), &v, argc, argv, &id);
	if (rc)
		return rc == -2 ? 0 : rc;
	struct hutch_err *err = NULL, *w = NULL;
	rc = hutch_oci_delete(o->root, id, v.force, &err, &w);
	warn_of(o, w);
	/* as runc: deleting what is gone already is no error with --force */
	if (rc == HUTCH_STATE_NOT_FOUND && v.force) {
		hutch_err_free(&err);
		return 0;
	}
	return rc < 0 ? fail(o, err) : 0;
}

static int do_update(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"resources", 'r', true, O_RESOURCES}};
	struct verb_opts v = {.o = o};
	const char *id;
	int rc = one_id(o, "update", "Usage: hutch-oci update --resources FILE|- ID\n", opts,
			ARRAY_SIZE(opts), &v, argc, argv, &id);
	if (rc)
		return rc == -2 ? 0 : rc;
	if (!v.resources)
		return usage_error(o, "update needs --resources FILE (or - for stdin)");
	struct hutch_err *err = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	/* fd 0 itself: a minimal system may have no /dev/stdin */
	const char *path = strcmp(v.resources, "-") ? v.resources : "/proc/self/fd/0";
	struct hutch_resources res;
	char **warnings = NULL;
	size_t n_warnings = 0;
	if (read_file_at_most(AT_FDCWD, path, 1 << 20, 0, &text, &len, &err) < 0 ||
	    hutch_oci_resources_parse(text, len, &res, &warnings, &n_warnings, &err) < 0) {
		hutch_err_wrap(&err, "--resources %s", v.resources);
		return fail(o, err);
	}
	for (size_t i = 0; i < n_warnings; i++) {
		oci_log(o, "warning", "%s", warnings[i]);
		free(warnings[i]);
	}
	free(warnings);
	int ret = hutch_oci_update(o->root, id, &res, &err) < 0 ? fail(o, err) : 0;
	hutch_resources_clear(&res);
	return ret;
}

static int do_freeze(struct oci_ctx *o, int argc, char **argv, bool frozen)
{
	struct verb_opts v = {.o = o};
	const char *id;
	int rc = one_id(o, frozen ? "pause" : "resume",
			frozen ? "Usage: hutch-oci pause ID\n" : "Usage: hutch-oci resume ID\n",
			NULL, 0, &v, argc, argv, &id);
	if (rc)
		return rc == -2 ? 0 : rc;
	struct hutch_err *err = NULL;
	return hutch_oci_freeze(o->root, id, frozen, &err) < 0 ? fail(o, err) : 0;
}

static int do_list(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"format", 'f', true, O_FORMAT},
					      {"quiet", 'q', false, O_QUIET}};
	struct verb_opts v = {.o = o};
	int first;
	int rc = parse(&v, "list", "Usage: hutch-oci list [--format table|json] [-q]\n", opts,
		       ARRAY_SIZE(opts), argc, argv, &first);
	if (rc)
		return rc == -2 ? 0 : rc;
	struct hutch_err *err = NULL;
	char **ids = NULL;
	size_t n = 0;
	if (hutch_oci_list(o->root, &ids, &n, &err) < 0)
		return fail(o, err);
	bool json = v.format && !strcmp(v.format, "json");
	if (json)
		fputs("[", stdout);
	else if (!v.quiet)
		printf("%-24s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE",
		       "CREATED", "OWNER");
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		struct hutch_oci_state *s = NULL;
		if (hutch_oci_state_load(o->root, ids[i], &s, NULL) == 0) {
			if (json) {
				_cleanup_free_ char *t = hutch_oci_state_json(s, false);
				printf("%s%s", any ? "," : "", t);
			} else if (v.quiet) {
				printf("%s\n", s->id);
			} else {
				_cleanup_free_ char *sid = cli_shown(s->id);
				printf("%-24s %-8d %-10s %-40s %-30s %s\n", sid,
				       s->status == HUTCH_OCI_STOPPED ? 0 : s->pid,
				       hutch_oci_status_name(s->status), s->bundle, s->created,
				       s->owner);
			}
			any = true;
		}
		hutch_oci_state_free(s);
		free(ids[i]);
	}
	free(ids);
	if (json)
		puts("]");
	return 0;
}

static int do_ps(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"format", 'f', true, O_FORMAT}};
	struct verb_opts v = {.o = o};
	int first;
	int rc = parse(&v, "ps", "Usage: hutch-oci ps [--format table|json] ID\n", opts,
		       ARRAY_SIZE(opts), argc, argv, &first);
	if (rc)
		return rc == -2 ? 0 : rc;
	if (argc - first < 1)
		return usage_error(o, "ps takes a container id");
	struct hutch_err *err = NULL;
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(o->root, argv[first], &s, &err) < 0)
		return fail(o, err);
	pid_t *pids = NULL;
	size_t n = 0;
	rc = hutch_oci_pids(s, &pids, &n, &err);
	hutch_oci_state_free(s);
	if (rc < 0)
		return fail(o, err);
	bool json = v.format && !strcmp(v.format, "json");
	if (json) {
		fputs("[", stdout);
		for (size_t i = 0; i < n; i++)
			printf("%s%d", i ? "," : "", pids[i]);
		puts("]");
	} else {
		puts("PID CMD");
		for (size_t i = 0; i < n; i++) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/comm", pids[i]);
			_cleanup_free_ char *comm = NULL;
			if (read_file_at(AT_FDCWD, path, &comm, NULL, NULL) < 0)
				continue;
			comm[strcspn(comm, "\n")] = '\0';
			_cleanup_free_ char *c = cli_shown(comm);
			printf("%d %s\n", pids[i], c);
		}
	}
	free(pids);
	return 0;
}

/* The process of exec: --process FILE, or the container's own process (its
 * bundle's config.json) with the command and the options given; in attrs its
 * scheduler, ioPriority and execCPUAffinity. */
static int exec_process(struct oci_ctx *o, struct verb_opts *v, const char *id, char **args,
			size_t n_args, struct hutch_process *proc,
			struct hutch_oci_proc_attrs *attrs, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (v->process) {
		if (read_file_at_most(AT_FDCWD, v->process, 4 << 20, 0, &text, &len, err) < 0 ||
		    hutch_oci_exec_process_parse(text, len, proc, attrs, err) < 0)
			return hutch_err_wrap(err, "--process %s", v->process);
		return 0;
	}
	if (!n_args)
		return hutch_fail(err, 0, "exec needs a command (or --process FILE)");
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(o->root, id, &s, err) < 0)
		return -1;
	struct hutch_oci_config *cfg = NULL;
	int r = load_bundle(o, s->bundle, &cfg, err);
	hutch_oci_state_free(s);
	if (r < 0)
		return -1;
	*proc = cfg->spec->process;
	cfg->spec->process = (struct hutch_process){0};
	/* the container's own process's, not the container's personality and
	 * memory policy (its pid 1's, which exec does not inherit) */
	*attrs = cfg->attrs;
	attrs->has_personality = attrs->has_mempolicy = false;
	hutch_oci_config_free(cfg);
	for (size_t i = 0; i < proc->n_args; i++)
		free(proc->args[i]);
	free(proc->args);
	proc->args = xcalloc(n_args + 1, sizeof(char *));
	for (size_t i = 0; i < n_args; i++)
		proc->args[i] = xstrdup(args[i]);
	proc->n_args = n_args;
	for (size_t i = 0; i < v->n_env; i++) {
		if (!strchr(v->env[i], '='))
			return hutch_fail(err, 0, "--env '%s': give KEY=VALUE", v->env[i]);
		proc->env = xrealloc(proc->env, (proc->n_env + 2) * sizeof(char *));
		proc->env[proc->n_env++] = xstrdup(v->env[i]);
		proc->env[proc->n_env] = NULL;
	}
	if (v->cwd) {
		if (v->cwd[0] != '/')
			return hutch_fail(err, 0, "--cwd '%s' must be an absolute path", v->cwd);
		free(proc->cwd);
		proc->cwd = xstrdup(v->cwd);
	}
	if (v->user) {
		free(proc->user);
		proc->user = xstrdup(v->user);
	}
	for (size_t i = 0; i < v->n_caps; i++) {
		int c = hutch_cap_from_name(v->caps[i]);
		if (c < 0)
			return hutch_fail(err, 0, "--cap '%s': unknown capability", v->caps[i]);
		uint64_t bit = 1ULL << c;
		proc->caps.bounding |= bit;
		proc->caps.effective |= bit;
		proc->caps.permitted |= bit;
	}
	proc->terminal = v->tty;
	proc->no_new_privileges |= v->nnp;
	return 0;
}

static int do_exec(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {
	    {"process", 'p', true, O_PROCESS},
	    {"detach", 'd', false, O_DETACH},
	    {"pid-file", 0, true, O_PID_FILE},
	    {"tty", 't', false, O_TTY},
	    {"console-socket", 0, true, O_CONSOLE_SOCKET},
	    {"cwd", 0, true, O_CWD},
	    {"env", 'e', true, O_ENV},
	    {"user", 'u', true, O_USER},
	    {"cap", 'c', true, O_CAP},
	    {"no-new-privs", 0, false, O_NNP},
	    {"preserve-fds", 0, true, O_PRESERVE_FDS},
	};
	struct verb_opts v = {.o = o};
	int first = 0;
	/* options stop at the container id: what follows is the command's */
	int i = cli_parse_opts("exec",
			       "Usage: hutch-oci exec [--process FILE | OPTIONS] ID [COMMAND...]\n",
			       opts, ARRAY_SIZE(opts), false, argc, argv, set_opt, &v);
	int rc = 0;
	if (i == -2 || i < 0) {
		rc = i == -2 ? 0 : 1;
		goto out;
	}
	first = i;
	if (first >= argc) {
		rc = usage_error(o, "exec takes a container id");
		goto out;
	}
	struct hutch_err *err = NULL;
	struct hutch_process proc = {0};
	struct hutch_oci_proc_attrs attrs = {0};
	char *console = NULL;
	if (exec_process(o, &v, argv[first], argv + first + 1, (size_t)(argc - first - 1), &proc,
			 &attrs, &err) < 0) {
		hutch_process_clear(&proc);
		rc = fail(o, err);
		goto out;
	}
	console = v.console_socket ? absolute(v.console_socket) : NULL;
	struct hutch_oci_exec_opts eo = {.pid_file = v.pid_file,
					 .console_socket = console,
					 .preserve_fds = v.preserve_fds,
					 .detach = v.detach,
					 .attrs = &attrs};
	int status = 0;
	int r = hutch_oci_exec(o->root, argv[first], &proc, &eo, &status, &err);
	hutch_process_clear(&proc);
	rc = r < 0 ? fail(o, err) : status;
	free(console);
out:
	free(v.env);
	free(v.caps);
	return rc;
}

static int do_spec(struct oci_ctx *o, int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"bundle", 'b', true, O_BUNDLE},
					      {"rootless", 0, false, O_ROOTLESS}};
	struct verb_opts v = {.o = o};
	int first;
	int rc = parse(&v, "spec", "Usage: hutch-oci spec [--bundle DIR] [--rootless]\n", opts,
		       ARRAY_SIZE(opts), argc, argv, &first);
	if (rc)
		return rc == -2 ? 0 : rc;
	_cleanup_free_ char *path = xasprintf("%s/config.json", v.bundle ? v.bundle : ".");
	_cleanup_free_ char *text = hutch_oci_default_config(v.rootless, getuid(), getgid());
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return usage_error(o, "cannot write %s: %s", path,
				   errno == EEXIST ? "it exists already" : strerror(errno));
	int w = write_all(fd, text, strlen(text));
	close(fd);
	return w < 0 ? usage_error(o, "cannot write %s: %s", path, strerror(errno)) : 0;
}

static int do_features(struct oci_ctx *o, int argc, char **argv)
{
	printf("{\n"
	       "  \"ociVersionMin\": \"1.0.0\",\n"
	       "  \"ociVersionMax\": \"%s\",\n"
	       "  \"hooks\": [\"prestart\", \"createRuntime\", \"createContainer\", "
	       "\"startContainer\", \"poststart\", \"poststop\"],\n"
	       "  \"mountOptions\": [\"bind\", \"defaults\", \"dev\", \"diratime\", \"exec\", "
	       "\"idmap\", \"noatime\", \"nodev\", \"nodiratime\", \"noexec\", \"nosuid\", "
	       "\"nosymfollow\", \"private\", \"ratime\", \"rbind\", \"rdev\", \"rdiratime\", "
	       "\"relatime\", \"rexec\", \"ridmap\", \"rnoatime\", \"rnodev\", "
	       "\"rnodiratime\", \"rnoexec\", \"rnosuid\", \"rnosymfollow\", \"ro\", "
	       "\"rprivate\", \"rrelatime\", \"rro\", \"rrw\", \"rshared\", \"rslave\", "
	       "\"rstrictatime\", \"rsuid\", \"rsymfollow\", \"runbindable\", \"rw\", "
	       "\"shared\", \"slave\", \"strictatime\", \"suid\", \"symfollow\", "
	       "\"tmpcopyup\", \"unbindable\"],\n"
	       "  \"linux\": {\n"
	       "    \"namespaces\": [\"cgroup\", \"ipc\", \"mount\", \"network\", \"pid\", "
	       "\"time\", \"user\", \"uts\"],\n"
	       "    \"capabilities\": [",
	       OCI_SPEC_VERSION);
	bool first = true;
	for (int c = 0; c < 64; c++)
		if (hutch_cap_name(c)) {
			printf("%s\"%s\"", first ? "" : ", ", hutch_cap_name(c));
			first = false;
		}
	_cleanup_free_ char *seccomp = hutch_oci_seccomp_features();
	printf("],\n"
	       "    \"cgroup\": {\"v1\": false, \"v2\": true, \"systemd\": false, "
	       "\"systemdUser\": false, \"rdma\": true},\n"
	       "    \"seccomp\": %s,\n"
	       "    \"apparmor\": {\"enabled\": false},\n"
	       "    \"selinux\": {\"enabled\": false},\n"
	       "    \"mountExtensions\": {\"idmap\": {\"enabled\": true}},\n"
	       "    \"memoryPolicy\": {\"modes\": [\"MPOL_DEFAULT\", \"MPOL_BIND\", "
	       "\"MPOL_INTERLEAVE\", \"MPOL_WEIGHTED_INTERLEAVE\", \"MPOL_PREFERRED\", "
	       "\"MPOL_PREFERRED_MANY\", \"MPOL_LOCAL\"], \"flags\": [\"MPOL_F_NUMA_BALANCING\", "
	       "\"MPOL_F_RELATIVE_NODES\", \"MPOL_F_STATIC_NODES\"]},\n"
	       "    \"netDevices\": {\"enabled\": true}\n"
	       "  },\n"
	       "  \"annotations\": {\"org.opencontainers.runtime-spec.features\": \"hutch\"}\n"
	       "}\n",
	       seccomp);
	return 0;
}

static void usage(FILE *out)
{
	fputs("Usage: hutch-oci [GLOBAL OPTIONS] COMMAND [OPTIONS] ID\n"
	      "\n"
	      "The OCI runtime command line (as runc and crun), for podman and containerd.\n"
	      "\n"
	      "Commands:\n"
	      "  create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] ID\n"
	      "  start ID            run the created container's process\n"
	      "  exec [--process F | --tty --cwd D --env K=V --user U:G --cap C] [--detach]\n"
	      "       [--pid-file F] [--console-socket S] ID [COMMAND...]\n"
	      "  state ID            the state as the runtime spec's JSON\n"
	      "  kill [--all] ID [SIGNAL]   signal it (default SIGTERM)\n"
	      "  delete [--force] ID remove a created or stopped container (--force: any)\n"
	      "  run [--bundle DIR] [--detach] ID   create and start (foreground: wait)\n"
	      "  list [--format table|json] [-q]    the containers\n"
	      "  ps [--format table|json] ID        its processes\n"
	      "  pause ID | resume ID               freeze and thaw its cgroup\n"
	      "  update --resources FILE|- ID       the container's cgroup limits\n"
	      "  spec [--rootless]   write a default config.json\n"
	      "  features            what this runtime supports, as JSON\n"
	      "\n"
	      "Global options:\n"
	      "  --root DIR          state directory (default /run/hutch-oci; rootless:\n"
	      "                      $XDG_RUNTIME_DIR/hutch-oci)\n"
	      "  --log FILE          also write messages to FILE\n"
	      "  --log-format text|json\n"
	      "  --debug             debug messages too\n"
	      "  --systemd-cgroup    cgroupsPath is slice:prefix:name (systemd's layout)\n"
	      "  --version\n",
	      out);
}

static char *default_root(void)
{
	if (!hutch_oci_rootless())
		return xstrdup("/run/hutch-oci");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg)
		return xasprintf("%s/hutch-oci", xdg);
	return xasprintf("/tmp/hutch-oci-%u", (unsigned)getuid());
}

/* A global option's value: "--opt V" or "--opt=V". */
static const char *global_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (a[1] == '-')
		a++;
	if (strncmp(a + 1, name, n))
		return NULL;
	if (a[1 + n] == '=')
		return a + 2 + n;
	if (a[1 + n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

int cmd_oci(int argc, char **argv)
{
	struct oci_ctx o = {0};
	_cleanup_free_ char *root = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		const char *val;
		if (!strcmp(a, "--version") || !strcmp(a, "-v")) {
			printf("hutch-oci version %s\nspec: %s\n", HUTCH_OCI_VERSION,
			       OCI_SPEC_VERSION);
			return 0;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--debug")) {
			o.debug = true;
		} else if (!strcmp(a, "--systemd-cgroup")) {
			o.systemd_cgroup = true;
		} else if ((val = global_value(argc, argv, &i, "root"))) {
			free(root);
			root = absolute(val);
		} else if ((val = global_value(argc, argv, &i, "log"))) {
			o.log_path = val;
		} else if ((val = global_value(argc, argv, &i, "log-format"))) {
			if (strcmp(val, "text") && strcmp(val, "json"))
				return usage_error(&o, "--log-format '%s': use text or json", val);
			o.log_json = !strcmp(val, "json");
		} else if ((val = global_value(argc, argv, &i, "rootless")) ||
			   !strcmp(a, "--rootless")) {
			/* runc's; hutch knows whether it is root */
		} else {
			return usage_error(&o, "unknown global option '%s' (see hutch-oci --help)",
					   a);
		}
	}
	if (o.log_path) {
		o.log = fopen(o.log_path, "ae");
		if (!o.log)
			return usage_error(&o, "cannot open the log %s: %s", o.log_path,
					   strerror(errno));
	}
	o.root = root ? root : default_root();
	root = o.root;
	int rc;
	if (i >= argc) {
		usage(stderr);
		rc = 1;
	} else {
		const char *verb = argv[i];
		int sub_argc = argc - i;
		char **sub_argv = argv + i;
		if (!strcmp(verb, "create"))
			rc = do_create(&o, sub_argc, sub_argv, false);
		else if (!strcmp(verb, "run"))
			rc = do_create(&o, sub_argc, sub_argv, true);
		else if (!strcmp(verb, "exec"))
			rc = do_exec(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "start"))
			rc = do_start(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "state"))
			rc = do_state(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "kill"))
			rc = do_kill(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "delete"))
			rc = do_delete(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "list"))
			rc = do_list(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "ps"))
			rc = do_ps(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "update"))
			rc = do_update(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "pause"))
			rc = do_freeze(&o, sub_argc, sub_argv, true);
		else if (!strcmp(verb, "resume"))
			rc = do_freeze(&o, sub_argc, sub_argv, false);
		else if (!strcmp(verb, "spec"))
			rc = do_spec(&o, sub_argc, sub_argv);
		else if (!strcmp(verb, "features"))
			rc = do_features(&o, sub_argc, sub_argv);
		else
			rc = usage_error(&o, "unknown command '%s' (see hutch-oci --help)", verb);
	}
	if (o.log)
		fclose(o.log);
	return rc;
}
