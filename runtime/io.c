/* The foreground side of `hutch run`: one epoll loop over the container's
 * pidfd, a signalfd for the signals we forward, and (with -t) the pty relay.
 * The host terminal is put in raw mode only while a pty is attached. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>

#include "common/util.h"
#include "runtime/container_internal.h"

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void hutch_block_forwarded_signals(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
}

/* Copy what is readable from `from` to `to`; false at EOF or error. */
static bool pump(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	return write_all(to, buf, (size_t)n) == 0;
}

int hutch_container_attach_wait(struct hutch_container *c, struct hutch_exit *st,
				struct hutch_err **err)
{
	sigset_t mask, old;
	sigemptyset(&mask);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, &old);
	_cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	_cleanup_close_ int ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || ep < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return hutch_fail_sys(err, "set up the event loop");
	}
	enum { EV_PID, EV_SIG, EV_STDIN, EV_PTY };
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_PID};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->pidfd, &ev) < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return hutch_fail(err, e, "watch container %.12s (pidfd %d)", c->id, c->pidfd);
	}
	ev.data.u32 = EV_SIG;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return hutch_fail(err, e, "watch signals");
	}

	struct termios saved;
	bool raw = false;
	if (c->pty_master >= 0) {
		if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
			struct termios t = saved;
			cfmakeraw(&t);
			raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
		}
		ev.data.u32 = EV_PTY;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->pty_master, &ev);
		ev.data.u32 = EV_STDIN;
		/* epoll refuses regular files: then stdin is simply not relayed */
		(void)epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
	}

	bool exited = false;
	int ret = 0;
	while (!exited) {
		struct epoll_event evs[4];
		int n = epoll_wait(ep, evs, 4, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = hutch_fail_sys(err, "epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case EV_PID:
				exited = true;
				break;
			case EV_SIG: {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGWINCH) {
						struct winsize ws;
						if (c->pty_master >= 0 &&
						    ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
							ioctl(c->pty_master, TIOCSWINSZ, &ws);
						continue;
					}
					hutch_container_kill(c, (int)si.ssi_signo, NULL);
				}
				break;
			}
			case EV_STDIN:
				if (!pump(STDIN_FILENO, c->pty_master) ||
				    (evs[i].events & (EPOLLHUP | EPOLLERR))) {
					epoll_ctl(ep, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
					/* EOF on our stdin: pass ^D on to the terminal */
					write_all(c->pty_master, "\x04", 1);
				}
				break;
			case EV_PTY:
				if (!pump(c->pty_master, STDOUT_FILENO))
					epoll_ctl(ep, EPOLL_CTL_DEL, c->pty_master, NULL);
				break;
			}
		}
	}
	/* Drain what the container wrote before it exited. */
	if (c->pty_master >= 0) {
		int fl = fcntl(c->pty_master, F_GETFL);
		fcntl(c->pty_master, F_SETFL, fl | O_NONBLOCK);
		char buf[16384];
		ssize_t n;
		/* EAGAIN: nothing left; EIO: every slave fd is closed */
		while ((n = read(c->pty_master, buf, sizeof(buf))) > 0 ||
		       (n < 0 && errno == EINTR))
			if (n > 0 && write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
	}
	if (raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (ret == 0)
		ret = hutch_container_reap(c, st, err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret;
}
