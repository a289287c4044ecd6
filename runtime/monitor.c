/* The monitor of a detached container (the part of conmon that hutch needs): a
 * forked hutch process that starts the container, holds its pidfd, writes its
 * output to DATA/containers/ID/container.log in the CRI log format
 * ("TIMESTAMP STREAM P|F TEXT", P for a partial line), records its exit status
 * and cleans up its cgroup (and everything, with --rm) when it ends. It also
 * holds the image's layer locks for the container's lifetime. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "common/util.h"
#include "runtime/container_internal.h"

struct start_report {
	int ok;
	int exit_code;
	int errno_;
	char msg[2048];
};

static void log_record(int logfd, const char *stream, const char *text, size_t len, bool full)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char head[96];
	size_t n = strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(head + n, sizeof(head) - n, ".%09ldZ %s %c ", ts.tv_nsec, stream,
			      full ? 'F' : 'P');
	struct iovec iov[3] = {{head, n}, {(void *)text, len}, {"\n", 1}};
	/* one writev per record: readers never see half a record */
	(void)!writev(logfd, iov, 3);
}

/* Log what one read returned: complete lines as F records, a tail as P. */
static void log_chunk(int logfd, const char *stream, const char *buf, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(buf, '\n', len);
		size_t line = nl ? (size_t)(nl - buf) : len;
		log_record(logfd, stream, buf, line, nl != NULL);
		if (!nl)
			break;
		buf += line + 1;
		len -= line + 1;
	}
}

static bool drain(int fd, int logfd, const char *stream)
{
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	log_chunk(logfd, stream, buf, (size_t)n);
	return true;
}

static void monitor_loop(struct hutch_container *c, int out_fd, int err_fd, int logfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->pidfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, c->pidfd, &ev);
	int fds[2] = {out_fd, err_fd};
	const char *names[2] = {"stdout", "stderr"};
	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
		ev.data.fd = fds[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	bool exited = false;
	while (!exited) {
		struct epoll_event evs[3];
		int n = epoll_wait(ep, evs, 3, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == c->pidfd) {
				exited = true;
				continue;
			}
			for (int k = 0; k < 2; k++)
				if (evs[i].data.fd == fds[k] && !drain(fds[k], logfd, names[k])) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
					close(fds[k]);
					fds[k] = -1;
				}
		}
	}
	/* What the container wrote before it exited is still in the pipes. */
	for (int k = 0; k < 2; k++) {
		char buf[16384];
		ssize_t n;
		/* non-blocking: stops at EAGAIN (empty) or EOF/EIO (all writers gone) */
		while (fds[k] >= 0 && ((n = read(fds[k], buf, sizeof(buf))) > 0 ||
				       (n < 0 && errno == EINTR)))
			if (n > 0)
				log_chunk(logfd, names[k], buf, (size_t)n);
		if (fds[k] >= 0)
			close(fds[k]);
	}
	close(ep);
}

/* Close every fd from 3 up but the layer locks and the ready pipe: whatever
 * else the CLI had open (a pipe on fd 3 of a shell pipeline) would otherwise
 * stay open for the container's lifetime, and its reader would wait for EOF as
 * long. */
static void close_inherited(const int *hold, size_t n_hold, int ready_fd)
{
	int *keep = xcalloc(n_hold + 1, sizeof(int));
	memcpy(keep, hold, n_hold * sizeof(int));
	keep[n_hold] = ready_fd;
	close_fds_except(keep, n_hold + 1);
	free(keep);
}

static __attribute__((noreturn)) void monitor_main(struct hutch_runtime *rt,
						   const struct hutch_spec *spec, const int *hold,
						   size_t n_hold, int ready_fd)
{
	struct hutch_err *err = NULL;
	struct start_report rep = {0};
	/* Its own session (no terminal signals of the CLI's), out of the CLI's
	 * directory (which could then not be unmounted), and none of its fds. */
	if (getsid(0) != getpid())
		setsid();
	if (chdir("/") < 0) {
		hutch_fail_sys(&err, "chdir /");
		goto failed;
	}
	close_inherited(hold, n_hold, ready_fd);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, in[2] = {-1, -1};
	struct hutch_container *c = NULL;
	if (devnull < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		hutch_fail_sys(&err, "create the container's output pipes");
		goto failed;
	}
	/* -di: a stdin nobody writes to but that never ends (the write end stays
	 * here), as Docker gives a detached container; with -t the pty's master,
	 * held here too, does the same. */
	if (spec->process.interactive && !spec->process.terminal && pipe2(in, O_CLOEXEC) < 0) {
		hutch_fail_sys(&err, "create the container's stdin pipe");
		goto failed;
	}
	struct hutch_io io = {.stdin_fd = in[0] >= 0 ? in[0] : devnull, .stdout_fd = out[1],
			      .stderr_fd = errp[1]};
	if (hutch_container_start(rt, spec, &io, &c, &err) < 0)
		goto failed;
	close(out[1]);
	close(errp[1]);
	if (in[0] >= 0)
		close(in[0]);
	_cleanup_free_ char *log_path = xasprintf("%s/container.log", c->data_dir);
	int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	rep.ok = 1;
	(void)!write(ready_fd, &rep, sizeof(rep));
	close(ready_fd);
	/* the CLI has gone; nothing of ours may hold its terminal */
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	if (c->pty_master >= 0) {
		close(out[0]);
		close(errp[0]);
		monitor_loop(c, c->pty_master, -1, logfd);
		c->pty_master = -1;
	} else {
		monitor_loop(c, out[0], errp[0], logfd);
	}
	if (in[1] >= 0)
		close(in[1]);
	struct hutch_exit st;
	hutch_container_reap(c, &st, NULL);
	if (logfd >= 0)
		close(logfd);
	hutch_container_destroy(c, NULL);
	if (rt->on_exit)
		rt->on_exit(rt, spec->id, rt->on_exit_data);
	_exit(0);
failed:
	rep.ok = 0;
	rep.exit_code = err && err->exit_code ? err->exit_code : 125;
	rep.errno_ = err ? err->errno_ : 0;
	snprintf(rep.msg, sizeof(rep.msg), "%s", err && err->msg ? err->msg : "unknown error");
	(void)!write(ready_fd, &rep, sizeof(rep));
	_exit(1);
}

int hutch_container_run_detached(struct hutch_runtime *rt, const struct hutch_spec *spec,
				 const int *hold_fds, size_t n_hold_fds, struct hutch_err **err)
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(ready[0]);
		close(ready[1]);
		return hutch_fail_sys(err, "fork the container's monitor");
	}
	if (pid == 0) {
		close(ready[0]);
		monitor_main(rt, spec, hold_fds, n_hold_fds, ready[1]);
	}
	close(ready[1]);
	struct start_report rep = {0};
	size_t got = 0;
	while (got < sizeof(rep)) {
		ssize_t n = read(ready[0], (char *)&rep + got, sizeof(rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(ready[0]);
	if (got == sizeof(rep) && rep.ok)
		return 0;
	/* it failed (and cleaned up): collect the monitor */
	waitpid(pid, NULL, 0);
	if (got != sizeof(rep))
		return hutch_fail(err, 0, "the container's monitor died while starting it");
	rep.msg[sizeof(rep.msg) - 1] = '\0';
	hutch_fail(err, rep.errno_, "%s", rep.msg);
	(*err)->exit_code = rep.exit_code;
	return -1;
}
