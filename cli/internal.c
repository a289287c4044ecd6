/* `hutch internal ...`: hidden verbs that hutch runs itself, never documented
 * for users. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include <signal.h>

/* `hutch internal finish DATA_ROOT RUN_ROOT ID`: what hutch-keeper execs when a
 * detached container has exited (runtime/monitor.c). The roots come from the
 * monitor that started it, not from this process's options or environment. */
static int cmd_internal_finish(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "hutch: internal finish: give DATA_ROOT RUN_ROOT ID\n");
		return 125;
	}
	/* exec'd from an fd, it would be named after the fd's number in ps */
	prctl(PR_SET_NAME, "hutch", 0, 0, 0);
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	if (hutch_runtime_init(&rt, argv[1], argv[2], &err) < 0)
		return cli_report(ctx, err);
	rt.quiet = ctx->quiet;
	int r = hutch_container_finish(&rt, argv[3], &err);
	/* what the CLI set up around the container, which the runtime knows
	 * nothing of: the network namespace net/ made (none: nothing to do) */
	struct hutch_net_ctx nctx = {
	    .data_root = argv[1], .run_root = argv[2], .rootless = ctx->rootless};
	_cleanup_err_ struct hutch_err *nerr = NULL;
	/* only once finish has taken the container as its own (the caller is its
	 * keeper and it has exited): a refused finish leaves its network alone */
	if (r == 0 && hutch_net_detach(&nctx, argv[3], &nerr) < 0)
		hutch_runtime_log(&rt, HUTCH_LOG_WARNING, "container %.12s: %s", argv[3],
				  nerr && nerr->msg ? nerr->msg : "cannot detach its network");
	hutch_runtime_fini(&rt);
	return r < 0 ? cli_report(ctx, err) : 0;
}

/* Copy what the pipe has to stdout; false at its end (or nothing now). */
static bool copy_out(int out[2])
{
	char buf[4096];
	ssize_t r = read(out[0], buf, sizeof(buf));
	if (r > 0) {
		(void)!write(STDOUT_FILENO, buf, (size_t)r);
		return true;
	}
	return false;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `hutch internal exec-poll [--timeout-ms N] CONTAINER CMD...`: the
 * non-blocking exec (hutch_exec_start, hutch_exec_reap) driven as a
 * supervisor's healthcheck drives it: output through a pipe of ours, the
 * pidfd and the pipe in one poll loop, SIGKILL after the timeout. Prints the
 * output, then "exit CODE signal SIG". For tests. */
static int cmd_internal_exec_poll(struct cli_ctx *ctx, int argc, char **argv)
{
	int i = 1;
	long timeout_ms = -1;
	if (i + 1 < argc && !strcmp(argv[i], "--timeout-ms")) {
		timeout_ms = strtol(argv[i + 1], NULL, 10);
		i += 2;
	}
	if (argc - i < 2) {
		fprintf(stderr,
			"hutch: internal exec-poll: give [--timeout-ms N] CONTAINER CMD...\n");
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_runtime rt;
	struct hutch_state *s = NULL;
	if (hutch_runtime_init(&rt, ctx->data_root, ctx->run_root, &err) < 0)
		return cli_report(ctx, err);
	rt.quiet = ctx->quiet;
	int rc = 125, out[2] = {-1, -1};
	_cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct hutch_exec *h = NULL;
	if (hutch_state_find(&rt, argv[i], &s, &err) < 0 || pipe2(out, O_CLOEXEC) < 0)
		goto done;
	struct hutch_exec_opts o = {.args = argv + i + 1, .n_args = (size_t)(argc - i - 1)};
	struct hutch_io io = {.stdin_fd = devnull, .stdout_fd = out[1], .stderr_fd = out[1]};
	if (hutch_exec_start(&rt, s, &o, &io, &h, &err) < 0)
		goto done;
	close(out[1]);
	out[1] = -1;
	int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
	bool killed = false;
	for (;;) {
		struct pollfd p[2] = {{.fd = hutch_exec_pidfd(h), .events = POLLIN},
				      {.fd = out[0], .events = POLLIN}};
		int wait = -1;
		if (deadline >= 0 && !killed) {
			int64_t left = deadline - mono_ms();
			wait = left > 0 ? (int)left : 0;
		}
		int n = poll(p, 2, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			hutch_exec_kill(h, SIGKILL, NULL);
			killed = true;
			continue;
		}
		if (p[0].revents)
			break;
		if (p[1].revents && !copy_out(out))
			break;
	}
	/* what it wrote before it exited (a child of its may hold the pipe on) */
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	while (out[0] >= 0 && copy_out(out))
		;
	struct hutch_exit st;
	int r = hutch_exec_reap(h, &st, &err);
	h = NULL;
	if (r == 0) {
		printf("exit %d signal %d\n", st.code, st.signal);
		rc = 0;
	}
done:
	for (int k = 0; k < 2; k++)
		if (out[k] >= 0)
			close(out[k]);
	hutch_exec_free(h);
	hutch_state_free(s);
	hutch_runtime_fini(&rt);
	return err ? cli_report(ctx, err) : rc;
}

int cmd_internal(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc >= 1 && !strcmp(argv[0], "exec-poll"))
		return cmd_internal_exec_poll(ctx, argc, argv);
	if (argc >= 1 && !strcmp(argv[0], "dns"))
		return cmd_internal_dns(ctx, argc, argv);
	if (argc >= 1 && !strcmp(argv[0], "finish"))
		return cmd_internal_finish(ctx, argc, argv);
	fprintf(
	    stderr,
	    "hutch: internal: unknown command '%s' (internal commands: dns, exec-poll, finish)\n",
	    argc >= 1 ? argv[0] : "");
	return 125;
}
