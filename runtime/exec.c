/* hutch exec: a new process in a running container. We join all of its
 * namespaces at once with setns(pidfd), and its cgroup through clone3; a fork
 * after setns puts the command in the container's pid namespace. The command
 * then goes through the same last steps as the container's own pid 1 (user,
 * capabilities, no_new_privs, seccomp), so exec is never a way around them.
 * The middle process stays outside, forwards signals and relays the exit code. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/process_internal.h"

static void merge_env(struct hutch_process *p, char **add, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(add[i], '=');
		size_t klen = eq ? (size_t)(eq - add[i]) : strlen(add[i]);
		bool replaced = false;
		for (size_t k = 0; k < p->n_env && !replaced; k++)
			if (!strncmp(p->env[k], add[i], klen) && p->env[k][klen] == '=') {
				free(p->env[k]);
				p->env[k] = xstrdup(add[i]);
				replaced = true;
			}
		if (!replaced) {
			p->env = xrealloc(p->env, (p->n_env + 2) * sizeof(char *));
			p->env[p->n_env++] = xstrdup(add[i]);
			p->env[p->n_env] = NULL;
		}
	}
}

/* What an exec holds between its start and its reap. */
struct hutch_exec {
	struct hutch_container c; /* pid, pidfd, pty master, relay: for attach_wait */
	int stdin_fd;		  /* relayed to it (-i), else -1 */
};

struct exec_child {
	const struct hutch_state *s;
	int target; /* pidfd of the container's pid 1 */
};

/* The middle process: it joins the container's namespaces, forks the command
 * into its pid namespace, and stays outside to forward signals and relay the
 * exit code (proc_run_init). */
static __attribute__((noreturn)) void exec_child(struct proc_ctx *pc, void *arg)
{
	struct exec_child *x = arg;
	const struct hutch_state *s = x->s;
	struct hutch_err *e = NULL;
	/* the namespaces it has of its own, and no others: setns into the
	 * caller's own user namespace would fail */
	if (setns(x->target, ns_clone_flags(s->namespaces)) < 0) {
		if (errno == ESRCH)
			hutch_fail(&e, 0, "container %.12s is not running", s->id);
		else
			hutch_fail_sys(&e, "join the namespaces of container %.12s", s->id);
		proc_fail(pc, 125, e);
	}
	/* joining a user namespace is a change of credentials: the command
	 * dies with hutch exec, this process with it */
	pdeathsig_arm(pc->parent_pidfd);
	close(pc->parent_pidfd);
	pc->parent_pidfd = pidfd_open_or_fail(getpid(), false, &e);
	if (pc->parent_pidfd < 0)
		proc_fail(pc, 125, e);
	/* Not dumpable: this process is hutch's binary, seen from inside. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	pid_t cmd = fork();
	if (cmd < 0) {
		hutch_fail_sys(&e, "fork into container %.12s", s->id);
		proc_fail(pc, 125, e);
	}
	if (cmd == 0) {
		pdeathsig_arm(pc->parent_pidfd);
		proc_setup_and_exec(pc);
	}
	close(pc->report_fd);
	proc_run_init(cmd);
}

int hutch_exec_start(struct hutch_runtime *rt, const struct hutch_state *s,
		     const struct hutch_exec_opts *o, const struct hutch_io *io,
		     struct hutch_exec **out, struct hutch_err **err)
{
	if (s->status != HUTCH_RUNNING)
		return hutch_fail(err, 0, "container %.12s is not running", s->id);
	if (o->n_args == 0)
		return hutch_fail(err, 0, "exec needs a command");
	_cleanup_close_ int target = pidfd_open_or_fail(s->pid, true, err);
	if (target < 0 && errno != ESRCH)
		return -1;
	if (target < 0 || proc_start_time(s->pid) != s->pid_start)
		return hutch_fail(err, 0, "container %.12s is not running", s->id);

	/* The process settings: the container's, with this exec's changes. */
	struct hutch_process proc = s->process;
	proc.args = o->args;
	proc.n_args = o->n_args;
	proc.env = xcalloc(s->process.n_env + 1, sizeof(char *));
	for (size_t i = 0; i < s->process.n_env; i++)
		proc.env[i] = xstrdup(s->process.env[i]);
	proc.n_env = s->process.n_env;
	merge_env(&proc, o->env, o->n_env);
	if (o->terminal)
		merge_env(&proc, (char *[]){"TERM=xterm"}, 1);
	proc.cwd = (char *)(o->cwd ? o->cwd : s->process.cwd);
	proc.user = (char *)(o->user ? o->user : s->process.user);
	proc.terminal = o->terminal;
	proc.interactive = o->interactive;
	proc.init = false;
	proc.rlimits = NULL;
	proc.n_rlimits = 0;

	int ret = -1;
	_cleanup_close_ int cgfd = -1;
	struct hutch_exec *h = xcalloc(1, sizeof(*h));
	h->c = (struct hutch_container){.rt = rt, .pidfd = -1, .pty_master = -1,
					.cg = {.dirfd = -1}, .id = xstrdup(s->id)};
	h->stdin_fd = o->interactive ? io->stdin_fd : -1;
	/* The command must start in the container's cgroup, under its limits and
	 * its cgroup.kill: without the cgroup there is no exec. */
	if (s->cgroup) {
		_cleanup_err_ struct hutch_err *e = NULL;
		cgfd = cgroup_open_record(rt, s->cgroup, s->id, &e);
		if (cgfd < 0 && errno == ENOENT) {
			hutch_fail(err, 0, "container %.12s is not running", s->id);
			goto out;
		}
		if (cgfd < 0) {
			hutch_fail(err, e->errno_,
				   "exec refused: it would run outside the container's cgroup: %s",
				   e->msg);
			goto out;
		}
	}
	/* no fd of the caller's that the container could reopen (io.c) */
	struct hutch_io child_io = *io;
	if (!o->terminal &&
	    io_relay_prepare(io, o->interactive, &child_io, &h->c.relay, err) < 0)
		goto out;
	struct exec_child x = {.s = s, .target = target};
	struct spawn_req req = {
	    .rt = rt,
	    .proc = &proc,
	    .io = &child_io,
	    .tty_io = io,
	    .userns = s->namespaces & (1u << HUTCH_NS_USER),
	    .seccomp = s->seccomp,
	    .cgroup_fd = cgfd,
	    .child = exec_child,
	    .arg = &x,
	};
	struct spawn_out so;
	if (proc_spawn(&req, &so, err) < 0) {
		/* The container ended and its cgroup went meanwhile: ENOENT when it
		 * was gone before clone3 looked, ENODEV while it was being removed. */
		int e = so.clone_errno;
		struct pollfd pf = {.fd = target, .events = POLLIN};
		if (e && ((cgfd >= 0 && (e == ENOENT || e == ENODEV)) || poll(&pf, 1, 0) > 0)) {
			if (err)
				hutch_err_free(err);
			hutch_fail(err, 0, "container %.12s is not running", s->id);
		} else if (e) {
			if (err)
				hutch_err_free(err);
			hutch_fail(err, e, "create the exec process");
		}
		goto out;
	}
	h->c.pid = so.pid;
	h->c.pidfd = so.pidfd;
	h->c.pty_master = so.pty_master;
	io_relay_started(h->c.relay);
	*out = steal_ptr(h);
	ret = 0;
out:
	if (h)
		hutch_exec_free(h);
	for (size_t i = 0; i < proc.n_env; i++)
		free(proc.env[i]);
	free(proc.env);
	return ret;
}

