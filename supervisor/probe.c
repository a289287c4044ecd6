/* Health probes, each in a forked child the event loop watches through a pidfd
 * (its output through a pipe): health_cmd exec'd in the container
 * (hutch_exec blocks, so it runs in the child), health_tcp and health_http made
 * by hutch itself from inside the container's network namespace, so that the
 * image needs no curl or nc. The loop kills the child at the timeout. As root a
 * health_tcp needs no child: its socket is made in the container's network
 * namespace and connected from the loop (sup_probe_tcp_start), which costs a
 * few system calls instead of a fork. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "supervisor/sup_internal.h"

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(1, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static int join_netns(const struct hutch_state *s, bool rootless)
{
	char path[64];
	if (rootless && (s->namespaces & (1u << HUTCH_NS_USER))) {
		/* rootless: the container's network namespace belongs to its user
		 * namespace, which we (its creator's user) may enter */
		snprintf(path, sizeof(path), "/proc/%d/ns/user", s->pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWUSER) < 0) {
			say("cannot join the container's user namespace: %s", strerror(errno));
			return -1;
		}
		close(fd);
	}
	if (!(s->namespaces & (1u << HUTCH_NS_NETWORK)))
		return 0; /* network = host */
	snprintf(path, sizeof(path), "/proc/%d/ns/net", s->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		say("cannot join the container's network namespace: %s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* The probe's address (127.0.0.1 unless given); 0, or -1 if it is none. */
static int probe_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl,
		      const char **shown)
{
	*ss = (struct sockaddr_storage){0};
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *h = host && *host && strcmp(host, "localhost") ? host : "127.0.0.1";
	*shown = h;
	if (inet_pton(AF_INET, h, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*sl = sizeof(*in4);
	} else if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*sl = sizeof(*in6);
	} else {
		return -1;
	}
	return 0;
}

static int connect_to(const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *h;
	if (probe_addr(host, port, &ss, &sl, &h) < 0) {
		say("invalid address '%s'", h);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		say("connect to %s port %u: %s", h, port, strerror(errno));
		return -1;
	}
	return fd;
}

static __attribute__((noreturn)) void net_probe(const struct stack_health *h,
						const struct hutch_state *s, bool rootless)
{
	if (join_netns(s, rootless) < 0)
		_exit(1);
	int fd = connect_to(h->http_host, h->port);
	if (fd < 0)
		_exit(1);
	if (h->kind == STACK_HEALTH_TCP) {
		say("connected to port %u", h->port);
		_exit(0);
	}
	const char *host = h->http_host && *h->http_host ? h->http_host : "127.0.0.1";
	char req[2048];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: hutch-healthcheck\r\n"
			 "Connection: close\r\n\r\n",
			 h->http_path && *h->http_path ? h->http_path : "/", host, h->port);
	if (n < 0 || (size_t)n >= sizeof(req) || write_all(fd, req, (size_t)n) < 0) {
		say("send the request: %s", strerror(errno));
		_exit(1);
	}
	char resp[512];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0) {
		got += (size_t)r;
		if (memchr(resp, '\n', got))
			break;
	}
	resp[got] = '\0';
	char *eol = strpbrk(resp, "\r\n");
	if (eol)
		*eol = '\0';
	int code = 0;
	if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1 &&
	    sscanf(resp, "HTTP/%*d %d", &code) != 1) {
		_cleanup_free_ char *shown = printable(resp, strlen(resp));
		say("not an HTTP answer: '%s'", shown);
		_exit(1);
	}
	_cleanup_free_ char *shown = printable(resp, strlen(resp));
	say("%s", shown);
	_exit(code >= 200 && code < 400 ? 0 : 1);
}

static __attribute__((noreturn)) void
cmd_probe(struct hutch_runtime *rt, const struct stack_health *h, const struct hutch_state *s)
{
	struct hutch_exec_opts o = {.args = h->cmd, .n_args = h->n_cmd};
	struct hutch_io io = {
	    .stdin_fd = open("/dev/null", O_RDONLY), .stdout_fd = 1, .stderr_fd = 1};
	struct hutch_exit st = {0};
	struct hutch_err *err = NULL;
	if (hutch_exec(rt, s, &o, &io, &st, &err) < 0) {
		if (err)
			say("%s%s%s", err->msg, err->errno_ ? ": " : "",
			    err->errno_ ? strerror(err->errno_) : "");
		_exit(err && err->exit_code ? err->exit_code : 126);
	}
	_exit(st.code);
}

