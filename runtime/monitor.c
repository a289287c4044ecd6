/* The monitor of a detached container (the part of conmon that hutch needs): a
 * forked hutch process that starts the container with all of hutch's code and
 * then execs hutch-keeper (runtime/keeper/keeper.c), a tiny static program that
 * stays the container's parent and holds its pidfd, its output, the image's
 * layer locks and its directory: it writes the output to
 * DATA/containers/ID/container.log in the CRI log format ("TIMESTAMP STREAM
 * P|F TEXT", P for a partial line) with size-based rotation, and when the
 * container has exited writes DATA/containers/ID/exit and execs hutch again
 * (`hutch internal finish`, hutch_container_finish) to record the exit status
 * and clean up its cgroup (and everything, with --rm). The pid stays the same
 * throughout: the record's owner is one process from start to finish. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common/idmap.h"
#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/process_internal.h"

/* Close every fd from 3 up but the layer locks and the ready pipe: whatever
 * else the CLI had open (a pipe on fd 3 of a shell pipeline) would otherwise
 * stay open for the container's lifetime, and its reader would wait for EOF as
 * long. */
static void close_inherited(const int *hold, size_t n_hold, int ready_fd, int notify_fd)
{
	int *keep = xcalloc(n_hold + 2, sizeof(int));
	memcpy(keep, hold, n_hold * sizeof(int));
	keep[n_hold] = ready_fd;
	keep[n_hold + 1] = notify_fd > 0 ? notify_fd : -1;
	close_fds_except(keep, n_hold + 2);
	free(keep);
}

/* Clear FD_CLOEXEC: fd is to reach hutch-keeper. */
static void pass_on(int fd)
{
	if (fd >= 0)
		fcntl(fd, F_SETFD, 0);
}

/* Become hutch-keeper (see the top of this file), which takes over the
 * container; returns only if it could not be exec'd. */
static void exec_keeper(struct hutch_runtime *rt, struct hutch_container *c, int keeper, int exe,
			int dirfd, int out_fd, int err_fd, int stdin_hold, const int *hold,
			size_t n_hold)
{
	int notify = rt->exit_notify_fd > 0 ? rt->exit_notify_fd : -1;
	/* The container's mount namespace, held until the keeper has said the
	 * exit: the kernel tears a namespace's mounts down (an RCU grace period
	 * and more) in the exiting process before its exit can be waited for,
	 * unless someone else holds it. The keeper lets go after its word. */
	char ns[64];
	snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", c->pid);
	int mntns = open(ns, O_RDONLY | O_CLOEXEC);
	int fds[] = {c->pidfd, out_fd, err_fd, dirfd, exe, stdin_hold, notify, mntns};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		pass_on(fds[i]);
	for (size_t i = 0; i < n_hold; i++)
		pass_on(hold[i]);
	char a[9][24];
	snprintf(a[0], sizeof(a[0]), "%d", c->pidfd);
	snprintf(a[1], sizeof(a[1]), "%d", out_fd);
	snprintf(a[2], sizeof(a[2]), "%d", err_fd);
	snprintf(a[3], sizeof(a[3]), "%d", dirfd);
	snprintf(a[4], sizeof(a[4]), "%d", exe);
	snprintf(a[5], sizeof(a[5]), "%lld", (long long)HUTCH_LOG_MAX_SIZE);
	snprintf(a[6], sizeof(a[6]), "%d", stdin_hold);
	snprintf(a[7], sizeof(a[7]), "%d", notify);
	snprintf(a[8], sizeof(a[8]), "%d", mntns);
	char *argv[] = {"hutch-keeper", a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
			"--", "hutch", "internal", "finish", rt->data_root, rt->run_root, c->id,
			NULL};
	extern char **environ;
	syscall(SYS_execveat, keeper, "", argv, environ, AT_EMPTY_PATH);
}

