/* hutch stack ls | ps | logs | start | stop | restart | exec | events | restore:
 * a stack's services, through its supervisor's control socket (docs/api.md).
 * A stack whose supervisor was killed gets a new one that adopts its
 * containers on the first of these that needs it. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack_src.h"
#include "common/err.h"
#include "common/util.h"
#include "runtime/runtime.h"
#include "supervisor/supervisor.h"

int cli_stack_ensure(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack);
int cli_stack_call(struct cli_ctx *ctx, const char *verb, const char *name, const char *req,
		   int timeout_ms, struct json_object **out, char **errmsg);

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig)
{
	stop_flag = sig;
}

struct stack_opts {
	struct cli_stack_opts st;
	bool json, follow, timestamps, i, t, no_color;
	long tail;
	bool config_json, config_services, config_quiet; /* stack config */
};
enum {
	S_FORMAT,
	S_FOLLOW,
	S_TAIL,
	S_TIMESTAMPS,
	S_I,
	S_T,
	S_NO_COLOR,
	S_SINCE,
	S_CONFIG_FORMAT,
	S_SERVICES,
	S_QUIET
};

/* --since: records before this CRI timestamp are not shown ("" : all). The
 * logs' timestamps are UTC with 9 fraction digits, so text order is time order. */
static char since_ts[40];

