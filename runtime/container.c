/* Creating a container: a cgroup and a rw layer on the host side, then clone3
 * straight into fresh namespaces and the cgroup, and a child that builds the
 * root filesystem, drops privileges and execs the command.
 *
 * The child reports failure through a CLOEXEC pipe: EOF means the exec
 * succeeded, a message means it did not (with Docker's exit codes: 125 for a
 * runtime error, 126 not executable, 127 not found). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/runtime_internal.h"
#include "runtime/seccomp_internal.h"

struct child_report {
	int exit_code;
	int errno_;
	char msg[2048];
};

struct child_args {
	const struct hutch_runtime *rt;
	const struct hutch_spec *spec;
	const struct hutch_io *io;
	struct mount_ctx mctx;
	struct seccomp_prog *seccomp;
	int report_fd; /* write end, CLOEXEC */
	int sync_fd; /* read end: parent's go-ahead after id maps (userns only) */
	int pty_sock; /* send the pty master here (terminal only) */
	bool have_winsize;
	struct winsize winsize;
};

static __attribute__((noreturn)) void child_fail(const struct child_args *a, int code,
						 struct hutch_err *err)
{
	struct child_report rep = {.exit_code = code, .errno_ = err ? err->errno_ : 0};
	snprintf(rep.msg, sizeof(rep.msg), "%s", err && err->msg ? err->msg : "unknown error");
	(void)!write(a->report_fd, &rep, sizeof(rep));
	_exit(code);
}

static int set_loopback_up(struct hutch_err **err)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return hutch_fail_sys(err, "socket");
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return hutch_fail_sys(err, "get flags of lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return hutch_fail_sys(err, "bring lo up");
	return 0;
}

static int apply_rlimits(const struct hutch_spec *spec, struct hutch_err **err)
{
	for (size_t i = 0; i < spec->process.n_rlimits; i++) {
		const struct hutch_rlimit *rl = &spec->process.rlimits[i];
		struct rlimit cur, want = {rl->soft, rl->hard};
		if (getrlimit(rl->resource, &cur) < 0)
			return hutch_fail_sys(err, "getrlimit %d", rl->resource);
		if (!rl->explicit_) {
			/* Defaults never ask for more than the host gives us. */
			if (want.rlim_max > cur.rlim_max)
				want.rlim_max = cur.rlim_max;
			if (want.rlim_cur > want.rlim_max)
				want.rlim_cur = want.rlim_max;
		}
		if (setrlimit(rl->resource, &want) < 0)
			return hutch_fail_sys(err,
					      "set resource limit %d to %llu:%llu (the host's hard "
					      "limit is %llu)",
					      rl->resource, (unsigned long long)want.rlim_cur,
					      (unsigned long long)want.rlim_max,
					      (unsigned long long)cur.rlim_max);
	}
	return 0;
}

