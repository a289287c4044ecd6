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
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "common/util.h"
#include "runtime/container_internal.h"

struct start_report {
	int ok;
	int already_running; /* started again: it runs or starts already */
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
						   const struct hutch_spec *spec, bool again,
						   const int *hold, size_t n_hold, int ready_fd)
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
	int started = container_start(rt, spec, &io, again, &c, &err);
	if (started < 0) {
		rep.already_running = started == HUTCH_ALREADY_RUNNING;
		goto failed;
	}
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

/* Fork the monitor and wait for its word: started, or why not. */
static int run_detached(struct hutch_runtime *rt, const struct hutch_spec *spec, bool again,
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
		monitor_main(rt, spec, again, hold_fds, n_hold_fds, ready[1]);
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
	if (err && *err)
		(*err)->exit_code = rep.exit_code;
	return rep.already_running ? HUTCH_ALREADY_RUNNING : -1;
}

int hutch_container_run_detached(struct hutch_runtime *rt, const struct hutch_spec *spec,
				 const int *hold_fds, size_t n_hold_fds, struct hutch_err **err)
{
	return run_detached(rt, spec, false, hold_fds, n_hold_fds, err);
}

/* What cannot start again, said with what to do about it. */
static int cannot_start(struct hutch_err **err, const struct hutch_state *s, const char *why)
{
	return hutch_fail(err, 0,
			  "container %s cannot start again: %s: remove it ('hutch rm %s') and run "
			  "a new one",
			  s->name ? s->name : s->id, why, s->name ? s->name : s->id);
}

/* Every layer the spec names must still be there and held by the caller (an
 * `image rm` of the container's image while it was exited takes them away). */
static int check_layers_held(const struct hutch_state *s, const struct hutch_spec *spec,
			     const int *hold_fds, size_t n_hold_fds, struct hutch_err **err)
{
	for (size_t i = 0; i < spec->root.n_layers; i++) {
		const char *dir = spec->root.layers[i];
		struct stat st;
		if (stat(dir, &st) < 0) {
			_cleanup_free_ char *why = xasprintf(
			    "layer %s of its image %s is gone from the store (%s): the image was "
			    "removed after the container was made",
			    dir, s->image ? s->image : "(unknown)", strerror(errno));
			return cannot_start(err, s, why);
		}
		bool held = false;
		for (size_t k = 0; k < n_hold_fds && !held; k++) {
			struct stat h;
			held = fstat(hold_fds[k], &h) == 0 && h.st_dev == st.st_dev &&
			       h.st_ino == st.st_ino;
		}
		if (!held)
			return hutch_fail(
			    err, 0,
			    "container %.12s: its image's layer %s is not held (the "
			    "caller must hold the image's layers, as for a new container)",
			    s->id, dir);
	}
	return 0;
}

int hutch_container_start_existing(struct hutch_runtime *rt, const struct hutch_state *s,
				   const int *hold_fds, size_t n_hold_fds, struct hutch_err **err)
{
	if (s->status == HUTCH_RUNNING) {
		hutch_fail(err, 0, "container %.12s is already running", s->id);
		return HUTCH_ALREADY_RUNNING;
	}
	if (s->status == HUTCH_CREATED) {
		hutch_fail(err, 0, "container %.12s is already starting (in process %d)", s->id,
			   s->monitor_pid);
		return HUTCH_ALREADY_RUNNING;
	}
	if (s->auto_remove)
		return cannot_start(err, s, "it was run with --rm");
	struct hutch_spec *spec = NULL;
	_cleanup_err_ struct hutch_err *e = NULL;
	if (hutch_spec_load(rt, s->id, &spec, &e) < 0)
		return hutch_fail(err, 0, "%s%s%s%s: remove it ('hutch rm %s') and run a new one",
				  e->msg, e->errno_ ? " (" : "",
				  e->errno_ ? strerror(e->errno_) : "", e->errno_ ? ")" : "",
				  s->name ? s->name : s->id);
	int r = check_layers_held(s, spec, hold_fds, n_hold_fds, err);
	/* it has no terminal of anyone's to run in now: its output goes to its log */
	spec->detached = true;
	if (r == 0) {
		r = run_detached(rt, spec, true, hold_fds, n_hold_fds, err);
		if (r == -1)
			hutch_err_wrap(err, "container %s", s->name ? s->name : s->id);
	}
	hutch_spec_free(spec);
	return r;
}
