/* hutch ps | exec | logs | stop | kill | rm | inspect | start | restart | wait */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "images/images.h"
#include "runtime/runtime.h"
#include "supervisor/supervisor.h"

static int open_runtime(struct cli_ctx *ctx, struct hutch_runtime *rt, struct hutch_err **err)
{
	if (hutch_runtime_init(rt, ctx->data_root, ctx->run_root, err) < 0)
		return -1;
	rt->quiet = ctx->quiet;
	rt->rootless = ctx->rootless;
	return 0;
}

/* Docker's wording of a duration (go-units HumanDuration). */
static void human_duration(int64_t ns, char *buf, size_t len)
{
	int64_t s = ns / 1000000000LL;
	int64_t hours = (ns + 1800000000000LL) / 3600000000000LL; /* rounded */
	if (s < 1)
		snprintf(buf, len, "Less than a second");
	else if (s == 1)
		snprintf(buf, len, "1 second");
	else if (s < 60)
		snprintf(buf, len, "%lld seconds", (long long)s);
	else if (s / 60 == 1)
		snprintf(buf, len, "About a minute");
	else if (s < 3600)
		snprintf(buf, len, "%lld minutes", (long long)s / 60);
	else if (hours == 1)
		snprintf(buf, len, "About an hour");
	else if (hours < 48)
		snprintf(buf, len, "%lld hours", (long long)hours);
	else if (hours < 24 * 7 * 2)
		snprintf(buf, len, "%lld days", (long long)hours / 24);
	else if (hours < 24 * 30 * 2)
		snprintf(buf, len, "%lld weeks", (long long)hours / 24 / 7);
	else if (hours < 24 * 365 * 2)
		snprintf(buf, len, "%lld months", (long long)hours / 24 / 30);
	else
		snprintf(buf, len, "%lld years", (long long)(s / 3600) / 24 / 365);
}

static int64_t since(int64_t then_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t d = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - then_ns;
	return d < 0 ? 0 : d;
}

/* Display width of UTF-8 text: one column per character. */
static size_t text_width(const char *t)
{
	size_t w = 0;
	for (; *t; t++)
		w += ((unsigned char)*t & 0xC0) != 0x80;
	return w;
}

/* Docker's COMMAND cell: quoted, cut to 20 characters with an ellipsis. */
static char *command_cell(const char *cmd)
{
	const size_t max = 20;
	if (text_width(cmd) <= max)
		return xasprintf("\"%s\"", cmd);
	size_t bytes = 0, chars = 0;
	while (cmd[bytes] && chars < max - 1) {
		bytes++;
		while (((unsigned char)cmd[bytes] & 0xC0) == 0x80)
			bytes++;
		chars++;
	}
	return xasprintf("\"%.*s\u2026\"", (int)bytes, cmd);
}

enum { COL_ID, COL_IMAGE, COL_COMMAND, COL_PID, COL_CREATED, COL_STATUS, COL_NAMES, N_COLS };

static void print_row(char *const *cells, const size_t *widths)
{
	int last = N_COLS - 1;
	while (last > 0 && !*cells[last])
		last--;
	for (int c = 0; c <= last; c++) {
		fputs(cells[c], stdout);
		if (c < last)
			for (size_t k = text_width(cells[c]); k < widths[c] + 3; k++)
				putchar(' ');
	}
	putchar('\n');
}

enum { PS_ALL, PS_QUIET, PS_FORMAT };
static const struct cli_opt ps_opts[] = {
	{"all", 'a', false, PS_ALL},
	{"quiet", 'q', false, PS_QUIET},
	{"format", 0, true, PS_FORMAT},
};
struct ps_args {
	bool all, json, quiet;
};

static int ps_set(void *arg, int id, const char *v)
{
	struct ps_args *a = arg;
	switch (id) {
	case PS_ALL: a->all = true; break;
	case PS_QUIET: a->quiet = true; break;
	case PS_FORMAT:
		if (strcmp(v, "json") && strcmp(v, "table")) {
			fprintf(stderr, "hutch: ps: unknown --format '%s' (json or table)\n", v);
			return -1;
		}
		a->json = !strcmp(v, "json");
		break;
	}
	return 0;
}