int sup_probe_tcp_start(const struct stack_health *h, int netns, int home, struct sup_probe *p,
			struct hutch_err **err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *shown;
	p->len = 0;
	p->pid = 0;
	p->pidfd = p->out = p->sock = -1;
	if (probe_addr(h->http_host, h->port, &ss, &sl, &shown) < 0)
		return hutch_fail(err, 0, "invalid address '%s'", shown);
	snprintf(p->addr, sizeof(p->addr), "%s", shown);
	p->port = h->port;
	/* A socket belongs to the namespace it was made in, wherever it is used
	 * then: in there for the socket only, and back at once. */
	if (netns >= 0 && setns(netns, CLONE_NEWNET) < 0)
		return hutch_fail_sys(err, "cannot join the container's network namespace");
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = errno;
	if (netns >= 0 && setns(home, CLONE_NEWNET) < 0) {
		/* never seen: nothing of the supervisor's may stay in there */
		fprintf(stderr, "hutch: supervisor: cannot go back to its network namespace: %s\n",
			strerror(errno));
		abort();
	}
	if (fd < 0)
		return hutch_fail(err, e, "socket");
	p->sock = fd;
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0)
		p->sock_err = 0;
	else
		p->sock_err = errno == EINPROGRESS ? -1 : errno;
	return 0;
}

/* The end of a tcp probe made in the loop: 0 connected, 1 not (said in buf). */
static int tcp_result(struct sup_probe *p)
{
	int e = p->sock_err;
	if (e < 0) {
		socklen_t l = sizeof(e);
		if (getsockopt(p->sock, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
			e = errno;
	}
	int n = e ? snprintf(p->buf, sizeof(p->buf), "connect to %s port %u: %s", p->addr, p->port,
			     strerror(e))
		  : snprintf(p->buf, sizeof(p->buf), "connected to port %u", p->port);
	p->len = n > 0 ? (size_t)n : 0;
	return e ? 1 : 0;
}

int sup_probe_start(struct hutch_runtime *rt, const struct stack_service *svc,
		    const struct hutch_state *s, struct sup_probe *p, struct hutch_err **err)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return hutch_fail_sys(err, "fork a health probe");
	}
	if (pid == 0) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		int keep[] = {-1};
		close_fds_except(keep, 0);
		if (svc->health.kind == STACK_HEALTH_CMD)
			cmd_probe(rt, &svc->health, s);
		net_probe(&svc->health, s, rt->rootless);
	}
	close(pipefd[1]);
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	p->sock = -1;
	p->pid = pid;
	p->out = pipefd[0];
	p->len = 0;
	p->pidfd = pidfd_open_or_fail(pid, false, err);
	if (p->pidfd < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(p->out);
		p->out = -1;
		return -1;
	}
	return 0;
}

bool sup_probe_read(struct sup_probe *p)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(p->out, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && errno == EAGAIN;
		size_t room = SVC_PROBE_OUTPUT_MAX + 1 - p->len; /* one more: the cut shows */
		size_t take = (size_t)n < room ? (size_t)n : room;
		memcpy(p->buf + p->len, buf, take);
		p->len += take;
	}
}

int sup_probe_reap(struct sup_probe *p)
{
	if (p->sock >= 0) {
		int code = tcp_result(p);
		close(p->sock);
		p->sock = -1;
		p->buf[p->len < sizeof(p->buf) ? p->len : sizeof(p->buf) - 1] = '\0';
		return code;
	}
	if (p->out >= 0) {
		sup_probe_read(p);
		close(p->out);
		p->out = -1;
	}
	siginfo_t si = {0};
	int code = -1;
	if (p->pidfd >= 0) {
		if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED) == 0)
			code = si.si_code == CLD_EXITED ? si.si_status : -1;
		close(p->pidfd);
		p->pidfd = -1;
	}
	p->pid = 0;
	p->buf[p->len < sizeof(p->buf) ? p->len : sizeof(p->buf) - 1] = '\0';
	return code;
}

void sup_probe_kill(struct sup_probe *p)
{
	if (p->sock >= 0) {
		close(p->sock);
		p->sock = -1;
		p->len = 0;
		p->buf[0] = '\0';
		return;
	}
	if (p->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	sup_probe_reap(p);
}