static int set_since(const char *v)
{
	int64_t ns;
	struct tm tm = {0};
	time_t t;
	if (parse_duration(v, &ns) == 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t at = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec - ns;
		t = (time_t)(at / 1000000000LL);
		gmtime_r(&t, &tm);
		size_t n = strftime(since_ts, sizeof(since_ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(since_ts + n, sizeof(since_ts) - n, ".%09lldZ",
			 (long long)(at % 1000000000LL));
		return 0;
	}
	const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end && (!*end || !strcmp(end, "Z"))) {
		size_t n = strftime(since_ts, sizeof(since_ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(since_ts + n, sizeof(since_ts) - n, ".000000000Z");
		return 0;
	}
	fprintf(stderr,
		"hutch: stack logs: invalid --since '%s': a duration (5m, 1h30m) or a UTC time "
		"(2026-01-02T15:04:05Z)\n",
		v);
	return -1;
}

static int stack_set(void *arg, int id, const char *v)
{
	struct stack_opts *o = arg;
	if (id >= CLI_STACK_FILE)
		return cli_stack_opt(&o->st, id, v);
	switch (id) {
	case S_FORMAT:
		if (!strcmp(v, "json"))
			o->json = true;
		else if (!strcmp(v, "table"))
			o->json = false;
		else {
			fprintf(stderr, "hutch: stack: unknown --format '%s' (json or table)\n", v);
			return -1;
		}
		break;
	case S_FOLLOW:
		o->follow = true;
		break;
	case S_TAIL: {
		if (!strcmp(v, "all")) {
			o->tail = -1;
			break;
		}
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < 0) {
			fprintf(stderr,
				"hutch: stack logs: invalid --tail '%s': a number of lines "
				"or 'all'\n",
				v);
			return -1;
		}
		o->tail = n;
		break;
	}
	case S_TIMESTAMPS:
		o->timestamps = true;
		break;
	case S_I:
		o->i = true;
		break;
	case S_T:
		o->t = true;
		break;
	case S_SINCE:
		return set_since(v);
	case S_NO_COLOR:
		o->no_color = true;
		break;
	case S_CONFIG_FORMAT:
		if (strcmp(v, "ini") && strcmp(v, "json")) {
			fprintf(stderr,
				"hutch: stack config: unknown --format '%s' (ini or json)\n", v);
			return -1;
		}
		o->config_json = !strcmp(v, "json");
		break;
	case S_SERVICES:
		o->config_services = true;
		break;
	case S_QUIET:
		o->config_quiet = true;
		break;
	}
	return 0;
}

static const struct cli_opt stack_options[] = {
    CLI_STACK_OPTIONS,
    {"format", 0, true, S_FORMAT},
};
static const struct cli_opt logs_options[] = {
    CLI_STACK_OPTIONS,
    {"follow", 0, false, S_FOLLOW},
    {"tail", 'n', true, S_TAIL},
    {"timestamps", 't', false, S_TIMESTAMPS},
    {"no-color", 0, false, S_NO_COLOR},
    {"since", 0, true, S_SINCE},
};
static const struct cli_opt config_options[] = {
    CLI_STACK_OPTIONS,
    {"format", 0, true, S_CONFIG_FORMAT},
    {"services", 0, false, S_SERVICES},
    {"quiet", 'q', false, S_QUIET},
};
static const struct cli_opt exec_options[] = {
    CLI_STACK_OPTIONS,
    {"interactive", 'i', false, S_I},
    {"tty", 't', false, S_T},
};

/* ---- logs ------------------------------------------------------------------- */

struct followed {
	char id[65];
	char *label;
	char *path;
	char *archive; /* what earlier runs of the replica said (a restart made it anew) */
	bool started;
	int64_t created; /* of the container: another value is a new container, a new log */
	off_t arch_off;	 /* how much of the archive was taken */
	bool recreated;	 /* made again since the last read: the end of the old log is in the archive
			  */
	off_t prev_off;	 /* how much of the old log had been printed */
	off_t off;
	ino_t ino;
	int color;
};

static const int colors[] = {36, 33, 32, 35, 34, 96, 93, 92, 95, 94};

static void print_record(const struct followed *f, const char *line, size_t len, bool color,
			 bool timestamps, size_t width)
{
	/* CRI: "TIME STREAM P|F TEXT" */
	const char *sp1 = memchr(line, ' ', len);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
	const char *sp3 = sp2 ? memchr(sp2 + 1, ' ', len - (size_t)(sp2 + 1 - line)) : NULL;
	const char *text = sp3 ? sp3 + 1 : line;
	size_t tlen = len - (size_t)(text - line);
	bool partial = sp2 && sp2[1] == 'P';
	if (since_ts[0] && sp1 && strncmp(line, since_ts, (size_t)(sp1 - line)) < 0 &&
	    (size_t)(sp1 - line) == strlen(since_ts))
		return;
	if (color)
		printf("\033[%dm%-*s |\033[0m ", f->color, (int)width, f->label);
	else
		printf("%-*s | ", (int)width, f->label);
	if (timestamps && sp1)
		printf("%.*s ", (int)(sp1 - line), line);
	fwrite(text, 1, tlen, stdout);
	if (!partial)
		putchar('\n');
}

/* Print what was added to f's log since last time (the last `tail` lines
 * the first time, -1: all). */
static void drain_log(struct followed *f, long tail, bool color, bool timestamps, size_t width)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	/* the container was made again (a restart before the runtime kept it):
	 * a new file from its start */
	if (st.st_ino != f->ino || st.st_size < f->off) {
		f->ino = st.st_ino;
		f->off = 0;
	}
	/* earlier runs: the whole archive the first time; after the container was
	 * made again, what the archive gained past what was printed of the old log */
	char *old = NULL;
	size_t old_len = 0;
	if (f->archive && (!f->started || f->recreated)) {
		int afd = open(f->archive, O_RDONLY | O_CLOEXEC);
		struct stat ast;
		if (afd >= 0 && fstat(afd, &ast) == 0 && ast.st_size > f->arch_off) {
			off_t from = f->arch_off + (f->started ? f->prev_off : 0);
			if (from < ast.st_size) {
				old_len = (size_t)(ast.st_size - from);
				old = xcalloc(old_len + 1, 1);
				ssize_t r = pread(afd, old, old_len, from);
				old_len = r > 0 ? (size_t)r : 0;
			}
			f->arch_off = ast.st_size;
		}
		if (afd >= 0)
			close(afd);
		f->recreated = false;
	}
	if (st.st_size == f->off && !old_len) {
		close(fd);
		free(old);
		return;
	}
	size_t len = (size_t)(st.st_size - f->off);
	char *buf = xcalloc(old_len + len + 1, 1);
	if (old_len)
		memcpy(buf, old, old_len);
	free(old);
	ssize_t got = len ? pread(fd, buf + old_len, len, f->off) : 0;
	close(fd);
	ssize_t n = (got > 0 ? got : 0) + (ssize_t)old_len;
	if (n <= 0) {
		free(buf);
		return;
	}
	/* only whole records; the rest next time */
	char *end = memrchr(buf, '\n', (size_t)n);
	if (!end) {
		free(buf);
		return;
	}
	size_t usable = (size_t)(end - buf) + 1;
	char *start = buf;
	bool first = !f->started;
	f->started = true;
	if (tail >= 0 && first) {
		long count = 0;
		for (char *p = end; p > buf; p--)
			if (p[-1] == '\n' && ++count == tail) {
				start = p;
				break;
			}
		if (tail == 0)
			start = end + 1;
	}
	for (char *p = start; p < buf + usable;) {
		char *nl = memchr(p, '\n', (size_t)(buf + usable - p));
		print_record(f, p, (size_t)(nl - p), color, timestamps, width);
		p = nl + 1;
	}
	fflush(stdout);
	/* the archive is read once; the offset is the container log's */
	f->off += (off_t)(usable > old_len ? usable - old_len : 0);
	free(buf);
}

static bool wanted(char *const *services, size_t n, const char *svc)
{
	if (!n)
		return true;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(services[i], svc))
			return true;
	return false;
}