int cmd_ps(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ps_args a = {0};
	int operand = cli_parse_opts("ps", "Usage: hutch ps [-a] [-q] [--format json|table]\n",
				     ps_opts, ARRAY_SIZE(ps_opts), true, argc, argv, ps_set, &a);
	if (operand < 0)
		return operand == -2 ? 0 : 125;
	if (operand < argc) {
		fprintf(stderr,
			"hutch: ps: unexpected argument '%s' (ps [-a] [-q] [--format json])\n",
			argv[operand]);
		return 125;
	}
	bool all = a.all, json = a.json, quiet = a.quiet;
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	struct hutch_state_list l;
	if (open_runtime(ctx, &rt, &err) < 0 || hutch_state_list(&rt, &l, &err) < 0) {
		hutch_runtime_fini(&rt);
		return cli_report(ctx, err);
	}
	/* Like docker ps: --format json is one object per line; the table's
	 * columns are as wide as their widest cell. */
	static const char *const header[N_COLS] = {"CONTAINER ID", "IMAGE",  "COMMAND", "PID",
						   "CREATED",	   "STATUS", "NAMES"};
	size_t widths[N_COLS];
	for (int c = 0; c < N_COLS; c++)
		widths[c] = text_width(header[c]);
	char *(*rows)[N_COLS] = xcalloc(l.n + 1, sizeof(*rows));
	size_t n_rows = 0;
	for (size_t i = 0; i < l.n; i++) {
		struct hutch_state *s = l.items[i];
		if (!all && s->status != HUTCH_RUNNING)
			continue;
		if (json) {
			_cleanup_free_ char *j = hutch_state_to_json(s, false);
			puts(j);
			continue;
		}
		if (quiet) {
			printf("%.12s\n", s->id);
			continue;
		}
		char created[64], status[96], when[48];
		human_duration(since(s->created_ns), when, sizeof(when));
		snprintf(created, sizeof(created), "%s ago", when);
		if (s->status == HUTCH_RUNNING) {
			human_duration(since(s->started_ns), when, sizeof(when));
			snprintf(status, sizeof(status), "Up %s", when);
		} else if (s->status == HUTCH_EXITED) {
			human_duration(since(s->finished_ns), when, sizeof(when));
			snprintf(status, sizeof(status), "Exited (%d) %s ago", s->exit_code, when);
		} else {
			snprintf(status, sizeof(status), "Created");
		}
		/* a stack's service: its health, or its restart under way */
		hutch_stack_ps_status(ctx->data_root, s->labels, s->n_labels,
				      s->status == HUTCH_RUNNING, s->exit_code, s->finished_ns, status,
				      sizeof(status));
		char **row = rows[n_rows++];
		row[COL_ID] = xasprintf("%.12s", s->id);
		/* the command is the image's (Entrypoint, Cmd): no escape sequences
		 * or line breaks from it in the table */
		row[COL_IMAGE] = cli_shown(s->image ? s->image : "");
		_cleanup_free_ char *command = cli_shown(s->command ? s->command : "");
		row[COL_COMMAND] = command_cell(command);
		row[COL_PID] = s->status == HUTCH_RUNNING ? xasprintf("%d", s->pid) : xstrdup("-");
		row[COL_CREATED] = xstrdup(created);
		row[COL_STATUS] = xstrdup(status);
		row[COL_NAMES] = cli_shown(s->name ? s->name : "");
		for (int c = 0; c < N_COLS; c++)
			if (text_width(row[c]) > widths[c])
				widths[c] = text_width(row[c]);
	}
	if (!json && !quiet) {
		print_row((char **)header, widths);
		for (size_t r = 0; r < n_rows; r++)
			print_row(rows[r], widths);
	}
	for (size_t r = 0; r < n_rows; r++)
		for (int c = 0; c < N_COLS; c++)
			free(rows[r][c]);
	free(rows);
	hutch_state_list_free(&l);
	hutch_runtime_fini(&rt);
	return 0;
}


/* Start an exited container again, holding its image's layers as `run -d`
 * does (the monitor keeps them for the container's lifetime). */