static int drop_privileges(const struct hutch_spec *spec, const struct user_ids *u,
			   struct hutch_err **err)
{
	uint64_t caps = spec->process.caps;
	int last = (int)cap_max_bits() - 1;
	for (int c = 0; c <= last; c++)
		if (!(caps & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return hutch_fail_sys(err, "drop capability %d from the bounding set", c);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return hutch_fail_sys(err, "keep capabilities");
	/* A single-id user namespace has setgroups denied: keep what we have. */
	if (setgroups(u->n_groups, u->groups) < 0 && !(errno == EPERM && spec->userns))
		return hutch_fail_sys(err, "setgroups");
	if (setresgid(u->gid, u->gid, u->gid) < 0)
		return hutch_fail_sys(err, "setgid %u", u->gid);
	if (setresuid(u->uid, u->uid, u->uid) < 0)
		return hutch_fail_sys(err, "setuid %u", u->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return hutch_fail_sys(err, "reset keepcaps");
	cap_t c = cap_init();
	if (!c)
		return hutch_fail_sys(err, "cap_init");
	for (int i = 0; i <= last; i++) {
		if (!(caps & (1ULL << i)))
			continue;
		cap_value_t v = i;
		cap_set_flag(c, CAP_EFFECTIVE, 1, &v, CAP_SET);
		cap_set_flag(c, CAP_PERMITTED, 1, &v, CAP_SET);
	}
	/* The inheritable set stays empty (CVE-2022-24769), and so do ambient caps:
	 * a non-root user gets no capabilities after execve, as in Docker. */
	int r = cap_set_proc(c);
	cap_free(c);
	if (r < 0)
		return hutch_fail_sys(err, "set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return hutch_fail_sys(err, "clear ambient capabilities");
	return 0;
}

static int send_fd(int sock, int fd)
{
	char dummy = 'p';
	struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {0};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char dummy;
	struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) != 1)
		return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* The pty lives in the container's own devpts; its master goes to the parent. */
static int setup_terminal(struct child_args *a, struct hutch_err **err)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return hutch_fail_sys(err, "open /dev/ptmx in the container");
	if (unlockpt(master) < 0)
		return hutch_fail_sys(err, "unlockpt");
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		return hutch_fail_sys(err, "open the pty slave");
	if (a->have_winsize)
		ioctl(slave, TIOCSWINSZ, &a->winsize);
	if (send_fd(a->pty_sock, master) < 0)
		return hutch_fail_sys(err, "send the pty to hutch");
	close(master);
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return hutch_fail_sys(err, "set the controlling terminal");
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			return hutch_fail_sys(err, "dup2 pty");
	if (slave > 2)
		close(slave);
	return 0;
}

static int setup_stdio(struct child_args *a, struct hutch_err **err)
{
	int fds[3] = {a->io->stdin_fd, a->io->stdout_fd, a->io->stderr_fd};
	if (!a->spec->process.interactive) {
		fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fds[0] < 0)
			return hutch_fail_sys(err, "open /dev/null");
	}
	for (int i = 0; i < 3; i++) {
		if (fds[i] == i) {
			int fl = fcntl(i, F_GETFD);
			if (fl >= 0)
				fcntl(i, F_SETFD, fl & ~FD_CLOEXEC);
			continue;
		}
		if (dup2(fds[i], i) < 0)
			return hutch_fail_sys(err, "set up stdio");
	}
	return 0;
}

static char **build_env(const struct hutch_spec *spec, const struct user_ids *u)
{
	size_t n = spec->process.n_env;
	char **env = xcalloc(n + 2, sizeof(char *));
	bool has_home = false;
	for (size_t i = 0; i < n; i++) {
		env[i] = spec->process.env[i];
		has_home |= !strncmp(env[i], "HOME=", 5);
	}
	if (!has_home)
		env[n++] = xasprintf("HOME=%s", u->home ? u->home : "/");
	env[n] = NULL;
	return env;
}

/* execvpe, but with the container's PATH and Docker's exit codes. */
static __attribute__((noreturn)) void exec_command(struct child_args *a, char **env)
{
	char *const *argv = a->spec->process.args;
	const char *cmd = argv[0];
	struct hutch_err *err = NULL;
	if (strchr(cmd, '/')) {
		execve(cmd, argv, env);
		int e = errno;
		hutch_fail(&err, e, "exec \"%s\"", cmd);
		child_fail(a, e == ENOENT || e == ENOTDIR ? 127 : 126, err);
	}
	const char *path = NULL;
	for (char **e = env; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int saw = ENOENT;
	size_t cmdlen = strlen(cmd);
	while (*path) {
		const char *colon = strchrnul(path, ':');
		size_t dlen = (size_t)(colon - path);
		char full[4096];
		if (dlen + cmdlen + 2 < sizeof(full)) {
			memcpy(full, dlen ? path : ".", dlen ? dlen : 1);
			size_t off = dlen ? dlen : 1;
			full[off++] = '/';
			memcpy(full + off, cmd, cmdlen + 1);
			execve(full, argv, env);
			if (errno != ENOENT && errno != ENOTDIR)
				saw = errno;
		}
		path = *colon ? colon + 1 : colon;
	}
	if (saw == ENOENT)
		hutch_fail(&err, 0, "exec \"%s\": executable file not found in $PATH", cmd);
	else
		hutch_fail(&err, saw, "exec \"%s\"", cmd);
	child_fail(a, saw == ENOENT ? 127 : 126, err);
}

/* pid 1 for --init: forwards signals to the command and reaps every orphan, so
 * zombies do not pile up and SIGTERM is not ignored by a handler-less pid 1. */
static __attribute__((noreturn)) void run_init(pid_t child)
{
	prctl(PR_SET_NAME, "hutch-init", 0, 0, 0);
	sigset_t all;
	sigfillset(&all);
	int status = 0;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		pid_t p;
		while ((p = waitpid(-1, &status, WNOHANG)) > 0)
			if (p == child)
				_exit(WIFEXITED(status) ? WEXITSTATUS(status)
							: 128 + WTERMSIG(status));
	}
}

static __attribute__((noreturn)) void child_main(struct child_args *a)
{
	const struct hutch_spec *spec = a->spec;
	struct hutch_err *err = NULL;
	int code = 125;

	if (a->sync_fd >= 0) {
		char go;
		if (read(a->sync_fd, &go, 1) != 1)
			_exit(125);
		close(a->sync_fd);
	}
	umask(0022);
	if (spec->net_mode == HUTCH_NET_PATH) {
		_cleanup_close_ int nsfd = open(spec->net_path, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
			hutch_fail_sys(&err, "join network namespace %s", spec->net_path);
			child_fail(a, code, err);
		}
	} else if (spec->net_mode == HUTCH_NET_NONE && set_loopback_up(&err) < 0) {
		child_fail(a, code, err);
	}
	if (sethostname(spec->hostname, strlen(spec->hostname)) < 0) {
		hutch_fail_sys(&err, "set hostname '%s'", spec->hostname);
		child_fail(a, code, err);
	}
	int rootfd = -1;
	if (mounts_setup_rootfs(&a->mctx, &rootfd, &err) < 0 ||
	    mounts_setup_container(&a->mctx, rootfd, &err) < 0)
		child_fail(a, code, err);
	hutch_trace("child: mounts done");
	/* The working directory is created if missing, as Docker does. */
	int cwdfd = root_open_dir_p(rootfd, spec->process.cwd, true, &err);
	if (cwdfd < 0)
		child_fail(a, code, err);
	close(cwdfd);
	if (mounts_pivot_root(rootfd, spec->root.readonly, &err) < 0)
		child_fail(a, code, err);
	hutch_trace("child: pivoted");
	close(rootfd);

	struct user_ids u;
	if (user_resolve(spec->process.user, &u, &err) < 0)
		child_fail(a, code, err);
	/* Verify that the working directory is inside the new root (a leaked fd as
	 * cwd is how CVE-2024-21626 escaped). */
	char cwdbuf[4096];
	if (chdir(spec->process.cwd) < 0) {
		hutch_fail_sys(&err, "chdir to working directory '%s'", spec->process.cwd);
		child_fail(a, code, err);
	}
	if (!getcwd(cwdbuf, sizeof(cwdbuf)) || cwdbuf[0] != '/') {
		hutch_fail(&err, 0, "working directory '%s' is outside the container",
			   spec->process.cwd);
		child_fail(a, code, err);
	}
	if (setsid() < 0) {
		hutch_fail_sys(&err, "setsid");
		child_fail(a, code, err);
	}
	if (spec->process.terminal ? setup_terminal(a, &err) < 0 : setup_stdio(a, &err) < 0)
		child_fail(a, code, err);
	/* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it
	 * while we still have it (the profile allows what follows). */
	bool seccomp_early = a->seccomp && !spec->process.no_new_privileges;
	if (seccomp_early && seccomp_load_prepared(a->seccomp, &err) < 0)
		child_fail(a, code, err);
	if (apply_rlimits(spec, &err) < 0 || drop_privileges(spec, &u, &err) < 0)
		child_fail(a, code, err);
	if (spec->process.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		hutch_fail_sys(&err, "set no_new_privs");
		child_fail(a, code, err);
	}
	char **env = build_env(spec, &u);
	/* No fd of ours may reach the container; the report pipe closes on exec. */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		hutch_fail_sys(&err, "close inherited file descriptors");
		child_fail(a, code, err);
	}
	if (a->seccomp && !seccomp_early && seccomp_load_prepared(a->seccomp, &err) < 0)
		child_fail(a, code, err);

