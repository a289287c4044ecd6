/* The last steps of a container process before execve, shared by the
 * container's pid 1 and by `exec`: user, working directory, stdio or pty,
 * resource limits, capabilities, no_new_privs, fds, seccomp, exec.
 *
 * Failures reach the parent through a CLOEXEC pipe with Docker's exit codes:
 * 125 runtime error, 126 not executable, 127 not found. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/process_internal.h"

/* What a process starting something tells its parent through a pipe: the
 * container's process (an error; its exec closing the pipe says success) and a
 * detached container's monitor (started, or why not). One write each. */
struct child_report {
	/* 0: started; -1 or HUTCH_ALREADY_RUNNING: failed; REPORT_SECCOMP_LISTENER:
	 * its fd comes with it, and the process waits for a byte: 'y', go on */
	int ret;
	int exit_code;
	int errno_;
	char msg[2048];
};

#define REPORT_SECCOMP_LISTENER 1

void proc_report(int fd, int ret, int code, const struct hutch_err *err)
{
	struct child_report rep = {.ret = ret, .exit_code = code, .errno_ = err ? err->errno_ : 0};
	if (ret < 0)
		snprintf(rep.msg, sizeof(rep.msg), "%s",
			 err && err->msg ? err->msg : "unknown error");
	(void)!write(fd, &rep, sizeof(rep));
}

void proc_fail(const struct proc_ctx *p, int code, struct hutch_err *err)
{
	proc_report(p->report_fd, -1, code, err);
	_exit(code);
}

/* The first fd a message came with (others closed) and its sender's pid. */
static void take_cmsgs(struct msghdr *msg, int *rfd, pid_t *pid)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS && !*pid) {
			struct ucred uc;
			memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
			*pid = uc.pid;
		}
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*rfd < 0)
				*rfd = fd;
			else
				close(fd);
		}
	}
}

/* One report, 0 when the writer went first. Over a socket, the fd a seccomp
 * listener's report comes with, and the sender's pid where the reader asked
 * for credentials (SO_PASSCRED: the kernel gives it as the reader sees it). */
static size_t read_report(int fd, bool sock, struct child_report *rep, int *rfd, pid_t *pid)
{
	size_t got = 0;
	while (got < sizeof(*rep)) {
		union {
			char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = (char *)rep + got, .iov_len = sizeof(*rep) - got};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf)};
		ssize_t n = sock ? recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)
				 : read(fd, iov.iov_base, iov.iov_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (sock)
			take_cmsgs(&msg, rfd, pid);
		got += (size_t)n;
	}
	return got;
}

int proc_read_report_listen(int fd, bool eof_ok, const char *died, proc_listener_fn *listener,
			    void *arg, struct hutch_err **err)
{
	struct child_report rep;
	for (;;) {
		int rfd = -1;
		pid_t pid = 0;
		size_t got = read_report(fd, listener != NULL, &rep, &rfd, &pid);
		if (got != sizeof(rep) || rep.ret != REPORT_SECCOMP_LISTENER || !listener) {
			if (rfd >= 0)
				close(rfd);
			if (got == 0 && eof_ok)
				return 0; /* EOF: the command was exec'd */
			if (got != sizeof(rep))
				return hutch_fail(err, 0, "%s", died);
			break;
		}
		/* the process waits for our answer before it goes on */
		int rc = rfd < 0 ? hutch_fail(err, EPROTO,
					      "the container's process sent no seccomp listener")
				 : listener(rfd, pid, arg, err);
		if (rfd >= 0)
			close(rfd);
		char ack = rc < 0 ? 'n' : 'y';
		if (write(fd, &ack, 1) != 1 && rc == 0)
			rc = hutch_fail_sys(err, "let the container's process go on");
		if (rc < 0)
			return -1;
	}
	if (rep.ret == 0)
		return 0;
	rep.msg[sizeof(rep.msg) - 1] = '\0';
	hutch_fail(err, rep.errno_, "%s", rep.msg);
	if (err && *err)
		(*err)->exit_code = rep.exit_code;
	return rep.ret;
}

int proc_read_report_as(int fd, bool eof_ok, const char *died, struct hutch_err **err)
{
	return proc_read_report_listen(fd, eof_ok, died, NULL, NULL, err);
}

int proc_read_report(int fd, struct hutch_err **err)
{
	return proc_read_report_as(fd, true, "the container process died while starting", err) < 0
		   ? -1
		   : 0;
}

uint64_t proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may contain spaces and parens: fields start after the last ')' */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p += 2;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

/* Alphabetical: "known:" lists in messages are made from it. */
static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
    {"as", RLIMIT_AS},		 {"core", RLIMIT_CORE},		{"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},	 {"fsize", RLIMIT_FSIZE},	{"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},	 {"nproc", RLIMIT_NPROC},	{"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},	 {"rttime", RLIMIT_RTTIME},	{"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

static const char *rlim_str(rlim_t v, char buf[24])
{
	if (v == RLIM_INFINITY)
		return "unlimited";
	snprintf(buf, 24, "%llu", (unsigned long long)v);
	return buf;
}

int hutch_rlimit_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
		if (!strcmp(name, rlimit_names[i].name))
			return rlimit_names[i].resource;
	return -1;
}

const char *hutch_rlimit_name(int resource)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
		if (rlimit_names[i].resource == resource)
			return rlimit_names[i].name;
	return NULL;
}

char *hutch_rlimit_known_names(void)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++) {
		char *next = xasprintf("%s%s%s", out, i ? ", " : "", rlimit_names[i].name);
		free(out);
		out = next;
	}
	return out;
}