static int start_again(struct cli_ctx *ctx, struct hutch_runtime *rt, const struct hutch_state *s,
		       struct hutch_err **err)
{
	const char *net = hutch_label_get(s->labels, s->n_labels, "hutch.network");
	if (s->status == HUTCH_EXITED && net) {
		const char *who = s->name ? s->name : s->id;
		_cleanup_free_ char *shown = printable(net, strlen(net));
		return hutch_fail(err, 0,
				  "container %s cannot start again: it was on network '%s', which "
				  "it left when it exited (a container started again does not "
				  "rejoin one yet): remove it ('hutch rm %s') and run a new one",
				  who, shown, who);
	}
	if (s->status != HUTCH_EXITED || !s->image_id)
		return hutch_container_start_existing(rt, s, NULL, 0, err);
	struct hutch_store *store = NULL;
	struct hutch_image *img = NULL;
	_cleanup_err_ struct hutch_err *e = NULL;
	_cleanup_free_ char *by_id = xasprintf("sha256:%s", s->image_id);
	int r = hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_READ, &store, err);
	if (r == 0 && hutch_image_get(store, by_id, &img, &e) < 0) {
		/* `image rm` takes an image whose containers have all exited */
		const char *who = s->name ? s->name : s->id;
		bool gone = strstr(e->msg, "not found") != NULL;
		r = hutch_fail(
		    err, 0,
		    "container %s cannot start again: its image %s (%.12s) %s%s%s: remove "
		    "the container ('hutch rm %s') and run a new one",
		    who, s->image ? s->image : "", s->image_id,
		    gone ? "was removed from the store" : "cannot be used (", gone ? "" : e->msg,
		    gone ? "" : ")", who);
	}
	if (r == 0)
		r = hutch_container_start_existing(rt, s, img->layer_fds, img->n_layers, err);
	hutch_image_free(img);
	hutch_store_close(store);
	return r;
}

/* `wait`: block until the container has exited, then its exit code. */
static int wait_exit(struct hutch_runtime *rt, const struct hutch_state *s, int *code,
		     struct hutch_err **err)
{
	if (s->status != HUTCH_EXITED && hutch_state_wait_exited(rt, s, -1, err) < 0)
		return -1;
	struct hutch_state *now = NULL;
	if (hutch_state_find(rt, s->id, &now, NULL) < 0)
		return hutch_fail(err, 0,
				  "container %.12s was removed as it exited (--rm): its exit code "
				  "went with it",
				  s->id);
	*code = now->exit_code;
	hutch_state_free(now);
	return 0;
}

/* ---- containers of `run -d --restart/--health-cmd` (cli/run.c) -----------------
 * Such a container is the one replica of a stack named as it is, watched by
 * that stack's supervisor: stop, start and restart go through the supervisor
 * (so that a stopped container stays down, as `docker stop` of a
 * --restart=always one does), rm takes the stack down and removes its files,
 * inspect adds what the supervisor knows (health, probes). */
int cli_stack_call(struct cli_ctx *ctx, const char *verb, const char *name, const char *req,
		   int timeout_ms, struct json_object **out, char **errmsg);

static const char *supervised_stack(const struct hutch_state *s)
{
	const char *v = hutch_label_get(s->labels, s->n_labels, "hutch.supervised");
	return v && !strcmp(v, "run") ? hutch_label_get(s->labels, s->n_labels, "hutch.stack")
				      : NULL;
}

/* Tell the supervisor cmd ("stop", "start", "restart") for the container, with
 * the grace before SIGKILL when -t gave one (timeout >= 0): 0 told, 1 no
 * supervisor runs, -1 failed (said). */
static int sup_tell(struct cli_ctx *ctx, const char *verb, const char *stack, const char *cmd,
		    int timeout)
{
	if (hutch_stack_supervisor(ctx->data_root, ctx->run_root, stack) <= 0)
		return 1;
	char t[32] = "";
	if (timeout >= 0)
		snprintf(t, sizeof(t), ",\"timeout\":%d", timeout);
	_cleanup_free_ char *req =
	    xasprintf("{\"cmd\":\"%s\",\"services\":[\"run\"]%s}", cmd, t);
	return cli_stack_call(ctx, verb, stack, req, 30000, NULL, NULL) == 0 ? 0 : -1;
}

/* rm of a supervised container: its supervisor takes it down (removing it),
 * then the stack's files go. */