	sigset_t none;
	sigemptyset(&none);
	if (spec->process.init) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		pid_t pid = fork();
		if (pid < 0) {
			hutch_fail_sys(&err, "fork the command under --init");
			child_fail(a, code, err);
		}
		if (pid > 0) {
			/* Not dumpable: nobody in the container can open /proc/1/exe,
			 * which is hutch's own binary (CVE-2019-5736). */
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
			close(a->report_fd);
			run_init(pid);
		}
	}
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	hutch_trace("child: exec");
	sigprocmask(SIG_SETMASK, &none, NULL);
	exec_command(a, env);
}

static int make_container_dirs(const struct hutch_runtime *rt, const char *id,
			       struct hutch_container *c, struct hutch_err **err)
{
	c->data_dir = xasprintf("%s/containers/%s", rt->data_root, id);
	if (mkdir(c->data_dir, 0700) < 0)
		return hutch_fail_sys(err, "create %s", c->data_dir);
	c->created_data = true;
	/* The overlay is mounted over data_dir itself (in the container's mount
	 * namespace only): one directory fewer to create and remove per run. */
	static const char *const sub[] = {"upper", "work"};
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", c->data_dir, sub[i]);
		if (mkdir(p, 0755) < 0)
			return hutch_fail_sys(err, "create %s", p);
	}
	return 0;
}