static bool have_cap_sys_resource(void)
{
	cap_t caps = cap_get_proc();
	cap_flag_value_t v = CAP_CLEAR;
	if (caps)
		cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &v);
	cap_free(caps);
	return v == CAP_SET;
}

int hutch_rlimit_check(const struct hutch_rlimit *rl, bool rootless, bool userns,
		       struct hutch_err **err)
{
	const char *name = hutch_rlimit_name(rl->resource);
	char soft[24], hard[24], most[24];
	if (!name) {
		_cleanup_free_ char *known = hutch_rlimit_known_names();
		return hutch_fail(err, 0, "unknown resource limit %d (known: %s)", rl->resource,
				  known);
	}
	if (rl->soft > rl->hard)
		return hutch_fail(err, 0, "the soft limit %s is above the hard limit %s",
				  rlim_str(rl->soft, soft), rlim_str(rl->hard, hard));
	/* fs.nr_open bounds nofile for everyone, whatever may raise hard limits */
	if (rl->resource == RLIMIT_NOFILE) {
		_cleanup_free_ char *text = NULL;
		unsigned long long nr_open = 0;
		if (read_file_at(AT_FDCWD, "/proc/sys/fs/nr_open", &text, NULL, NULL) == 0)
			nr_open = strtoull(text, NULL, 10);
		if (nr_open && (rl->soft > nr_open || rl->hard > nr_open))
			return hutch_fail(err, 0,
					  "the kernel allows at most %llu open files (fs.nr_open)",
					  nr_open);
	}
	struct rlimit host;
	if (getrlimit(rl->resource, &host) < 0)
		return hutch_fail_sys(err, "read the resource limit %s", name);
	/* Raising a hard limit takes CAP_SYS_RESOURCE in the initial user
	 * namespace: a container in a user namespace of its own never has it. */
	if (rl->hard > host.rlim_max && (rootless || userns || !have_cap_sys_resource()))
		return hutch_fail(err, 0,
				  "the hard limit of %s here is %s, and %s cannot raise it: use at "
				  "most %s=%s",
				  name, rlim_str(host.rlim_max, most),
				  rootless ? "an unprivileged user"
				  : userns ? "a container in a user namespace"
					   : "hutch without CAP_SYS_RESOURCE",
				  name, most);
	return 0;
}

int proc_check_rlimits(const struct hutch_process *proc, bool rootless, bool userns,
		       struct hutch_err **err)
{
	for (size_t i = 0; i < proc->n_rlimits; i++) {
		const struct hutch_rlimit *rl = &proc->rlimits[i];
		const char *name = hutch_rlimit_name(rl->resource);
		char soft[24], hard[24];
		/* defaults are fitted to the host's limits when they are applied */
		if (!rl->explicit_ || hutch_rlimit_check(rl, rootless, userns, err) == 0)
			continue;
		return name ? hutch_err_wrap(err, "resource limit %s=%s:%s", name,
					     rlim_str(rl->soft, soft), rlim_str(rl->hard, hard))
			    : -1;
	}
	return 0;
}

static int apply_rlimits(const struct hutch_process *proc, struct hutch_err **err)
{
	for (size_t i = 0; i < proc->n_rlimits; i++) {
		const struct hutch_rlimit *rl = &proc->rlimits[i];
		struct rlimit cur, want = {rl->soft, rl->hard};
		const char *name = hutch_rlimit_name(rl->resource);
		if (getrlimit(rl->resource, &cur) < 0)
			return hutch_fail_sys(err, "read the resource limit %s",
					      name ? name : "(unknown)");
		if (!rl->explicit_) {
			/* Defaults never ask for more than the host gives us. */
			if (want.rlim_max > cur.rlim_max)
				want.rlim_max = cur.rlim_max;
			if (want.rlim_cur > want.rlim_max)
				want.rlim_cur = want.rlim_max;
		}
		if (setrlimit(rl->resource, &want) < 0) {
			char soft[24], hard[24], host[24];
			return hutch_fail_sys(
			    err,
			    "set the resource limit %s to %s:%s (the hard limit "
			    "hutch runs with is %s)",
			    name ? name : "(unknown)", rlim_str(want.rlim_cur, soft),
			    rlim_str(want.rlim_max, hard), rlim_str(cur.rlim_max, host));
		}
	}
	return 0;
}

/* setresuid/setresgid say EINVAL for an id the user namespace does not map:
 * say which, what is mapped, and what to do. */
static int unmapped(const struct proc_ctx *p, const struct user_ids *u, struct hutch_err **err)
{
	_cleanup_free_ char *map = NULL;
	unsigned inside = 0, outside = 0, count = 0;
	int fields = 0;
	if (read_file_at(AT_FDCWD, "/proc/self/uid_map", &map, NULL, NULL) == 0)
		fields = sscanf(map, "%u %u %u", &inside, &outside, &count);
	const char *nl = map ? strchr(map, '\n') : NULL;
	bool single = fields == 3 && inside == 0 && count == 1 && (!nl || !nl[1]);
	const char *who = p->proc->user ? p->proc->user : "root";
	if (single)
		return hutch_fail(
		    err, 0,
		    "user '%s' (uid %u, gid %u) is not mapped in the container's "
		    "user namespace: only 0 is (it is you, uid %u), because your user "
		    "has no ranges in /etc/subuid and /etc/subgid. Ask root to add "
		    "some (usermod --add-subuids 100000-165535 --add-subgids "
		    "100000-165535 YOUR-USER; the uidmap package provides "
		    "newuidmap/newgidmap), or run the container as root (-u 0)",
		    who, u->uid, u->gid, outside);
	return hutch_fail(err, 0,
			  "user '%s' (uid %u, gid %u) is not mapped in the container's user "
			  "namespace (see /proc/self/uid_map and gid_map inside it): give a user "
			  "within your subordinate ranges of /etc/subuid and /etc/subgid",
			  who, u->uid, u->gid);
}