int hutch_exec_pidfd(const struct hutch_exec *h) { return h->c.pidfd; }
pid_t hutch_exec_pid(const struct hutch_exec *h) { return h->c.pid; }

int hutch_exec_kill(struct hutch_exec *h, int sig, struct hutch_err **err)
{
	return hutch_container_kill(&h->c, sig, err);
}

int hutch_exec_reap(struct hutch_exec *h, struct hutch_exit *st, struct hutch_err **err)
{
	/* a terminal or a relayed fd: its output is copied until it ends */
	int r = h->c.pty_master >= 0 || h->c.relay
		    ? hutch_container_attach_wait(&h->c, h->stdin_fd, st, err)
		    : hutch_container_reap(&h->c, st, err);
	hutch_exec_free(h);
	return r;
}

void hutch_exec_free(struct hutch_exec *h)
{
	if (!h)
		return;
	if (h->c.pidfd >= 0) {
		if (!h->c.reaped) {
			syscall(SYS_pidfd_send_signal, h->c.pidfd, SIGKILL, NULL, 0);
			siginfo_t si;
			waitid(P_PIDFD, (id_t)h->c.pidfd, &si, WEXITED);
		}
		close(h->c.pidfd);
	}
	if (h->c.pty_master >= 0)
		close(h->c.pty_master);
	io_relay_free(h->c.relay);
	free(h->c.id);
	free(h);
}

int hutch_exec(struct hutch_runtime *rt, const struct hutch_state *s,
	       const struct hutch_exec_opts *o, const struct hutch_io *io, struct hutch_exit *st,
	       struct hutch_err **err)
{
	struct hutch_exec *h = NULL;
	if (hutch_exec_start(rt, s, o, io, &h, err) < 0)
		return -1;
	/* relays what it must (a terminal, fds of the caller's), then reaps */
	int r = hutch_container_attach_wait(&h->c, h->stdin_fd, st, err);
	hutch_exec_free(h);
	return r;
}