int hutch_runtime_init(struct hutch_runtime *rt, const char *data_root, const char *run_root,
		       struct hutch_err **err)
{
	*rt = (struct hutch_runtime){0};
	rt->data_root = xstrdup(data_root);
	rt->run_root = xstrdup(run_root);
	rt->rootless = geteuid() != 0;
	_cleanup_free_ char *d1 = xasprintf("%s/containers", data_root);
	_cleanup_free_ char *d2 = xasprintf("%s/containers", run_root);
	_cleanup_free_ char *d3 = xasprintf("%s/cache", run_root);
	if (mkdir_p_at(AT_FDCWD, d1, 0700, err) < 0 || mkdir_p_at(AT_FDCWD, d2, 0700, err) < 0 ||
	    mkdir_p_at(AT_FDCWD, d3, 0700, err) < 0) {
		hutch_runtime_fini(rt);
		return -1;
	}
	return 0;
}

void hutch_runtime_fini(struct hutch_runtime *rt)
{
	free(rt->data_root);
	free(rt->run_root);
	rt->data_root = rt->run_root = NULL;
}

static int read_report(int fd, struct hutch_err **err)
{
	struct child_report rep;
	size_t got = 0;
	while (got < sizeof(rep)) {
		ssize_t n = read(fd, (char *)&rep + got, sizeof(rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == 0)
		return 0; /* EOF: the command was exec'd */
	if (got != sizeof(rep))
		return hutch_fail(err, 0, "the container process died while starting");
	rep.msg[sizeof(rep.msg) - 1] = '\0';
	hutch_fail(err, rep.errno_, "%s", rep.msg);
	(*err)->exit_code = rep.exit_code;
	return -1;
}

int hutch_container_start(struct hutch_runtime *rt, const struct hutch_spec *spec,
			  const struct hutch_io *io, struct hutch_container **out,
			  struct hutch_err **err)
{
	if (hutch_spec_validate(spec, err) < 0)
		return -1;
	struct hutch_container *c = xcalloc(1, sizeof(*c));
	c->rt = rt;
	c->pidfd = -1;
	c->pty_master = -1;
	c->cg.dirfd = -1;
	c->id = xstrdup(spec->id);
	c->terminal = spec->process.terminal;
	c->memory_limit = spec->resources.memory_max;
	int report[2] = {-1, -1}, sync[2] = {-1, -1}, ptys[2] = {-1, -1};
	struct seccomp_prog *prog = NULL;
	_cleanup_free_ char *upper = NULL, *work = NULL, *rootfs = NULL;

	if (make_container_dirs(rt, spec->id, c, err) < 0)
		goto fail;
	if (cgroup_create(rt, spec, &c->cg, err) < 0)
		goto fail;
	hutch_trace("dirs and cgroup created");
	hutch_trace("seccomp: prepare");
	if (spec->seccomp == HUTCH_SECCOMP_DEFAULT && !spec->privileged) {
		_cleanup_free_ char *cache = xasprintf("%s/cache", rt->run_root);
		prog = xcalloc(1, sizeof(*prog));
		if (seccomp_prepare_default(spec->process.caps, cache, prog, err) < 0) {
			free(prog);
			prog = NULL;
			goto fail;
		}
	}
	if (pipe2(report, O_CLOEXEC) < 0 || (spec->userns && pipe2(sync, O_CLOEXEC) < 0) ||
	    (spec->process.terminal &&
	     socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ptys) < 0)) {
		hutch_fail_sys(err, "create pipes");
		goto fail;
	}

	upper = xasprintf("%s/upper", c->data_dir);
	work = xasprintf("%s/work", c->data_dir);
	rootfs = xstrdup(c->data_dir);
	struct child_args a = {
		.rt = rt,
		.spec = spec,
		.io = io,
		.mctx = {.spec = spec, .rootfs = rootfs, .upper = upper, .work = work,
			 .rootless = rt->rootless},
		.seccomp = prog,
		.report_fd = report[1],
		.sync_fd = sync[0],
		.pty_sock = ptys[1],
	};
	if (spec->process.terminal) {
		int tfd = isatty(io->stdin_fd) ? io->stdin_fd : io->stdout_fd;
		a.have_winsize = ioctl(tfd, TIOCGWINSZ, &a.winsize) == 0;
	}

	uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
			 CLONE_NEWCGROUP | CLONE_PIDFD;
	if (spec->net_mode == HUTCH_NET_NONE)
		flags |= CLONE_NEWNET;
	if (spec->userns)
		flags |= CLONE_NEWUSER;
	int pidfd = -1;
	struct clone_args ca = {
		.flags = flags,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	if (c->cg.dirfd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)c->cg.dirfd;
	}
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid > 0)
		hutch_trace("cloned");
	if (pid < 0) {
		hutch_fail_sys(err, "create the container process (clone3)");
		goto fail;
	}
	if (pid == 0)
		child_main(&a);

	c->pid = pid;
	c->pidfd = pidfd;
	close(report[1]);
	report[1] = -1;
	if (sync[0] >= 0) {
		close(sync[0]);
		sync[0] = -1;
	}
	if (ptys[1] >= 0) {
		close(ptys[1]);
		ptys[1] = -1;
	}
	if (spec->userns) {
		if (userns_write_maps(rt, spec, pid, err) < 0) {
			kill(pid, SIGKILL);
			goto fail_reap;
		}
		if (write(sync[1], "g", 1) != 1) {
			hutch_fail_sys(err, "release the container process");
			goto fail_reap;
		}
		close(sync[1]);
		sync[1] = -1;
	}
	if (read_report(report[0], err) < 0)
		goto fail_reap;
	hutch_trace("exec reported");
	if (spec->process.terminal) {
		c->pty_master = recv_fd(ptys[0]);
		if (c->pty_master < 0) {
			hutch_fail(err, EIO, "the container did not hand over its terminal");
			kill(pid, SIGKILL);
			goto fail_reap;
		}
	}
	for (int *p = report; p < report + 2; p++)
		if (*p >= 0)
			close(*p);
	if (ptys[0] >= 0)
		close(ptys[0]);
	if (prog) {
		seccomp_prog_free(prog);
		free(prog);
	}
	*out = c;
	return 0;

fail_reap: {
	siginfo_t si;
	waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
}
fail:
	for (int *p = report; p < report + 2; p++)
		if (*p >= 0)
			close(*p);
	for (int *p = sync; p < sync + 2; p++)
		if (*p >= 0)
			close(*p);
	for (int *p = ptys; p < ptys + 2; p++)
		if (*p >= 0)
			close(*p);
	if (prog) {
		seccomp_prog_free(prog);
		free(prog);
	}
	int code = err && *err ? (*err)->exit_code : 125;
	hutch_container_destroy(c, NULL);
	if (err && *err)
		(*err)->exit_code = code ? code : 125;
	return -1;
}