static int rm_supervised(struct cli_ctx *ctx, struct hutch_runtime *rt, const struct hutch_state *s,
			 const char *stack, bool force, struct hutch_err **err)
{
	if (s->status == HUTCH_RUNNING && !force)
		return hutch_state_remove(rt, s, false, err);
	pid_t pid = hutch_stack_supervisor(ctx->data_root, ctx->run_root, stack);
	if (pid > 0) {
		/* rm -f kills, as docker's does */
		char *why = NULL;
		if (cli_stack_call(ctx, "rm", stack, "{\"cmd\":\"down\",\"timeout\":0}", 60000,
				   NULL, &why) != 0) {
			/* not answered: it is stuck or dying; without it */
			free(why);
			kill(pid, SIGKILL);
		}
		for (int i = 0;
		     i < 3000 && hutch_stack_supervisor(ctx->data_root, ctx->run_root, stack) > 0;
		     i++)
			usleep(10000);
	}
	struct hutch_state *now = NULL;
	if (hutch_state_find(rt, s->id, &now, NULL) == 0) {
		int r = hutch_state_remove(rt, now, true, err);
		hutch_state_free(now);
		if (r < 0)
			return r;
	}
	_cleanup_free_ char *data = xasprintf("%s/stacks/%s", ctx->data_root, stack);
	_cleanup_free_ char *run = xasprintf("%s/stacks/%s", ctx->run_root, stack);
	if (remove_tree_at(AT_FDCWD, data, err) < 0)
		return -1;
	if (hutch_stack_supervisor(ctx->data_root, ctx->run_root, stack) <= 0)
		remove_tree_at(AT_FDCWD, run, NULL);
	return 0;
}

/* inspect: the container's record, with the supervisor's "health" (status,
 * failing streak, the last 5 probes, as docker's State.Health) and its
 * restart policy's count. */