static __attribute__((noreturn)) void monitor_main(struct hutch_runtime *rt,
						   const struct hutch_spec *spec, bool again,
						   const int *hold, size_t n_hold, int ready_fd)
{
	struct hutch_err *err = NULL;
	int ret = -1;
	/* Its own session (no terminal signals of the CLI's), out of the CLI's
	 * directory (which could then not be unmounted), and none of its fds. */
	if (getsid(0) != getpid())
		setsid();
	if (chdir("/") < 0) {
		hutch_fail_sys(&err, "chdir /");
		goto failed;
	}
	close_inherited(hold, n_hold, ready_fd, rt->exit_notify_fd);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	/* hutch's own binary, to come back to when the container has exited
	 * (a path could name another binary by then: an upgrade) */
	int exe = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	if (exe < 0) {
		hutch_fail_sys(&err, "open /proc/self/exe");
		goto failed;
	}
	int keeper = proc_keeper_memfd(&err);
	if (keeper < 0)
		goto failed;
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
		ret = started;
		goto failed;
	}
	close(out[1]);
	close(errp[1]);
	if (in[0] >= 0)
		close(in[0]);
	int dirfd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		hutch_fail_sys(&err, "open %s", c->data_dir);
		hutch_container_destroy(c, NULL);
		goto failed;
	}
	/* the log is there when `run -d` returns; the exit file is this run's */
	close(openat(dirfd, "container.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
	unlinkat(dirfd, "exit", 0);
	proc_report(ready_fd, 0, 0, NULL);
	close(ready_fd);
	/* the CLI has gone; nothing of ours may hold its terminal */
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	int out_fd = out[0], err_fd = errp[0];
	if (c->pty_master >= 0) {
		close(out[0]);
		close(errp[0]);
		out_fd = c->pty_master;
		err_fd = -1;
	}
	exec_keeper(rt, c, keeper, exe, dirfd, out_fd, err_fd, in[1], hold, n_hold);
	/* Not exec'd (it was checked before the start: hardly ever): nobody
	 * could watch the container, so it goes. */
	hutch_container_destroy(c, NULL);
	_exit(1);
failed:
	proc_report(ready_fd, ret, err && err->exit_code ? err->exit_code : 125, err);
	_exit(1);
}

int hutch_container_finish(struct hutch_runtime *rt, const char *id, struct hutch_err **err)
{
	_cleanup_free_ char *dir = xasprintf("%s/containers/%s", rt->data_root, id);
	_cleanup_free_ char *exit_path = xasprintf("%s/exit", dir);
	_cleanup_free_ char *text = NULL;
	long long code = 137, sig = 0, fin = now_ns();
	if (read_file_at(AT_FDCWD, exit_path, &text, NULL, NULL) == 0 &&
	    sscanf(text, "%lld %lld %lld", &code, &sig, &fin) != 3)
		return hutch_fail(err, 0, "%s: not CODE SIGNAL TIME", exit_path);
	struct hutch_state *s = NULL;
	if (state_read(rt, id, &s) < 0)
		return hutch_fail(err, 0, "container %.12s has no record", id);
	/* only its owner records its exit (this is a verb anyone can call) */
	if (s->monitor_pid != getpid() || s->status != HUTCH_RUNNING) {
		hutch_state_free(s);
		return hutch_fail(err, 0, "container %.12s is not this process's to finish", id);
	}
	bool oom = false, cgroup_gone = true;
	if (s->cgroup) {
		struct cgroup cg = {.dirfd = cgroup_open_record(rt, s->cgroup, id, NULL),
				    .has_memory = true};
		oom = cgroup_oom_kills(&cg) > 0;
		/* Its processes went with its pid 1; one that was put in it from
		 * outside is not killed: the cgroup then stays, for `rm` to retry. */
		if (cg.dirfd >= 0) {
			close(cg.dirfd);
			cgroup_gone = cgroup_remove(s->cgroup, err) == 0;
		}
		if (cgroup_gone) {
			free(s->cgroup);
			s->cgroup = NULL;
		}
	}
	s->status = HUTCH_EXITED;
	s->exit_code = (int)code;
	s->oom_killed = oom;
	s->finished_ns = fin;
	int ret = 0;
	/* A cgroup that could not be removed stays in the record: `rm` tries
	 * again. A --rm container goes altogether, under its dir's lock (see
	 * collect_orphan in state.c). */
	if (!cgroup_gone)
		ret = -1;
	if (!cgroup_gone || !s->auto_remove) {
		if (state_write(rt, s, ret ? NULL : err) < 0)
			ret = -1;
	} else {
		_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			flock(dfd, LOCK_EX);
		if (state_remove_dir_at(dir, err) < 0)
			ret = -1;
	}
	hutch_state_free(s);
	return ret;
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
	int r = proc_read_report_as(ready[0], false,
				    "the container's monitor died while starting it", err);
	close(ready[0]);
	/* failed (and cleaned up): collect the monitor */
	if (r < 0)
		waitpid(pid, NULL, 0);
	return r;
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