int hutch_container_pidfd(const struct hutch_container *c) { return c->pidfd; }
pid_t hutch_container_pid(const struct hutch_container *c) { return c->pid; }
const char *hutch_container_id(const struct hutch_container *c) { return c->id; }

int hutch_container_kill(struct hutch_container *c, int sig, struct hutch_err **err)
{
	if (c->reaped)
		return 0;
	if (syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		return hutch_fail_sys(err, "send signal %d to container %.12s", sig, c->id);
	return 0;
}

int hutch_container_reap(struct hutch_container *c, struct hutch_exit *st, struct hutch_err **err)
{
	siginfo_t si = {0};
	if (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0)
		return hutch_fail_sys(err, "wait for container %.12s", c->id);
	c->reaped = true;
	*st = (struct hutch_exit){0};
	if (si.si_code == CLD_EXITED) {
		st->code = si.si_status;
	} else {
		st->signal = si.si_status;
		st->code = 128 + si.si_status;
	}
	st->memory_limit = c->memory_limit;
	st->oom_killed = cgroup_oom_kills(&c->cg) > 0;
	hutch_trace("reaped");
	return 0;
}

int hutch_container_destroy(struct hutch_container *c, struct hutch_err **err)
{
	if (!c)
		return 0;
	int ret = 0;
	if (c->pidfd >= 0 && !c->reaped && c->pid > 0) {
		syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
		siginfo_t si;
		waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
	}
	if (cgroup_destroy(&c->cg, err) < 0)
		ret = -1;
	if (c->created_data && remove_tree_at(AT_FDCWD, c->data_dir, ret ? NULL : err) < 0)
		ret = -1;
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->pty_master >= 0)
		close(c->pty_master);
	free(c->data_dir);
	free(c->id);
	free(c);
	return ret;
}
