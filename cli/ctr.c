/* hutch ps | exec | logs | stop | kill | rm | inspect */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "runtime/runtime.h"

static int open_runtime(struct cli_ctx *ctx, struct hutch_runtime *rt, struct hutch_err **err)
{
	if (hutch_runtime_init(rt, ctx->data_root, ctx->run_root, err) < 0)
		return -1;
	rt->quiet = ctx->quiet;
	rt->rootless = ctx->rootless;
	return 0;
}

static void ago(int64_t ns, char *buf, size_t len)
{
	int64_t s = (int64_t)time(NULL) - ns / 1000000000LL;
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%lld seconds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lld minutes", (long long)s / 60);
	else if (s < 86400)
		snprintf(buf, len, "%lld hours", (long long)s / 3600);
	else
		snprintf(buf, len, "%lld days", (long long)s / 86400);
}

int cmd_ps(struct cli_ctx *ctx, int argc, char **argv)
{
	bool all = false, json = false, quiet = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-a") || !strcmp(argv[i], "--all"))
			all = true;
		else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
			quiet = true;
		else if (!strcmp(argv[i], "--format=json") ||
			 (!strcmp(argv[i], "--format") && i + 1 < argc && !strcmp(argv[++i], "json")))
			json = true;
		else {
			fprintf(stderr, "hutch: ps: unknown option '%s' (ps [-a] [-q] [--format json])\n",
				argv[i]);
			return 125;
		}
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	struct hutch_state_list l;
	if (open_runtime(ctx, &rt, &err) < 0 || hutch_state_list(&rt, &l, &err) < 0) {
		hutch_runtime_fini(&rt);
		return cli_report(ctx, err);
	}
	if (json)
		putchar('[');
	else if (!quiet)
		printf("%-12s  %-16s  %-24s  %-8s  %-16s  %-20s  %s\n", "CONTAINER ID", "IMAGE",
		       "COMMAND", "PID", "CREATED", "STATUS", "NAMES");
	bool first = true;
	for (size_t i = 0; i < l.n; i++) {
		struct hutch_state *s = l.items[i];
		if (!all && s->status != HUTCH_RUNNING)
			continue;
		if (json) {
			_cleanup_free_ char *j = hutch_state_to_json(s, false);
			printf("%s%s", first ? "" : ",", j);
		} else if (quiet) {
			printf("%.12s\n", s->id);
		} else {
			char created[32], status[48], when[32];
			ago(s->created_ns, created, sizeof(created));
			if (s->status == HUTCH_RUNNING) {
				ago(s->started_ns, when, sizeof(when));
				snprintf(status, sizeof(status), "Up %s", when);
			} else if (s->status == HUTCH_EXITED) {
				ago(s->finished_ns, when, sizeof(when));
				snprintf(status, sizeof(status), "Exited (%d) %s ago", s->exit_code,
					 when);
			} else {
				snprintf(status, sizeof(status), "Created");
			}
			char cmd[25];
			snprintf(cmd, sizeof(cmd), "%s", s->command ? s->command : "");
			printf("%-12.12s  %-16.16s  %-24s  %-8d  %-16s  %-20s  %s\n", s->id,
			       s->image ? s->image : "", cmd,
			       s->status == HUTCH_RUNNING ? s->pid : 0, created, status,
			       s->name ? s->name : "");
		}
		first = false;
	}
	if (json)
		puts("]");
	hutch_state_list_free(&l);
	hutch_runtime_fini(&rt);
	return 0;
}


/* Shared shape of stop / kill / rm / inspect: options, then container refs. */
int cmd_ctr(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *verb = argv[0];
	int timeout = 10, sig = SIGKILL;
	bool force = false;
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(verb, "stop") && (!strcmp(a, "-t") || !strcmp(a, "--time")) && v) {
			char *end;
			long t = strtol(v, &end, 10);
			if (*end || t < 0 || t > 86400) {
				fprintf(stderr, "hutch: stop: invalid -t '%s': seconds expected\n", v);
				return 125;
			}
			timeout = (int)t;
			i++;
		} else if (!strcmp(verb, "kill") && (!strcmp(a, "-s") || !strcmp(a, "--signal")) && v) {
			sig = cli_parse_signal(v);
			if (sig < 0) {
				fprintf(stderr, "hutch: kill: unknown signal '%s'\n", v);
				return 125;
			}
			i++;
		} else if (!strcmp(verb, "rm") && (!strcmp(a, "-f") || !strcmp(a, "--force"))) {
			force = true;
		} else {
			fprintf(stderr, "hutch: %s: unknown option '%s'\n", verb, a);
			return 125;
		}
	}
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
		if (r == 0) {
			if (!strcmp(verb, "stop"))
				r = hutch_state_stop(&rt, s, timeout, &err);
			else if (!strcmp(verb, "kill"))
				r = hutch_state_signal(&rt, s, sig, &err);
			else if (!strcmp(verb, "rm"))
				r = hutch_state_remove(&rt, s, force, &err);
			else {
				_cleanup_free_ char *j = hutch_state_to_json(s, true);
				printf("%s%s", k > i ? "," : "", j);
			}
		}
		if (r < 0) {
			rc = cli_report(ctx, err) == 125 ? 1 : 1;
			hutch_err_free(&err);
		} else if (!json) {
			printf("%s\n", argv[k]);
		}
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

int cmd_logs(struct cli_ctx *ctx, int argc, char **argv)
{
	bool follow = false;
	long tail = -1;
	const char *ref = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow"))
			follow = true;
		else if ((!strcmp(argv[i], "--tail") || !strcmp(argv[i], "-n")) && i + 1 < argc) {
			char *end;
			tail = strtol(argv[++i], &end, 10);
			if (*end || tail < 0) {
				if (!strcmp(argv[i], "all")) {
					tail = -1;
					continue;
				}
				fprintf(stderr, "hutch: logs: invalid --tail '%s'\n", argv[i]);
				return 125;
			}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "hutch: logs: unknown option '%s'\n", argv[i]);
			return 125;
		} else if (!ref) {
			ref = argv[i];
		} else {
			fprintf(stderr, "hutch: logs: one container at a time\n");
			return 125;
		}
	}
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
				if (closed)
					break;
			}
		}
	}
	free(carry);
out:
	hutch_state_free(s);
	hutch_runtime_fini(&rt);
	return rc;
}

int cmd_exec(struct cli_ctx *ctx, int argc, char **argv)
{
	struct hutch_exec_opts o = {0};
	const char **env = NULL;
	size_t n_env = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-it") || !strcmp(a, "-ti")) {
			o.interactive = o.terminal = true;
		} else if (!strcmp(a, "-i") || !strcmp(a, "--interactive")) {
			o.interactive = true;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--tty")) {
			o.terminal = true;
		} else if ((!strcmp(a, "-e") || !strcmp(a, "--env")) && v) {
			env = xrealloc(env, (n_env + 1) * sizeof(char *));
			env[n_env++] = v;
			i++;
		} else if ((!strcmp(a, "-u") || !strcmp(a, "--user")) && v) {
			o.user = v;
			i++;
		} else if ((!strcmp(a, "-w") || !strcmp(a, "--workdir")) && v) {
			if (v[0] != '/') {
				fprintf(stderr, "hutch: exec: invalid -w '%s': absolute path expected\n", v);
				free(env);
				return 125;
			}
			o.cwd = v;
			i++;
		} else {
			fprintf(stderr, "hutch: exec: unknown option '%s'\n", a);
			free(env);
			return 125;
		}
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