int cli_stack_logs_follow(struct cli_ctx *ctx, struct hutch_stack *stack, char *const *services,
			  size_t n, bool follow, long tail, bool color, bool timestamps,
			  bool until_down)
{
	const char *name = hutch_stack_name(stack);
	struct hutch_runtime rt = {0};
	_cleanup_err_ struct hutch_err *err = NULL;
	if (hutch_runtime_init(&rt, ctx->data_root, ctx->run_root, &err) < 0)
		return cli_report(ctx, err);
	rt.quiet = true;
	rt.rootless = ctx->rootless;
	struct followed *fs = NULL;
	size_t nf = 0;
	size_t width = 0;
	for (size_t i = 0; i < hutch_stack_n_services(stack); i++) {
		size_t l = strlen(hutch_stack_service_name(stack, i));
		if (l > width)
			width = l;
	}
	struct sigaction sa = {.sa_handler = on_stop};
	if (follow && !until_down) {
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	int idle_rounds = 0;
	for (;;) {
		struct hutch_state_list l = {0};
		if (hutch_state_list(&rt, &l, NULL) == 0) {
			for (size_t i = 0; i < l.n; i++) {
				struct hutch_state *s = l.items[i];
				const char *st =
				    hutch_label_get(s->labels, s->n_labels, "hutch.stack");
				const char *svc =
				    hutch_label_get(s->labels, s->n_labels, "hutch.service");
				const char *rep =
				    hutch_label_get(s->labels, s->n_labels, "hutch.replica");
				if (!st || !svc || strcmp(st, name) || !wanted(services, n, svc))
					continue;
				size_t k = 0;
				while (k < nf && strcmp(fs[k].id, s->id))
					k++;
				if (k < nf && fs[k].created != s->created_ns) {
					/* made again under the same id (a restart): its log
					 * is new, though its inode number may be the old one's */
					fs[k].created = s->created_ns;
					if (fs[k].started && !fs[k].recreated) {
						fs[k].recreated = true;
						fs[k].prev_off = fs[k].off;
					}
					fs[k].off = 0;
					fs[k].ino = 0;
				}
				if (k == nf) {
					fs = xrealloc(fs, (nf + 1) * sizeof(*fs));
					memset(&fs[nf], 0, sizeof(*fs));
					memcpy(fs[nf].id, s->id, 65);
					fs[nf].label =
					    rep && hutch_stack_service_replicas(stack, svc) != 1
						? xasprintf("%s-%s", svc, rep)
						: xstrdup(svc);
					if (strlen(fs[nf].label) > width)
						width = strlen(fs[nf].label);
					fs[nf].path = hutch_state_log_path(&rt, s);
					fs[nf].archive =
					    xasprintf("%s/stacks/%s/logs/%s-%s.log", ctx->data_root,
						      name, svc, rep ? rep : "1");
					fs[nf].color = colors[nf % ARRAY_SIZE(colors)];
					fs[nf].created = s->created_ns;
					nf++;
				}
			}
			hutch_state_list_free(&l);
		}
		for (size_t k = 0; k < nf; k++)
			drain_log(&fs[k], follow && !until_down ? tail : tail, color, timestamps,
				  width);
		if (!follow || stop_flag)
			break;
		if (until_down) {
			extern int cli_up_interrupted(void);
			if (cli_up_interrupted())
				break;
			if (hutch_stack_supervisor(ctx->data_root, ctx->run_root, name) <= 0 &&
			    ++idle_rounds > 2)
				break;
		}
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
	for (size_t k = 0; k < nf; k++) {
		free(fs[k].label);
		free(fs[k].path);
		free(fs[k].archive);
	}
	free(fs);
	hutch_runtime_fini(&rt);
	return 0;
}

/* ---- ps --------------------------------------------------------------------- */

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static void human_uptime(double s, char *buf, size_t len)
{
	long t = (long)s;
	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%lds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, len, "%ldh%ldm", t / 3600, (t % 3600) / 60);
	else
		snprintf(buf, len, "%ldd%ldh", t / 86400, (t % 86400) / 3600);
}

static int stack_ps(struct cli_ctx *ctx, struct hutch_stack *stack, bool json)
{
	const char *name = hutch_stack_name(stack);
	int e = cli_stack_ensure(ctx, "stack ps", stack);
	if (e == 1)
		return 1;
	struct json_object *o = NULL;
	if (e == 0 &&
	    cli_stack_call(ctx, "stack ps", name, "{\"cmd\":\"status\"}", 10000, &o, NULL) != 0)
		return 1;
	struct json_object *reps = NULL;
	if (o)
		json_object_object_get_ex(o, "replicas", &reps);
	size_t n = reps ? json_object_array_length(reps) : 0;
	if (json) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n",
			       json_object_to_json_string_ext(json_object_array_get_idx(reps, i),
							      JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return 0;
	}
	printf("%-24s %-14s %-9s %-10s %-8s %-22s %-8s %-8s %s\n", "CONTAINER", "SERVICE", "STATE",
	       "HEALTH", "RESTARTS", "LAST EXIT", "PID", "UPTIME", "STATUS");
	for (size_t i = 0; i < n; i++) {
		struct json_object *r = json_object_array_get_idx(reps, i);
		struct json_object *le = NULL, *v = NULL;
		char last[64] = "-", up[32] = "-", pid[16] = "-";
		if (json_object_object_get_ex(r, "last_exit", &le) && le &&
		    json_object_object_get_ex(le, "text", &v))
			snprintf(last, sizeof(last), "%s", json_object_get_string(v));
		int p = json_object_object_get_ex(r, "pid", &v) ? json_object_get_int(v) : 0;
		if (p > 0) {
			snprintf(pid, sizeof(pid), "%d", p);
			if (json_object_object_get_ex(r, "uptime_s", &v))
				human_uptime(json_object_get_double(v), up, sizeof(up));
		}
		const char *health = jstr(r, "health");
		printf("%-24s %-14s %-9s %-10s %-8s %-22s %-8s %-8s %s\n", jstr(r, "container"),
		       jstr(r, "service"), jstr(r, "state"),
		       *health && strcmp(health, "none") ? health : "-", jstr(r, "restarts"), last,
		       pid, up, jstr(r, "status"));
	}
	json_object_put(o);
	return 0;
}

/* ---- ls --------------------------------------------------------------------- */

static int stack_ls(struct cli_ctx *ctx, bool json)
{
	struct hutch_stack_info *v = NULL;
	size_t n = 0;
	_cleanup_err_ struct hutch_err *err = NULL;
	if (hutch_stack_list(ctx->data_root, ctx->run_root, &v, &n, &err) < 0)
		return cli_report(ctx, err);
	if (!json)
		printf("%-20s %-10s %-10s %-8s %s\n", "NAME", "SUPERVISOR", "STATUS", "SERVICES",
		       "FILE");
	for (size_t i = 0; i < n; i++) {
		int running = 0, total = 0;
		if (v[i].supervisor > 0) {
			struct json_object *o = NULL, *reps = NULL;
			if (cli_stack_call(ctx, "stack ls", v[i].name, "{\"cmd\":\"status\"}", 5000,
					   &o, NULL) == 0 &&
			    json_object_object_get_ex(o, "replicas", &reps)) {
				total = (int)json_object_array_length(reps);
				for (int k = 0; k < total; k++) {
					const char *st = jstr(
					    json_object_array_get_idx(reps, (size_t)k), "state");
					running += !strcmp(st, "running");
				}
			}
			json_object_put(o);
		}
		const char *status = v[i].supervisor > 0 ? "up" : v[i].up ? "orphaned" : "down";
		if (json) {
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(v[i].name));
			json_object_object_add(o, "file", json_object_new_string(v[i].file));
			json_object_object_add(o, "status", json_object_new_string(status));
			json_object_object_add(o, "supervisor",
					       json_object_new_int(v[i].supervisor));
			json_object_object_add(o, "running", json_object_new_int(running));
			json_object_object_add(o, "replicas", json_object_new_int(total));
			printf("%s\n",
			       json_object_to_json_string_ext(
				   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(o);
		} else {
			char sup[16] = "-", svcs[32] = "-";
			if (v[i].supervisor > 0) {
				snprintf(sup, sizeof(sup), "%d", v[i].supervisor);
				snprintf(svcs, sizeof(svcs), "%d/%d", running, total);
			}
			printf("%-20s %-10s %-10s %-8s %s\n", v[i].name, sup, status, svcs,
			       v[i].file);
		}
	}
	hutch_stack_info_free(v, n);
	return 0;
}

/* ---- events ----------------------------------------------------------------- */

struct events_ctx {
	bool json;
	bool subscribed;
};

static int on_event(const char *line, void *data)
{
	struct events_ctx *e = data;
	struct json_object *o = json_tokener_parse(line);
	if (!o)
		return 0;
	struct json_object *v = NULL;
	if (json_object_object_get_ex(o, "ok", &v)) {
		int rc = 0;
		if (!json_object_get_boolean(v)) {
			fprintf(stderr, "hutch: stack events: %s\n", jstr(o, "error"));
			rc = -1;
		}
		json_object_put(o);
		return rc;
	}
	if (e->json) {
		printf("%s\n", line);
	} else {
		int64_t t = json_object_object_get_ex(o, "time", &v) ? json_object_get_int64(v) : 0;
		time_t secs = (time_t)(t / 1000000000LL);
		struct tm tm;
		gmtime_r(&secs, &tm);
		char ts[40];
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		/* a message may hold what a container said (a probe's output) */
		_cleanup_free_ char *msg = cli_shown(jstr(o, "message"));
		printf("%s.%03dZ %s %s %s%s%s\n", ts, (int)((t / 1000000) % 1000),
		       jstr(o, "container"), jstr(o, "event"), jstr(o, "health"),
		       *jstr(o, "health") ? " " : "", msg);
	}
	fflush(stdout);
	json_object_put(o);
	return 0;
}

static int stack_events(struct cli_ctx *ctx, struct hutch_stack *stack, bool json)
{
	const char *name = hutch_stack_name(stack);
	int e = cli_stack_ensure(ctx, "stack events", stack);
	if (e == 1)
		return 1;
	if (e == 2) {
		fprintf(stderr, "hutch: stack events: stack %s is not up\n", name);
		return 1;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	int fd = hutch_stack_connect(ctx->run_root, name, &err);
	if (fd < 0)
		return cli_report(ctx, err);
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct events_ctx ec = {.json = json};
	int rc = hutch_stack_request(fd, "{\"cmd\":\"subscribe\"}", -1, on_event, &ec, &err);
	close(fd);
	if (rc < 0)
		return cli_report(ctx, err);
	return rc == -1 ? 1 : 0;
}

/* ---- start / stop / restart ------------------------------------------------- */

static int stack_command(struct cli_ctx *ctx, const char *verb, struct hutch_stack *stack,
			 const struct hutch_stack_src *src, char **services, size_t n)
{
	const char *name = hutch_stack_name(stack);
	if (!n) {
		fprintf(stderr, "hutch: stack %s: give at least one service\n", verb);
		return 125;
	}
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t s = 0; s < hutch_stack_n_services(stack); s++)
			known |= !strcmp(hutch_stack_service_name(stack, s), services[i]);
		if (!known) {
			fprintf(stderr, "hutch: stack %s: no service '%s' in %s\n", verb,
				services[i], hutch_stack_file(stack));
			return 1;
		}
	}
	int e = cli_stack_ensure(ctx, verb, stack);
	if (e == 1)
		return 1;
	if (e == 2) {
		if (strcmp(verb, "start")) {
			fprintf(stderr, "hutch: stack %s: stack %s is not up (hutch up)\n", verb,
				name);
			return 1;
		}
		/* start on a stack that is down: up with these services */
		return cli_stack_spawn(ctx, verb, stack, src, services, n, false);
	}
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(services[i]));
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "cmd", json_object_new_string(verb));
	json_object_object_add(o, "services", a);
	_cleanup_free_ char *req = xstrdup(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	_cleanup_free_ char *v = xasprintf("stack %s", verb);
	return cli_stack_call(ctx, v, name, req, 30000, NULL, NULL) == 0 ? 0 : 1;
}