static char *inspect_json(struct cli_ctx *ctx, const struct hutch_state *s)
{
	char *text = hutch_state_to_json(s, true);
	const char *stack = supervised_stack(s);
	struct json_object *st = NULL, *reps = NULL;
	if (!stack || hutch_stack_supervisor(ctx->data_root, ctx->run_root, stack) <= 0 ||
	    cli_stack_call(ctx, "inspect", stack, "{\"cmd\":\"status\"}", 10000, &st, NULL) != 0)
		return text;
	struct json_object *o = json_tokener_parse(text);
	if (o && json_object_object_get_ex(st, "replicas", &reps) &&
	    json_object_array_length(reps) > 0) {
		struct json_object *rep = json_object_array_get_idx(reps, 0), *v;
		struct json_object *sup = json_object_new_object();
		const char *keys[] = {"state", "restarts", "status", "why"};
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
			if (json_object_object_get_ex(rep, keys[i], &v))
				json_object_object_add(sup, keys[i], json_object_get(v));
		json_object_object_add(o, "supervisor", sup);
		if (json_object_object_get_ex(rep, "health", &v) &&
		    strcmp(json_object_get_string(v), "none")) {
			struct json_object *h = json_object_new_object();
			json_object_object_add(h, "status", json_object_get(v));
			if (json_object_object_get_ex(rep, "failing_streak", &v))
				json_object_object_add(h, "failing_streak", json_object_get(v));
			json_object_object_add(h, "log",
					       json_object_object_get_ex(rep, "probes", &v)
						   ? json_object_get(v)
						   : json_object_new_array());
			json_object_object_add(o, "health", h);
		}
		free(text);
		text = xstrdup(json_object_to_json_string_ext(
		    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(o);
	json_object_put(st);
	return text;
}

/* Shared shape of stop / kill / rm / inspect / start / restart / wait: options,
 * then container refs. */
enum { CTR_TIME, CTR_SIGNAL, CTR_FORCE, CTR_ATTACH };
struct ctr_args {
	const char *verb;
	int timeout, sig;
	bool force, timeout_given;
};

static int ctr_set(void *arg, int id, const char *v)
{
	struct ctr_args *a = arg;
	switch (id) {
	case CTR_TIME: {
		char *end;
		errno = 0;
		long t = strtol(v, &end, 10);
		if (errno || !*v || *end || t < 0 || t > 86400) {
			fprintf(stderr, "hutch: %s: invalid %s '%s': seconds expected\n", a->verb,
				cli_opt_given(), v);
			return -1;
		}
		a->timeout = (int)t;
		a->timeout_given = true;
		break;
	case CTR_ATTACH:
		fprintf(stderr,
			"hutch: start: %s is not supported: start the container, then follow its "
			"output with 'hutch logs -f CONTAINER' (or 'hutch exec -it' into it)\n",
			cli_opt_given());
		return -1;
	}
	case CTR_SIGNAL:
		a->sig = signal_from_name(v);
		if (a->sig < 0) {
			fprintf(stderr, "hutch: kill: unknown signal '%s'\n", v);
			return -1;
		}
		break;
	case CTR_FORCE: a->force = true; break;
	}
	return 0;
}

int cmd_ctr(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *verb = argv[0];
	static const struct cli_opt stop_opts[] = {{"time", 't', true, CTR_TIME}};
	static const struct cli_opt kill_opts[] = {{"signal", 's', true, CTR_SIGNAL}};
	static const struct cli_opt rm_opts[] = {{"force", 'f', false, CTR_FORCE}};
	static const struct cli_opt start_opts[] = {{"attach", 'a', false, CTR_ATTACH},
						    {"interactive", 'i', false, CTR_ATTACH}};
	const struct cli_opt *opts = NULL;
	size_t n_opts = 0;
	const char *usage = "Usage: hutch inspect CONTAINER...\n";
	if (!strcmp(verb, "stop")) {
		opts = stop_opts, n_opts = 1;
		usage = "Usage: hutch stop [-t SECONDS] CONTAINER...\n";
	} else if (!strcmp(verb, "kill")) {
		opts = kill_opts, n_opts = 1;
		usage = "Usage: hutch kill [-s SIGNAL] CONTAINER...\n";
	} else if (!strcmp(verb, "rm")) {
		opts = rm_opts, n_opts = 1;
		usage = "Usage: hutch rm [-f] CONTAINER...\n";
	} else if (!strcmp(verb, "start")) {
		opts = start_opts, n_opts = ARRAY_SIZE(start_opts);
		usage = "Usage: hutch start CONTAINER...\n";
	} else if (!strcmp(verb, "restart")) {
		opts = stop_opts, n_opts = 1;
		usage = "Usage: hutch restart [-t SECONDS] CONTAINER...\n";
	} else if (!strcmp(verb, "wait")) {
		usage = "Usage: hutch wait CONTAINER...\n";
	}
	struct ctr_args a = {.verb = verb, .timeout = 10, .sig = SIGKILL};
	int i = cli_parse_opts(verb, usage, opts, n_opts, true, argc, argv, ctr_set, &a);
	if (i < 0)
		return i == -2 ? 0 : 125;
	int timeout = a.timeout, sig = a.sig;
	bool force = a.force;
	if (i >= argc) {
		fprintf(stderr, "hutch: %s: give at least one container (name or id)\n", verb);
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	if (open_runtime(ctx, &rt, &err) < 0)
		return cli_report(ctx, err);
	int rc = 0;
	bool json = !strcmp(verb, "inspect");
	if (json)
		putchar('[');
	for (int k = i; k < argc; k++) {
		struct hutch_state *s = NULL;
		int r = hutch_state_find(&rt, argv[k], &s, &err);
		int code = 0;
		const char *stack = r == 0 ? supervised_stack(s) : NULL;
		if (stack &&
		    (!strcmp(verb, "stop") || !strcmp(verb, "start") || !strcmp(verb, "restart"))) {
			/* without -t, the grace the container was run with */
			int t = sup_tell(ctx, verb, stack, verb, a.timeout_given ? timeout : -1);
			if (t == 0 && !strcmp(verb, "stop"))
				t = hutch_state_wait_exited(&rt, s, -1, &err) < 0 ? -1 : 0;
			if (t <= 0) {
				if (t == 0)
					printf("%s\n", argv[k]);
				else
					rc = 1;
				hutch_err_free(&err);
				hutch_state_free(s);
				fflush(stdout);
				continue;
			}
			/* no supervisor (killed): as for any container */
		}
		if (stack && !strcmp(verb, "rm")) {
			r = rm_supervised(ctx, &rt, s, stack, force, &err);
			if (r == 0) {
				printf("%s\n", argv[k]);
				hutch_state_free(s);
				fflush(stdout);
				continue;
			}
		} else if (r == 0 && !strcmp(verb, "restart")) {
			/* stop (a no-op when it has exited), then start what is there now */
			r = hutch_state_stop(&rt, s, timeout, &err);
			hutch_state_free(steal_ptr(s));
			if (r == 0)
				r = hutch_state_find(&rt, argv[k], &s, &err);
		}
		if (r == 0) {
			if (!strcmp(verb, "start") || !strcmp(verb, "restart")) {
				r = start_again(ctx, &rt, s, &err);
				/* as Docker: starting what runs is no error */
				if (r == HUTCH_ALREADY_RUNNING) {
					r = 0;
					hutch_err_free(&err);
				}
			} else if (!strcmp(verb, "wait"))
				r = wait_exit(&rt, s, &code, &err);
			else if (!strcmp(verb, "stop"))
				r = hutch_state_stop(&rt, s, timeout, &err);
			else if (!strcmp(verb, "kill"))
				r = hutch_state_signal(&rt, s, sig, &err);
			else if (!strcmp(verb, "rm"))
				r = hutch_state_remove(&rt, s, force, &err);
			else {
				_cleanup_free_ char *j = inspect_json(ctx, s);
				printf("%s%s", k > i ? "," : "", j);
			}
		}
		if (r < 0) {
			cli_report(ctx, err);
			/* as Docker's (and rm's) -f: a container that is not there is
			 * said, but is no failure */
			if (!(force && r == HUTCH_STATE_NOT_FOUND))
				rc = 1;
			hutch_err_free(&err);
		} else if (!strcmp(verb, "wait")) {
			printf("%d\n", code);
		} else if (!json) {
			printf("%s\n", argv[k]);
		}
		fflush(stdout);
		hutch_state_free(s);
	}
	if (json)
		puts("]");
	hutch_runtime_fini(&rt);
	return rc;
}

/* CRI log line: "TIME STREAM P|F TEXT" -> TEXT to stdout or stderr. */
static void print_log_line(const char *line, size_t len)
{
	const char *p = memchr(line, ' ', len);
	if (!p)
		return;
	const char *stream = p + 1;
	const char *q = memchr(stream, ' ', len - (size_t)(stream - line));
	if (!q || (size_t)(q - line) + 3 > len)
		return;
	bool full = q[1] == 'F';
	const char *text = q + 3;
	size_t tlen = len - (size_t)(text - line);
	FILE *out = !strncmp(stream, "stderr", 6) ? stderr : stdout;
	fwrite(text, 1, tlen, out);
	if (full)
		fputc('\n', out);
	fflush(out);
}

static size_t print_from(int fd, char **carry, size_t *carry_len)
{
	char buf[65536];
	ssize_t n;
	size_t total = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += (size_t)n;
		*carry = xrealloc(*carry, *carry_len + (size_t)n + 1);
		memcpy(*carry + *carry_len, buf, (size_t)n);
		*carry_len += (size_t)n;
		size_t start = 0;
		for (size_t k = 0; k < *carry_len; k++)
			if ((*carry)[k] == '\n') {
				print_log_line(*carry + start, k - start);
				start = k + 1;
			}
		memmove(*carry, *carry + start, *carry_len - start);
		*carry_len -= start;
	}
	return total;
}

/* The log was closed: by its keeper when the container ended, or when it
 * rotated it (container.log became container.log.1, and a new container.log
 * was made before the old one was closed). Rotated: go on with the new one
 * (a new watch on it) and say true. */
static bool follow_rotated(int in, int *fd, const char *path, char **carry, size_t *carry_len)
{
	struct stat was, now;
	if (fstat(*fd, &was) < 0 || stat(path, &now) < 0 ||
	    (was.st_dev == now.st_dev && was.st_ino == now.st_ino))
		return false;
	int next = open(path, O_RDONLY | O_CLOEXEC);
	if (next < 0 || inotify_add_watch(in, path, IN_MODIFY | IN_CLOSE_WRITE) < 0) {
		if (next >= 0)
			close(next);
		return false;
	}
	close(*fd);
	*fd = next;
	print_from(*fd, carry, carry_len);
	return true;
}

enum { LOGS_FOLLOW, LOGS_TAIL };
static const struct cli_opt logs_opts[] = {
	{"follow", 'f', false, LOGS_FOLLOW},
	{"tail", 'n', true, LOGS_TAIL},
};
struct logs_args {
	bool follow;
	long tail;
};

static int logs_set(void *arg, int id, const char *v)
{
	struct logs_args *a = arg;
	if (id == LOGS_FOLLOW) {
		a->follow = true;
		return 0;
	}
	if (!strcmp(v, "all")) {
		a->tail = -1;
		return 0;
	}
	char *end;
	errno = 0;
	a->tail = strtol(v, &end, 10);
	if (errno || !*v || *end || a->tail < 0) {
		fprintf(stderr, "hutch: logs: invalid %s '%s': a number of lines or 'all'\n",
			cli_opt_given(), v);
		return -1;
	}
	return 0;
}

int cmd_logs(struct cli_ctx *ctx, int argc, char **argv)
{
	struct logs_args a = {.tail = -1};
	int first = cli_parse_opts("logs", "Usage: hutch logs [-f] [--tail N] CONTAINER\n",
				   logs_opts, ARRAY_SIZE(logs_opts), true, argc, argv, logs_set, &a);
	if (first < 0)
		return first == -2 ? 0 : 125;
	if (argc - first > 1) {
		fprintf(stderr, "hutch: logs: one container at a time\n");
		return 125;
	}
	bool follow = a.follow;
	long tail = a.tail;
	const char *ref = first < argc ? argv[first] : NULL;
	if (!ref) {
		fprintf(stderr, "hutch: logs: give a container (name or id)\n");
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	struct hutch_state *s = NULL;
	if (open_runtime(ctx, &rt, &err) < 0 || hutch_state_find(&rt, ref, &s, &err) < 0) {
		hutch_runtime_fini(&rt);
		return cli_report(ctx, err);
	}
	_cleanup_free_ char *path = hutch_state_log_path(&rt, s);
	int rc = 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (s->detached)
			fprintf(stderr, "hutch: logs: container %.12s has no log yet\n", s->id);
		else
			fprintf(stderr,
				"hutch: logs: container %.12s ran in the foreground: its output went "
				"to the terminal, not to a log\n",
				s->id);
		rc = s->detached ? 0 : 1;
		goto out;
	}
	if (tail >= 0) {
		/* find the offset of the last `tail` full records */
		off_t end = lseek(fd, 0, SEEK_END), pos = end;
		long lines = 0;
		char c;
		/* walk back over `tail` record ends (not counting the last one) */
		while (pos > 0 && lines < tail + 1) {
			pos--;
			if (pread(fd, &c, 1, pos) == 1 && c == '\n')
				lines++;
		}
		lseek(fd, lines == tail + 1 ? pos + 1 : 0, SEEK_SET);
	}
	char *carry = NULL;
	size_t carry_len = 0;
	print_from(fd, &carry, &carry_len);
	if (follow && s->status == HUTCH_RUNNING) {
		/* The monitor closes the log when the container has exited. */
		_cleanup_close_ int in = inotify_init1(IN_CLOEXEC);
		bool watching = in >= 0 && inotify_add_watch(in, path, IN_MODIFY | IN_CLOSE_WRITE) >= 0;
		/* It may have ended between our first look and the watch: look again
		 * now that no close can be missed. */
		struct hutch_state *now = NULL;
		if (watching && hutch_state_find(&rt, s->id, &now, NULL) == 0 &&
		    now->status != HUTCH_RUNNING)
			watching = false;
		hutch_state_free(now);
		print_from(fd, &carry, &carry_len);
		if (watching) {
			for (;;) {
				char evbuf[4096];
				ssize_t n = read(in, evbuf, sizeof(evbuf));
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0)
					break;
				print_from(fd, &carry, &carry_len);
				bool closed = false;
				for (char *p = evbuf; p < evbuf + n;) {
					struct inotify_event *ev = (struct inotify_event *)p;
					closed |= (ev->mask & IN_CLOSE_WRITE) != 0;
					p += sizeof(*ev) + ev->len;
				}
				if (closed && !follow_rotated(in, &fd, path, &carry, &carry_len))
					break;
				/* the new log's last close may have come before its watch:
				 * once the exit is recorded, its keeper has closed it or is
				 * about to, and everything is in it */
				if (closed) {
					struct hutch_state *again = NULL;
					bool ended = hutch_state_find(&rt, s->id, &again, NULL) == 0 &&
						     again->status != HUTCH_RUNNING;
					hutch_state_free(again);
					if (ended) {
						print_from(fd, &carry, &carry_len);
						break;
					}
				}
			}
		}
	}
	free(carry);
out:
	hutch_state_free(s);
	hutch_runtime_fini(&rt);
	return rc;
}

enum { EXEC_I, EXEC_T, EXEC_E, EXEC_U, EXEC_W };
static const struct cli_opt exec_opts[] = {
	{"interactive", 'i', false, EXEC_I}, {"tty", 't', false, EXEC_T},
	{"env", 'e', true, EXEC_E},	     {"user", 'u', true, EXEC_U},
	{"workdir", 'w', true, EXEC_W},
};
struct exec_args {
	struct hutch_exec_opts o;
	const char **env;
	size_t n_env;
};

static int exec_set(void *arg, int id, const char *v)
{
	struct exec_args *a = arg;
	switch (id) {
	case EXEC_I: a->o.interactive = true; break;
	case EXEC_T: a->o.terminal = true; break;
	case EXEC_E:
		a->env = xrealloc(a->env, (a->n_env + 1) * sizeof(char *));
		a->env[a->n_env++] = v;
		break;
	case EXEC_U: a->o.user = v; break;
	case EXEC_W:
		if (v[0] != '/') {
			fprintf(stderr, "hutch: exec: invalid %s '%s': absolute path expected\n",
				cli_opt_given(), v);
			return -1;
		}
		a->o.cwd = v;
		break;
	}
	return 0;
}

int cmd_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "Usage: hutch exec [-it] [-e K=V] [-u USER] [-w DIR] "
				    "CONTAINER COMMAND [ARG...]\n";
	struct exec_args ea = {0};
	/* the command's own options are not ours: no options after the container */
	int i = cli_parse_opts("exec", usage, exec_opts, ARRAY_SIZE(exec_opts), false, argc, argv,
			       exec_set, &ea);
	struct hutch_exec_opts o = ea.o;
	const char **env = ea.env;
	size_t n_env = ea.n_env;
	if (i < 0) {
		free(env);
		return i == -2 ? 0 : 125;
	}
	if (i + 1 >= argc) {
		fprintf(stderr, "hutch: exec: usage: hutch exec [-it] [-e K=V] [-u USER] [-w DIR] "
				"CONTAINER COMMAND [ARG...]\n");
		free(env);
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	struct hutch_state *s = NULL;
	int rc = 125;
	if (open_runtime(ctx, &rt, &err) < 0 || hutch_state_find(&rt, argv[i], &s, &err) < 0)
		goto out;
	/* -e K copies K from here, as for run */
	char **envv = xcalloc(n_env + 1, sizeof(char *));
	for (size_t k = 0; k < n_env; k++) {
		const char *val = strchr(env[k], '=') ? NULL : getenv(env[k]);
		envv[o.n_env++] = strchr(env[k], '=') ? xstrdup(env[k])
				  : xasprintf("%s=%s", env[k], val ? val : "");
	}
	o.env = envv;
	o.args = argv + i + 1;
	o.n_args = (size_t)(argc - i - 1);
	struct hutch_io io = {.stdin_fd = 0, .stdout_fd = 1, .stderr_fd = 2};
	struct hutch_exit st;
	hutch_block_forwarded_signals();
	if (hutch_exec(&rt, s, &o, &io, &st, &err) == 0)
		rc = st.code;
	for (size_t k = 0; k < o.n_env; k++)
		free(envv[k]);
	free(envv);
out:
	if (err)
		rc = cli_report(ctx, err);
	free(env);
	hutch_state_free(s);
	hutch_runtime_fini(&rt);
	return rc;
}
