/* hutch exec: a new process in a running container. We join all of its
 * namespaces at once with setns(pidfd), and its cgroup through clone3; a fork
 * after setns puts the command in the container's pid namespace. The command
 * then goes through the same last steps as the container's own pid 1 (user,
 * capabilities, no_new_privs, seccomp), so exec is never a way around them.
 * The middle process stays outside, forwards signals and relays the exit code. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

int hutch_exec(struct hutch_runtime *rt, const struct hutch_state *s,
	       const struct hutch_exec_opts *o, const struct hutch_io *io, struct hutch_exit *st,
	       struct hutch_err **err)
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
	struct seccomp_prog prog = {0};
	bool have_prog = false;
	int report[2] = {-1, -1}, ptys[2] = {-1, -1};
	_cleanup_close_ int cgfd = -1;
	_cleanup_close_ int dmz = -1, self = -1;
	struct hutch_container c = {.rt = rt, .pidfd = -1, .pty_master = -1, .cg = {.dirfd = -1}};
	c.id = (char *)s->id;
	if (s->seccomp) {
		_cleanup_free_ char *cache = xasprintf("%s/cache", rt->run_root);
		if (seccomp_prepare_default(proc.caps.bounding, cache, &prog, err) < 0)
			goto out;
		have_prog = true;
	}
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
	if (!o->terminal && io_relay_prepare(io, o->interactive, &child_io, &c.relay, err) < 0)
		goto out;
	dmz = proc_dmz_memfd(err);
	if (dmz < 0)
		goto out;
	self = pidfd_open_or_fail(getpid(), false, err);
	if (self < 0)
		goto out;
	if (pipe2(report, O_CLOEXEC) < 0 ||
	    (o->terminal && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ptys) < 0)) {
		hutch_fail_sys(err, "create pipes");
		goto out;
	}
	bool userns = s->namespaces & (1u << HUTCH_NS_USER);
	struct proc_ctx pc = {.proc = &proc, .io = &child_io, .userns = userns,
			      .seccomp = have_prog ? &prog : NULL, .report_fd = report[1],
			      .pty_sock = ptys[1], .dmz_fd = dmz, .parent_pidfd = self};
	if (o->terminal) {
		int tfd = isatty(io->stdin_fd) ? io->stdin_fd : io->stdout_fd;
		pc.have_winsize = ioctl(tfd, TIOCGWINSZ, &pc.winsize) == 0;
	}
	int pidfd = -1;
	struct clone_args ca = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&pidfd,
				.exit_signal = SIGCHLD};
	if (cgfd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cgfd;
	}
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		/* The container ended and its cgroup went meanwhile: ENOENT when it
		 * was gone before clone3 looked, ENODEV while it was being removed. */
		int e = errno;
		struct pollfd pf = {.fd = target, .events = POLLIN};
		if ((cgfd >= 0 && (e == ENOENT || e == ENODEV)) || poll(&pf, 1, 0) > 0)
			hutch_fail(err, 0, "container %.12s is not running", s->id);
		else
			hutch_fail(err, e, "create the exec process");
		goto out;
	}
	if (pid == 0) {
		struct hutch_err *e = NULL;
		/* This middle process dies with hutch exec, and the command with it
		 * (the command arms its own again after it changes credentials). */
		pdeathsig_arm(self);
		/* the namespaces it has of its own, and no others: setns into the
		 * caller's own user namespace would fail */
		if (setns(target, ns_clone_flags(s->namespaces)) < 0) {
			if (errno == ESRCH)
				hutch_fail(&e, 0, "container %.12s is not running", s->id);
			else
				hutch_fail_sys(&e, "join the namespaces of container %.12s", s->id);
			proc_fail(&pc, 125, e);
		}
		/* joining a user namespace is a change of credentials */
		pdeathsig_arm(self);
		close(self);
		pc.parent_pidfd = pidfd_open_or_fail(getpid(), false, &e);
		if (pc.parent_pidfd < 0)
			proc_fail(&pc, 125, e);
		/* Not dumpable: this process is hutch's binary, seen from inside. */
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		pid_t cmd = fork();
		if (cmd < 0) {
			hutch_fail_sys(&e, "fork into container %.12s", s->id);
			proc_fail(&pc, 125, e);
		}
		if (cmd == 0) {
			pdeathsig_arm(pc.parent_pidfd);
			proc_setup_and_exec(&pc);
		}
		close(report[1]);
		proc_run_init(cmd);
	}
	c.pid = pid;
	c.pidfd = pidfd;
	io_relay_started(c.relay);
	close(report[1]);
	report[1] = -1;
	if (ptys[1] >= 0) {
		close(ptys[1]);
		ptys[1] = -1;
	}
	if (proc_read_report(report[0], err) < 0) {
		siginfo_t si;
		waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
		close(pidfd);
		goto out;
	}
	if (o->terminal) {
		c.pty_master = proc_recv_fd(ptys[0]);
		if (c.pty_master < 0) {
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			siginfo_t si;
			waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
			close(pidfd);
			hutch_fail(err, EIO, "the exec process did not hand over its terminal");
			goto out;
		}
	}
	ret = hutch_container_attach_wait(&c, o->interactive ? io->stdin_fd : -1, st, err);
	close(c.pidfd);
	if (c.pty_master >= 0)
		close(c.pty_master);
out:
	io_relay_free(c.relay);
	for (int i = 0; i < 2; i++) {
		if (report[i] >= 0)
			close(report[i]);
		if (ptys[i] >= 0)
			close(ptys[i]);
	}
	if (have_prog)
		seccomp_prog_free(&prog);
	for (size_t i = 0; i < proc.n_env; i++)
		free(proc.env[i]);
	free(proc.env);
	return ret;
}