/* ---- config ----------------------------------------------------------------- */

/* The stack as hutch read it (docs/compose.md): a hutch.ini that loads back to
 * the same stack (how a compose file becomes one), its JSON, its services' names,
 * or nothing (-q: the files are valid). */
static int stack_config(struct cli_ctx *ctx, struct hutch_stack *stack, const struct stack_opts *o)
{
	if (o->config_quiet)
		return 0;
	if (o->config_services) {
		/* in start order: dependencies first */
		size_t n = hutch_stack_n_services(stack);
		for (size_t i = 0; i < n; i++)
			printf("%s\n", hutch_stack_service_name(stack, i));
		return fflush(stdout) == 0 ? 0 : 1;
	}
	_cleanup_free_ char *text = NULL;
	char **notes = NULL;
	size_t n_notes = 0;
	_cleanup_err_ struct hutch_err *err = NULL;
	if (hutch_stack_write(stack, o->config_json ? HUTCH_STACK_JSON : HUTCH_STACK_INI, &text,
			      &notes, &n_notes, &err) < 0) {
		fprintf(stderr, "hutch: stack config: %s\n", err->msg);
		return 1;
	}
	for (size_t i = 0; i < n_notes; i++) {
		if (!ctx->quiet)
			fprintf(stderr, "hutch: stack config: %s\n", notes[i]);
		free(notes[i]);
	}
	free(notes);
	if (fputs(text, stdout) == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "hutch: stack config: cannot write the output: %s\n",
			strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- restore ---------------------------------------------------------------- */

static int stack_restore(struct cli_ctx *ctx)
{
	struct hutch_stack_info *v = NULL;
	size_t n = 0;
	_cleanup_err_ struct hutch_err *err = NULL;
	if (hutch_stack_list(ctx->data_root, ctx->run_root, &v, &n, &err) < 0)
		return cli_report(ctx, err);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (!v[i].up || v[i].supervisor > 0)
			continue;
		struct hutch_stack *stack = NULL;
		_cleanup_err_ struct hutch_err *lerr = NULL;
		/* as `up` read it: its files and options, from stack.json */
		if (hutch_stack_load_src(&v[i].src, &stack, &lerr) < 0) {
			cli_stack_print_errors("stack restore", lerr);
			rc = 1;
			continue;
		}
		if (cli_stack_spawn(ctx, "stack restore", stack, &v[i].src, NULL, 0, true) == 0) {
			if (!ctx->quiet)
				fprintf(stderr, "stack %s restored\n", v[i].name);
		} else {
			rc = 1;
		}
		hutch_stack_free(stack);
	}
	hutch_stack_info_free(v, n);
	return rc;
}

/* ---- the verb --------------------------------------------------------------- */

static int stack_run(struct cli_ctx *ctx, const char *sub, const char *verb, struct stack_opts *op,
		     int nargs, char **args);

static void stack_usage(FILE *out)
{
	fputs("Usage: hutch stack COMMAND\n"
	      "\n"
	      "  ls [--format json]                        stacks known here\n"
	      "  ps [-f FILE] [--format json]              the stack's replicas\n"
	      "  logs [-f FILE] [--follow] [--tail N] [--since D] [-t] [SERVICE...]\n"
	      "                                            the services' output\n"
	      "  start|stop|restart [-f FILE] SERVICE...   control services\n"
	      "  exec [-f FILE] [-it] SERVICE CMD...       run a command in replica 1\n"
	      "  events [-f FILE] [--format json]          follow the stack's events\n"
	      "  restore                                   bring back the stacks that were up\n"
	      "  config [-f FILE] [--format ini|json] [--services] [-q]\n"
	      "                                            the stack as hutch read it: a\n"
	      "                                            hutch.ini (a compose file converted)\n"
	      "\n"
	      "Each command but ls and restore finds its stack as up does:\n" CLI_STACK_USAGE,
	      out);
}

int cmd_stack(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		stack_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 125 : 0;
	}
	const char *sub = argv[1];
	struct stack_opts o = {.tail = -1};
	int i;
	_cleanup_free_ char *verb = xasprintf("stack %s", sub);
	if (!strcmp(sub, "logs"))
		i = cli_parse_opts(verb, "", logs_options, ARRAY_SIZE(logs_options), true, argc - 1,
				   argv + 1, stack_set, &o);
	else if (!strcmp(sub, "config"))
		i = cli_parse_opts(verb,
				   "Usage: hutch stack config [-f FILE]... [--format ini|json] "
				   "[--services] [-q]\n"
				   "The stack as hutch read it: a hutch.ini that loads back to the "
				   "same stack (the default), its JSON, its services' names, or "
				   "nothing (-q: valid).\n" CLI_STACK_USAGE,
				   config_options, ARRAY_SIZE(config_options), true, argc - 1,
				   argv + 1, stack_set, &o);
	else if (!strcmp(sub, "exec"))
		i = cli_parse_opts(verb, "", exec_options, ARRAY_SIZE(exec_options), false,
				   argc - 1, argv + 1, stack_set, &o);
	else if (!strcmp(sub, "ls") || !strcmp(sub, "ps") || !strcmp(sub, "start") ||
		 !strcmp(sub, "stop") || !strcmp(sub, "restart") || !strcmp(sub, "events") ||
		 !strcmp(sub, "restore"))
		i = cli_parse_opts(verb, "", stack_options, ARRAY_SIZE(stack_options), true,
				   argc - 1, argv + 1, stack_set, &o);
	else {
		fprintf(stderr, "hutch: stack: unknown command '%s'\n", sub);
		stack_usage(stderr);
		return 125;
	}
	if (i < 0) {
		cli_stack_opts_fini(&o.st);
		return i == -2 ? 0 : 125;
	}
	int rc = stack_run(ctx, sub, verb, &o, argc - 1 - i, argv + 1 + i);
	cli_stack_opts_fini(&o.st);
	return rc;
}