/* The five sets of the spec, each cut down to what hutch has itself: "ALL"
 * (--cap-add ALL, --privileged) means all of ours, since a host may withhold
 * some from us and capset cannot grant them. */
static struct hutch_caps caps_we_can_give(const struct hutch_caps *want, int last)
{
	struct hutch_caps c = *want;
	uint64_t mine = 0;
	cap_t cur = cap_get_proc();
	for (int i = 0; i <= last && cur; i++) {
		cap_flag_value_t v = CAP_CLEAR;
		if (cap_get_flag(cur, i, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
			mine |= 1ULL << i;
	}
	if (cur)
		cap_free(cur);
	else
		mine = ~0ULL; /* unknown: let capset say what it refuses */
	c.bounding &= mine;
	c.effective &= mine;
	c.permitted &= mine;
	c.inheritable &= mine;
	c.ambient &= mine;
	return c;
}

static int drop_privileges(const struct proc_ctx *p, const struct user_ids *u,
			   struct hutch_err **err)
{
	int last = (int)cap_max_bits() - 1;
	struct hutch_caps caps = caps_we_can_give(&p->proc->caps, last);
	for (int c = 0; c <= last; c++)
		if (!(caps.bounding & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return hutch_fail_sys(err, "drop capability %d from the bounding set", c);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return hutch_fail_sys(err, "keep capabilities");
	/* A single-id user namespace has setgroups denied: keep what we have
	 * (unless an OCI bundle asks for groups there: that cannot be done). */
	size_t n_groups = p->oci.groups_given ? p->oci.n_groups : u->n_groups;
	const gid_t *groups = p->oci.groups_given ? (const gid_t *)p->oci.groups : u->groups;
	if (setgroups(n_groups, groups) < 0 &&
	    !(errno == EPERM && p->userns && (!p->oci.groups_given || !n_groups)))
		return hutch_fail_sys(err, "setgroups");
	if (setresgid(u->gid, u->gid, u->gid) < 0)
		return errno == EINVAL && p->userns ? unmapped(p, u, err)
						    : hutch_fail_sys(err, "setgid %u", u->gid);
	if (setresuid(u->uid, u->uid, u->uid) < 0)
		return errno == EINVAL && p->userns ? unmapped(p, u, err)
						    : hutch_fail_sys(err, "setuid %u", u->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return hutch_fail_sys(err, "reset keepcaps");
	cap_t c = cap_init();
	if (!c)
		return hutch_fail_sys(err, "cap_init");
	const struct {
		cap_flag_t flag;
		uint64_t mask;
	} sets[] = {
	    {CAP_EFFECTIVE, caps.effective},
	    {CAP_PERMITTED, caps.permitted},
	    {CAP_INHERITABLE, caps.inheritable},
	};
	for (size_t k = 0; k < ARRAY_SIZE(sets); k++)
		for (int i = 0; i <= last; i++) {
			cap_value_t v = i;
			if (sets[k].mask & (1ULL << i))
				cap_set_flag(c, sets[k].flag, 1, &v, CAP_SET);
		}
	int r = cap_set_proc(c);
	cap_free(c);
	if (r < 0)
		return hutch_fail_sys(err, "set capabilities");
	/* Docker's default leaves inheritable and ambient empty (CVE-2022-24769): a
	 * user other than root then has no capabilities after execve. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return hutch_fail_sys(err, "clear ambient capabilities");
	for (int i = 0; i <= last; i++)
		if ((caps.ambient & (1ULL << i)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			return hutch_fail_sys(err, "raise %s in the ambient set",
					      hutch_cap_name(i) ? hutch_cap_name(i)
								: "a capability");
	return 0;
}

ssize_t proc_send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {0};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/* len bytes of buf with fd by SCM_RIGHTS, in one message. */
static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	return proc_send_with_fd(sock, buf, len, fd) == (ssize_t)len ? 0 : -1;
}

int proc_send_fd(int sock, int fd)
{
	char dummy = 'p';
	return send_with_fd(sock, &dummy, 1, fd);
}

int proc_recv_fd(int sock)
{
	char dummy;
	struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
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
static int setup_terminal(const struct proc_ctx *p, struct hutch_err **err)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return hutch_fail_sys(err, "open /dev/ptmx in the container");
	if (unlockpt(master) < 0)
		return hutch_fail_sys(err, "unlockpt");
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		return hutch_fail_sys(err, "open the pty slave");
	if (p->have_winsize)
		ioctl(slave, TIOCSWINSZ, &p->winsize);
	if (p->oci.console) {
		/* in the container's root already: the pty's name is its own */
		char pts[64];
		if (ptsname_r(master, pts, sizeof(pts)) != 0)
			return hutch_fail_sys(err, "the pty's name");
		/* the file to mount on; one there already is not opened (a node
		 * of the image's would be a device of the host's) */
		int f = open("/dev/console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
			     0600);
		if (f < 0 && errno != EEXIST)
			return hutch_fail_sys(err, "create /dev/console");
		if (f >= 0)
			close(f);
		if (mount(pts, "/dev/console", NULL, MS_BIND, NULL) < 0)
			return hutch_fail_sys(err, "bind the terminal %s on /dev/console", pts);
	}
	if (proc_send_fd(p->pty_sock, master) < 0)
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

static int setup_stdio(const struct proc_ctx *p, struct hutch_err **err)
{
	int fds[3] = {p->io->stdin_fd, p->io->stdout_fd, p->io->stderr_fd};
	if (!p->proc->interactive) {
		fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fds[0] < 0)
			return hutch_fail_sys(err, "open the container's /dev/null for its stdin "
						   "(without -i)");
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

static char **build_env(const struct hutch_process *proc, const struct user_ids *u)
{
	size_t n = proc->n_env;
	char **env = xcalloc(n + 2, sizeof(char *));
	bool has_home = false;
	for (size_t i = 0; i < n; i++) {
		env[i] = proc->env[i];
		has_home |= !strncmp(env[i], "HOME=", 5);
	}
	if (!has_home)
		env[n++] = xasprintf("HOME=%s", u->home ? u->home : "/");
	env[n] = NULL;
	return env;
}

extern const unsigned char hutch_dmz[], hutch_keeper[];
extern const unsigned long hutch_dmz_len, hutch_keeper_len;

/* A sealed, executable memfd holding one of hutch's embedded programs. */
static int embedded_memfd(const char *name, const unsigned char *bytes, unsigned long len,
			  struct hutch_err **err)
{
	/* MFD_EXEC (Linux 6.3+) says out loud that it will be exec'd */
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0010U);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return hutch_fail_sys(err, "memfd_create for %s", name);
	if (write_all(fd, bytes, len) < 0 || fchmod(fd, 0555) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		int e = errno;
		close(fd);
		return hutch_fail(err, e, "prepare the sealed %s memfd", name);
	}
	return fd;
}

int proc_dmz_memfd(struct hutch_err **err)
{
	return embedded_memfd("hutch-dmz", hutch_dmz, hutch_dmz_len, err);
}

int proc_keeper_memfd(struct hutch_err **err)
{
	return embedded_memfd("hutch-keeper", hutch_keeper, hutch_keeper_len, err);
}

/* What execve would say of path, without exec'ing it: 0, or an errno. */
static int exec_check(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR; /* execve says EACCES; the message says why (still 126) */
	return access(path, X_OK) < 0 ? errno : 0;
}

/* Find the command the way execvpe would (the container's PATH; Docker's exit
 * codes), then exec it through hutch-dmz from its sealed memfd, so that
 * /proc/self/exe is never hutch's own binary while the command is exec'd. */
static const char *exec_lookup(const struct proc_ctx *p, char **env, char full[4096])
{
	char *const *argv = p->proc->args;
	const char *cmd = argv[0];
	struct hutch_err *err = NULL;
	const char *path = NULL;
	int saw = ENOENT;
	if (strchr(cmd, '/')) {
		saw = exec_check(cmd);
		if (saw == 0)
			path = cmd;
	} else {
		const char *search = NULL;
		for (char **e = env; *e; e++)
			if (!strncmp(*e, "PATH=", 5))
				search = *e + 5;
		if (!search)
			search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
		size_t cmdlen = strlen(cmd);
		while (*search && !path) {
			const char *colon = strchrnul(search, ':');
			size_t dlen = (size_t)(colon - search);
			if (dlen + cmdlen + 2 < 4096) {
				memcpy(full, dlen ? search : ".", dlen ? dlen : 1);
				size_t off = dlen ? dlen : 1;
				full[off++] = '/';
				memcpy(full + off, cmd, cmdlen + 1);
				int r = exec_check(full);
				if (r == 0)
					path = full;
				else if (r != ENOENT && r != ENOTDIR)
					saw = r;
			}
			search = *colon ? colon + 1 : colon;
		}
	}
	if (!path) {
		if (saw == ENOENT && !strchr(cmd, '/'))
			hutch_fail(&err, 0, "exec \"%s\": executable file not found in $PATH", cmd);
		else
			hutch_fail(&err, saw, "exec \"%s\"", cmd);
		proc_fail(p, saw == ENOENT || saw == ENOTDIR ? 127 : 126, err);
	}
	return path;
}

/* OCI create: the process is ready; its parent may go. It waits for `start`
 * to connect, and reports to it from here on (the exec closes it). */
static void wait_for_start(struct proc_ctx *p)
{
	/* The parent-death signal goes before the report: create exits once it
	 * has it, and the signal would kill us with it. A create that died
	 * before (killed) takes us along, as the signal would have. */
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	struct pollfd parent = {.fd = p->parent_pidfd, .events = POLLIN};
	if (p->parent_pidfd >= 0 && poll(&parent, 1, 0) != 0)
		_exit(128 + SIGKILL);
	struct child_report rep = {.ret = 0};
	signal(SIGPIPE, SIG_IGN);
	if (write(p->report_fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(128 + SIGKILL);
	signal(SIGPIPE, SIG_DFL);
	close(p->report_fd);
	int conn;
	do
		conn = accept4(p->oci.start_sock, NULL, NULL, SOCK_CLOEXEC);
	while (conn < 0 && errno == EINTR);
	if (conn < 0)
		_exit(125);
	close(p->oci.start_sock);
	p->report_fd = conn;
}

static __attribute__((noreturn)) void exec_command(struct proc_ctx *p, char **env, const char *path)
{
	char *const *argv = p->proc->args;
	const char *cmd = argv[0];
	struct hutch_err *err = NULL;
	size_t n = p->proc->n_args;
	char **dargv = xcalloc(n + 3, sizeof(char *));
	dargv[0] = p->proc->init ? "init" : "exec";
	dargv[1] = (char *)path;
	for (size_t i = 0; i < n; i++)
		dargv[2 + i] = argv[i];
	syscall(SYS_execveat, p->dmz_fd, "", dargv, env, AT_EMPTY_PATH);
	int e = errno;
	hutch_fail(&err, e, "exec \"%s\" through hutch-dmz", cmd);
	proc_fail(p, 126, err);
}

void proc_run_init(pid_t child)
{
	prctl(PR_SET_NAME, "hutch-init", 0, 0, 0);
	/* This process never execs, so CLOEXEC does not help: close for real (it
	 * may be pid 1 inside the container; CVE-2024-21626). */
	syscall(SYS_close_range, 3, ~0U, 0);
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
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
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == child)
				_exit(WIFEXITED(status) ? WEXITSTATUS(status)
							: 128 + WTERMSIG(status));
	}
}

/* The seccomp filter, loaded. With a listener (SCMP_ACT_NOTIFY) its fd goes
 * to the runtime over the report channel (a socket then: `start`'s
 * connection, or proc_spawn's with oci.listener), and the process goes on
 * only once the runtime says it reached linux.seccomp.listenerPath: nothing
 * runs under the filter before an agent can answer it. */
static void load_seccomp(struct proc_ctx *p)
{
	struct hutch_err *err = NULL;
	int listener;
	if (seccomp_load_prepared(p->seccomp, &listener, &err) < 0)
		proc_fail(p, 125, err);
	if (listener < 0)
		return;
	struct child_report rep = {.ret = REPORT_SECCOMP_LISTENER};
	if (send_with_fd(p->report_fd, &rep, sizeof(rep), listener) < 0) {
		hutch_fail_sys(&err, "hand the seccomp listener to the runtime");
		proc_fail(p, 125, err);
	}
	close(listener);
	char ack = 0;
	ssize_t n;
	do
		n = read(p->report_fd, &ack, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || ack != 'y')
		_exit(125); /* the runtime says why */
}

/* The parent's go-ahead (spawn_req.release): nothing of the command's runs
 * before it. None means the parent failed (it kills us) or died. */
static void wait_for_release(struct proc_ctx *p)
{
	char go = 0;
	ssize_t n;
	do
		n = recv(p->release_fd, &go, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n != 1 || go != 'g') {
		struct hutch_err *err = NULL;
		hutch_fail(&err, n < 0 ? errno : 0, "the runtime did not release the container");
		proc_fail(p, 125, err);
	}
	close(p->release_fd);
	p->release_fd = -1;
}

static int apply_oci_attrs(const struct hutch_oci_proc_attrs *a, struct hutch_err **err);
static int final_affinity(const struct hutch_oci_proc_attrs *a, struct hutch_err **err);

void proc_setup_and_exec(struct proc_ctx *p)
{
	const struct hutch_process *proc = p->proc;
	struct hutch_err *err = NULL;
	const int code = 125;
	if (p->release_fd >= 0)
		wait_for_release(p);
	struct user_ids u;
	if (user_resolve(proc->user, &u, &err) < 0)
		proc_fail(p, code, err);
	if (setsid() < 0) {
		hutch_fail_sys(&err, "setsid");
		proc_fail(p, code, err);
	}
	if (proc->terminal ? setup_terminal(p, &err) < 0 : setup_stdio(p, &err) < 0)
		proc_fail(p, code, err);
	/* Nothing of the host stays open from here on but the report pipe,
	 * hutch-dmz's memfd and the parent's pidfd (all CLOEXEC): not even for a
	 * "-w /proc/self/fd/N". */
	int n_keep = 4 + p->oci.preserve_fds;
	int *keep = xcalloc((size_t)n_keep, sizeof(int));
	keep[0] = p->report_fd;
	keep[1] = p->dmz_fd;
	keep[2] = p->parent_pidfd;
	keep[3] = p->oci.wait_start ? p->oci.start_sock : -1;
	for (int i = 0; i < p->oci.preserve_fds; i++)
		keep[4 + i] = 3 + i;
	close_fds_except(keep, (size_t)n_keep);
	free(keep);
	/* Verify that the working directory is inside the root (a leaked fd as
	 * cwd is how CVE-2024-21626 escaped). */
	char cwdbuf[4096];
	if (chdir(proc->cwd) < 0) {
		hutch_fail_sys(&err, "chdir to working directory '%s'", proc->cwd);
		proc_fail(p, code, err);
	}
	if (!getcwd(cwdbuf, sizeof(cwdbuf)) || cwdbuf[0] != '/') {
		hutch_fail(&err, 0, "working directory '%s' is outside the container", proc->cwd);
		proc_fail(p, code, err);
	}
	/* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it
	 * while we still have it (the profile allows what follows). */
	bool seccomp_early = p->seccomp && !proc->no_new_privileges;
	if (p->oci.attrs && apply_oci_attrs(p->oci.attrs, &err) < 0)
		proc_fail(p, code, err);
	if (seccomp_early)
		load_seccomp(p);
	if (apply_rlimits(proc, &err) < 0 || drop_privileges(p, &u, &err) < 0)
		proc_fail(p, code, err);
	if (proc->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		hutch_fail_sys(&err, "set no_new_privs");
		proc_fail(p, code, err);
	}
	/* setresuid/setresgid cleared the parent-death signal: without it again, a
	 * non-root container would outlive its monitor. */
	pdeathsig_arm(p->parent_pidfd);
	char **env = build_env(proc, &u);
	/* No fd of ours may reach the container; the report pipe closes on exec. */
	for (int fd = 3; fd < 3 + p->oci.preserve_fds; fd++)
		fcntl(fd, F_SETFD, 0);
	if (syscall(SYS_close_range, 3 + p->oci.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		hutch_fail_sys(&err, "close inherited file descriptors");
		proc_fail(p, code, err);
	}
	/* --init: hutch-dmz itself stays as pid 1 (an exec'd, sealed program: no fd
	 * and no binary of the host in the container) and runs the command. */
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	hutch_trace("child: exec");
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	char full[4096];
	const char *path = exec_lookup(p, env, full);
	/* an OCI create waits here, before its seccomp filter (which need not
	 * allow accept4) */
	if (p->oci.wait_start)
		wait_for_start(p);
	if (p->oci.on_start)
		p->oci.on_start(p, p->oci.on_start_arg);
	if (p->oci.attrs && final_affinity(p->oci.attrs, &err) < 0)
		proc_fail(p, code, err);
	if (p->seccomp && !seccomp_early)
		load_seccomp(p);
	exec_command(p, env, path);
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0) {
			close(p[i]);
			p[i] = -1;
		}
}

static void kill_and_reap(int pidfd)
{
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	siginfo_t si;
	waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
}

/* Move pid into the cgroup at cgroup_fd (its cgroup.procs). */
static int cgroup_enter_pid(int cgroup_fd, pid_t pid, struct hutch_err **err)
{
	_cleanup_close_ int fd = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	char num[16];
	int len = snprintf(num, sizeof(num), "%d", pid);
	if (fd < 0 || write(fd, num, (size_t)len) != len)
		return hutch_fail_sys(err, "put the container's process in its cgroup");
	return 0;
}

/* clone3 from a helper process that joined the user namespace
 * r->clone_userns_fd (its new namespaces are then that one's: a pid namespace
 * cannot be made for a process already running) and set its children's pid
 * namespace to r->pidns_fd (a pid namespace takes only new processes): the
 * caller's own stay as they are, as its later children (hooks) need them, and
 * it could not go back to its pid namespace from a user namespace's root.
 * CLONE_PARENT makes the new process ours; from a user namespace, we put it in
 * its cgroup (a host cgroup is not for that namespace's root to write).
 * Returns as clone3 does, with err filled on failure (0: in the new process). */
static pid_t clone_from_helper(const struct spawn_req *r, struct clone_args *ca,
			       struct hutch_err **err)
{
	enum { STEP_USERNS = 1, STEP_PIDNS, STEP_CLONE };
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return hutch_fail_sys(err, "create a socket pair");
	pid_t helper = fork();
	if (helper < 0) {
		hutch_fail_sys(err, "fork");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (helper == 0) {
		close(sv[0]);
		struct clone_args c = *ca;
		int fd = -1;
		if (r->clone_userns_fd > 0)
			c.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
		c.flags |= CLONE_PARENT;
		c.exit_signal = 0; /* CLONE_PARENT: the parent's own */
		c.pidfd = (uint64_t)(uintptr_t)&fd;
		/* its ids as they are: the new process becomes the user namespace's
		 * root itself, once its /proc/self files are written (ns_oci_enter) */
		int step = STEP_USERNS;
		pid_t pid = -1;
		if ((r->clone_userns_fd <= 0 || setns(r->clone_userns_fd, CLONE_NEWUSER) == 0) &&
		    (step = STEP_PIDNS, r->pidns_fd <= 0 || setns(r->pidns_fd, CLONE_NEWPID) == 0))
			step = STEP_CLONE, pid = (pid_t)syscall(SYS_clone3, &c, sizeof(c));
		if (pid == 0) {
			close(sv[1]);
			return 0; /* the new process, on as clone3's child */
		}
		int got[3] = {pid, pid < 0 ? errno : 0, step};
		if ((send(sv[1], got, sizeof(got), MSG_NOSIGNAL) < 0 ||
		     (pid > 0 && proc_send_fd(sv[1], fd) < 0)) &&
		    pid > 0)
			kill(pid, SIGKILL);
		_exit(0);
	}
	close(sv[1]);
	waitpid(helper, NULL, 0); /* what it sent is there once it is gone */
	int got[3] = {-1, EIO, 0};
	int fd = recv(sv[0], got, sizeof(got), MSG_DONTWAIT) == (ssize_t)sizeof(got) && got[0] > 0
		     ? proc_recv_fd(sv[0])
		     : -1;
	close(sv[0]);
	if (fd >= 0) {
		memcpy((int *)(uintptr_t)ca->pidfd, &fd, sizeof(int));
		return got[0];
	}
	if (got[0] > 0 && kill(got[0], SIGKILL) == 0)
		waitpid(got[0], NULL, 0); /* ours: CLONE_PARENT */
	int e = got[1] ? got[1] : EIO;
	if (got[2] == STEP_USERNS)
		return hutch_fail(err, e,
				  "linux.namespaces: join the user namespace to create the "
				  "container's process in");
	if (got[2] == STEP_PIDNS)
		return hutch_fail(
		    err, e, "linux.namespaces: enter the pid namespace %s%s", r->pidns_what,
		    e == EPERM ? " (it takes CAP_SYS_ADMIN over it and in hutch's own "
				 "user namespace: rootless, run hutch-oci in the user "
				 "namespace that owns it, as rootless podman does)"
			       : "");
	return hutch_fail(err, e, "create the container process (clone3)%s",
			  r->pidns_fd > 0 && e == ENOMEM
			      ? ": the pid namespace it joins has no init process any more"
			      : "");
}

int proc_spawn(const struct spawn_req *r, struct spawn_out *out, struct hutch_err **err)
{
	*out = (struct spawn_out){.pid = -1, .pidfd = -1, .pty_master = -1};
	int ret = -1;
	struct seccomp_prog prog = {0};
	bool have_prog = false;
	int report[2] = {-1, -1}, sync[2] = {-1, -1}, ptys[2] = {-1, -1}, release[2] = {-1, -1};
	_cleanup_close_ int dmz = -1, self = -1;
	bool terminal = r->proc->terminal;

	hutch_trace("seccomp: prepare");
	if (r->oci.seccomp) {
		prog = *r->oci.seccomp; /* the caller's: not ours to free */
	} else if (r->seccomp) {
		_cleanup_free_ char *cache = xasprintf("%s/cache", r->rt->run_root);
		if (seccomp_prepare_default(r->proc->caps.bounding, cache, &prog, err) < 0)
			return -1;
		have_prog = true;
	}
	dmz = proc_dmz_memfd(err);
	if (dmz < 0)
		goto out;
	/* the new process watches us through it while it starts */
	self = pidfd_open_or_fail(getpid(), false, err);
	if (self < 0)
		goto out;
	/* a seccomp listener's fd comes over the report channel: a socket then,
	 * where the kernel tells us the sender's pid */
	bool listen = r->oci.listener;
	int one = 1;
	/* from a user namespace's process, it waits to be put in its cgroup */
	bool hold = r->started || (r->clone_userns_fd > 0 && r->cgroup_fd >= 0);
	if ((listen ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, report) < 0 ||
			  setsockopt(report[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0
		    : pipe2(report, O_CLOEXEC) < 0) ||
	    (hold && pipe2(sync, O_CLOEXEC) < 0) ||
	    (terminal && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ptys) < 0) ||
	    (r->release && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, release) < 0)) {
		hutch_fail_sys(err, "create pipes");
		goto out;
	}
	struct proc_ctx pc = {.proc = r->proc,
			      .io = r->io,
			      .userns = r->userns,
			      .seccomp = have_prog || r->oci.seccomp ? &prog : NULL,
			      .report_fd = report[1],
			      .pty_sock = ptys[1],
			      .dmz_fd = dmz,
			      .parent_pidfd = self,
			      .release_fd = release[0],
			      .oci = r->oci};
	if (terminal) {
		int tfd = isatty(r->tty_io->stdin_fd) ? r->tty_io->stdin_fd : r->tty_io->stdout_fd;
		pc.have_winsize = ioctl(tfd, TIOCGWINSZ, &pc.winsize) == 0;
		if (!pc.have_winsize && r->default_winsize) {
			/* nobody's terminal to copy: the classic size, not 0x0 */
			pc.winsize = (struct winsize){.ws_row = 24, .ws_col = 80};
			pc.have_winsize = true;
		}
	}
	int pidfd = -1;
	struct clone_args ca = {.flags = CLONE_PIDFD | r->clone_flags,
				.pidfd = (uint64_t)(uintptr_t)&pidfd,
				.exit_signal = SIGCHLD};
	if (r->cgroup_fd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)r->cgroup_fd;
	}
	/* a user namespace under the rootless network's (runtime.h) */
	if (r->userns && userns_enter_parent(r->rt, err) < 0)
		goto out;
	pid_t pid;
	if (r->clone_userns_fd > 0 || r->pidns_fd > 0) {
		pid = clone_from_helper(r, &ca, err);
		if (pid < 0)
			goto out;
	} else {
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid < 0) {
			out->clone_errno = errno;
			hutch_fail_sys(err, "create the container process (clone3)");
			goto out;
		}
	}
	if (pid == 0) {
		/* If our parent dies, so do we: nothing runs on unobserved. */
		pdeathsig_arm(self);
		if (sync[0] >= 0) {
			char go;
			if (read(sync[0], &go, 1) != 1)
				_exit(125);
			close(sync[0]);
		}
		r->child(&pc, r->arg);
	}
	hutch_trace("cloned");
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
	if (release[0] >= 0) {
		close(release[0]);
		release[0] = -1;
	}
	if (r->clone_userns_fd > 0 && r->cgroup_fd >= 0 &&
	    cgroup_enter_pid(r->cgroup_fd, pid, err) < 0) {
		kill_and_reap(pidfd);
		close(pidfd);
		goto out;
	}
	if (r->started && r->started(pid, r->arg, err) < 0) {
		kill_and_reap(pidfd);
		close(pidfd);
		goto out;
	}
	if (hold) {
		if (write(sync[1], "g", 1) != 1) {
			hutch_fail_sys(err, "release the container process");
			kill_and_reap(pidfd);
			close(pidfd);
			goto out;
		}
	}
	if (r->running)
		r->running(pid, r->arg);
	if (r->release) {
		if (r->release(pid, r->arg, err) < 0) {
			kill_and_reap(pidfd);
			close(pidfd);
			goto out;
		}
		/* a child that failed meanwhile is gone: its report says why */
		(void)send(release[1], "g", 1, MSG_NOSIGNAL);
	}
	if (proc_read_report_listen(report[0], true, "the container process died while starting",
				    r->oci.listener, r->oci.listener_arg, err) < 0) {
		siginfo_t si;
		waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
		close(pidfd);
		goto out;
	}
	hutch_trace("exec reported");
	if (terminal) {
		out->pty_master = proc_recv_fd(ptys[0]);
		if (out->pty_master < 0) {
			hutch_fail(err, EIO, "the container did not hand over its terminal");
			kill_and_reap(pidfd);
			close(pidfd);
			goto out;
		}
	}
	out->pid = pid;
	out->pidfd = pidfd;
	ret = 0;
out:
	close_pair(report);
	close_pair(sync);
	close_pair(ptys);
	close_pair(release);
	if (have_prog)
		seccomp_prog_free(&prog);
	return ret;
}

/* ---- an OCI process's scheduler, I/O priority, CPU affinity, personality and
 * memory policy ------------------------------------------------------------ */

static void mask_to_cpuset(const uint64_t *mask, cpu_set_t *set)
{
	CPU_ZERO(set);
	for (int i = 0; i < HUTCH_OCI_MAX_CPUS && i < CPU_SETSIZE; i++)
		if (mask[i / 64] & (1ULL << (i % 64)))
			CPU_SET(i, set);
}

/* The first CPU or node of mask, for messages (-1: none). */
static int mask_first(const uint64_t *mask)
{
	for (int i = 0; i < HUTCH_OCI_MAX_CPUS; i++)
		if (mask[i / 64] & (1ULL << (i % 64)))
			return i;
	return -1;
}

static int set_affinity(const uint64_t *mask, const char *field, struct hutch_err **err)
{
	cpu_set_t set;
	if (mask) {
		mask_to_cpuset(mask, &set);
	} else {
		/* every CPU: the kernel leaves those of the cgroup's cpuset */
		memset(&set, 0xff, sizeof(set));
	}
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return hutch_fail_sys(err,
				      "process.execCPUAffinity.%s: set it (from CPU %d): the CPUs "
				      "must be online and allowed to the container's cgroup",
				      field, mask ? mask_first(mask) : 0);
	return 0;
}

void proc_oci_initial_affinity(const struct proc_ctx *p)
{
	const struct hutch_oci_proc_attrs *a = p->oci.attrs;
	struct hutch_err *err = NULL;
	if (a && a->has_cpus_initial && set_affinity(a->cpus_initial, "initial", &err) < 0)
		proc_fail(p, 125, err);
}

/* Just before the exec: the final CPUs, or after initial ones alone every CPU
 * of the cgroup again (runc 1.2's rule). */
static int final_affinity(const struct hutch_oci_proc_attrs *a, struct hutch_err **err)
{
	if (a->has_cpus_final)
		return set_affinity(a->cpus_final, "final", err);
	return a->has_cpus_initial ? set_affinity(NULL, "final", err) : 0;
}

/* sched_setattr's argument, as linux/sched/types.h has it (which clashes
 * with glibc's sched.h) */
struct sched_attr_v1 {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

static const char *sched_policy_name(uint32_t p)
{
	static const char *const names[] = {"SCHED_OTHER",   "SCHED_FIFO", "SCHED_RR",
					    "SCHED_BATCH",   "SCHED_ISO",  "SCHED_IDLE",
					    "SCHED_DEADLINE"};
	return p < ARRAY_SIZE(names) ? names[p] : "?";
}

/* While the process still has its capabilities (a real-time policy, a nice
 * value below ours and the real-time I/O class take CAP_SYS_NICE of the
 * host's user namespace), and before any seccomp filter. */
static int apply_oci_attrs(const struct hutch_oci_proc_attrs *a, struct hutch_err **err)
{
	if (a->has_sched) {
		struct sched_attr_v1 sa = {.size = sizeof(sa),
					   .sched_policy = a->sched_policy,
					   .sched_flags = a->sched_flags,
					   .sched_nice = a->sched_nice,
					   .sched_priority = a->sched_priority,
					   .sched_runtime = a->sched_runtime,
					   .sched_deadline = a->sched_deadline,
					   .sched_period = a->sched_period};
		if (syscall(SYS_sched_setattr, 0, &sa, 0) < 0)
			return hutch_fail_sys(
			    err, "process.scheduler: set policy %s (nice %d, priority %u)%s",
			    sched_policy_name(a->sched_policy), a->sched_nice, a->sched_priority,
			    errno == EPERM ? ": a real-time or deadline policy, or a nice value "
					     "below hutch's, needs CAP_SYS_NICE on the host"
					   : "");
	}
	if (a->has_ioprio) {
		static const char *const classes[] = {"", "IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE",
						      "IOPRIO_CLASS_IDLE"};
		int value = (a->ioprio_class << 13) | a->ioprio_level;
		if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, value) < 0)
			return hutch_fail_sys(err, "process.ioPriority: set %s priority %d%s",
					      classes[a->ioprio_class & 3], a->ioprio_level,
					      errno == EPERM ? ": the real-time class needs "
							       "CAP_SYS_NICE on the host"
							     : "");
	}
	if (a->has_mempolicy) {
		unsigned long nodes[HUTCH_OCI_MAX_CPUS / (8 * sizeof(unsigned long))];
		memcpy(nodes, a->mempolicy_nodes, sizeof(nodes));
		bool any = mask_first(a->mempolicy_nodes) >= 0;
		static const char *const modes[] = {"MPOL_DEFAULT",
						    "MPOL_PREFERRED",
						    "MPOL_BIND",
						    "MPOL_INTERLEAVE",
						    "MPOL_LOCAL",
						    "MPOL_PREFERRED_MANY",
						    "MPOL_WEIGHTED_INTERLEAVE"};
		if (syscall(SYS_set_mempolicy, a->mempolicy_mode | (int)a->mempolicy_flags,
			    any ? nodes : NULL, any ? HUTCH_OCI_MAX_CPUS + 1 : 0) < 0)
			return hutch_fail_sys(err,
					      "linux.memoryPolicy: set mode %s with flags 0x%x%s",
					      (unsigned)a->mempolicy_mode < ARRAY_SIZE(modes)
						  ? modes[a->mempolicy_mode]
						  : "?",
					      a->mempolicy_flags,
					      errno == EINVAL ? ": the nodes must exist and be "
								"allowed (Mems_allowed), the flags "
								"fit the mode"
							      : "");
	}
	if (a->has_personality && personality(a->personality) < 0)
		return hutch_fail_sys(err, "linux.personality: set 0x%lx", a->personality);
	return 0;
}