static int stack_run(struct cli_ctx *ctx, const char *sub, const char *verb, struct stack_opts *op,
		     int nargs, char **args)
{
	struct stack_opts o = *op;
	if (!strcmp(sub, "ls"))
		return stack_ls(ctx, o.json);
	if (!strcmp(sub, "restore"))
		return stack_restore(ctx);
	struct hutch_stack *stack = NULL;
	int rc = cli_stack_load(ctx, verb, &op->st, &stack);
	if (rc)
		return rc;
	if (!strcmp(sub, "config")) {
		if (nargs > 0) {
			fprintf(stderr, "hutch: stack config: unexpected argument '%s'\n", args[0]);
			rc = 125;
		} else {
			rc = stack_config(ctx, stack, &o);
		}
	} else if (!strcmp(sub, "ps")) {
		rc = stack_ps(ctx, stack, o.json);
	} else if (!strcmp(sub, "events")) {
		rc = stack_events(ctx, stack, o.json);
	} else if (!strcmp(sub, "logs")) {
		bool color = isatty(STDOUT_FILENO) && !o.no_color && !getenv("NO_COLOR");
		rc = cli_stack_logs_follow(ctx, stack, args, (size_t)nargs, o.follow, o.tail, color,
					   o.timestamps, false);
	} else if (!strcmp(sub, "exec")) {
		if (nargs < 2) {
			fprintf(stderr,
				"hutch: stack exec: give a service and a command (stack exec "
				"[-f FILE] [-it] SERVICE CMD...)\n");
			rc = 125;
		} else {
			_cleanup_free_ char *cname =
			    xasprintf("%s-%s-1", hutch_stack_name(stack), args[0]);
			char **xa = xcalloc((size_t)nargs + 4, sizeof(char *));
			size_t k = 0;
			xa[k++] = "exec";
			if (o.i)
				xa[k++] = "-i";
			if (o.t)
				xa[k++] = "-t";
			xa[k++] = cname;
			for (int j = 1; j < nargs; j++)
				xa[k++] = args[j];
			rc = cmd_exec(ctx, (int)k, xa);
			free(xa);
		}
	} else {
		rc = stack_command(ctx, sub, stack, &op->st.src, args, (size_t)nargs);
	}
	hutch_stack_free(stack);
	return rc;
}
