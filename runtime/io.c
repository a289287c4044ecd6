/* The foreground side of `hutch run` and `hutch exec`: one poll loop over the
 * container's pidfd, a signalfd for the signals we forward, and (with -t) the
 * pty relay: stdin to the pty master (with -i only), the master to stdout.
 *
 * poll rather than epoll: stdin may be a regular file or /dev/null, which epoll
 * refuses and poll reports as always readable, which is what they are.
 *
 * Neither direction ever drops bytes: each has a buffer, and a side is only
 * polled for what it can take (stdin is read only while the buffer towards the
 * pty has room; the master is written on POLLOUT). Our stdin and stdout are
 * shared with whoever started us, so they stay blocking (O_NONBLOCK would leak
 * into the caller's shell): stdin is read only when poll says it is readable,
 * and stdout gets at most PIPE_BUF bytes per POLLOUT, which a pipe or a tty
 * takes without blocking. The pty master is ours alone and non-blocking. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
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

enum { RELAY_BUF = 65536 };

struct relay_buf {
	size_t off, len; /* pending bytes are data[off..len) */
	char data[RELAY_BUF];
};

static size_t buf_pending(const struct relay_buf *b)
{
	return b->len - b->off;
}

/* Room at the end, after moving what is pending to the front. */
static size_t buf_room(struct relay_buf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->off > 0 && b->len == sizeof(b->data)) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	return sizeof(b->data) - b->len;
}

struct relay {
	int in;	    /* stdin, relayed to the pty; -1 without -i and once it has ended */
	int master; /* -1 once the container's side of the pty is gone */
	int out;    /* stdout; -1 after a write error */
	bool eof_queued;
	bool master_hup; /* the last poll saw POLLHUP on the master */
	int last_in;	 /* the last byte read from stdin, -1 before any */
	struct relay_buf to_pty, to_out;
};

/* Our stdin has ended: make the container's reader see EOF, as a user at the
 * terminal would. In canonical mode the VEOF character ends a read: at the
 * start of a line it reads as EOF, after a partial line it only hands that
 * line over, so a partial last line needs a second one. A program that reads
 * the terminal raw (a shell's line editor) gets one VEOF, as if typed. The
 * slave's termios is read through the master, when everything before it has
 * been written, so a program that changed its mode meanwhile is honoured. */
static void queue_eof(struct relay *r)
{
	struct termios t;
	cc_t veof = 4; /* ^D, the default */
	bool canonical = true, line_end = r->last_in < 0 || r->last_in == '\n';
	if (tcgetattr(r->master, &t) == 0) {
		veof = t.c_cc[VEOF];
		canonical = t.c_lflag & ICANON;
		int c = r->last_in;
		line_end |= c == '\r' && (t.c_iflag & (ICRNL | IGNCR)) == ICRNL;
		line_end |= c >= 0 && c != _POSIX_VDISABLE &&
			    (c == t.c_cc[VEOL] || c == t.c_cc[VEOL2] || c == veof);
	}
	r->eof_queued = true;
	if (veof == _POSIX_VDISABLE)
		return; /* the program turned EOF off: nothing can deliver it */
	size_t n = canonical && !line_end ? 2 : 1;
	buf_room(&r->to_pty);
	for (size_t i = 0; i < n; i++)
		r->to_pty.data[r->to_pty.len++] = (char)veof;
}

static void stop_input(struct relay *r)
{
	r->in = -1;
	r->eof_queued = true;
	r->to_pty.off = r->to_pty.len = 0;
}

static void read_stdin(struct relay *r)
{
	size_t room = buf_room(&r->to_pty);
	ssize_t n = read(r->in, r->to_pty.data + r->to_pty.len, room);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EOF, or an error that ends stdin just the same */
		r->in = -1;
		return;
	}
	r->to_pty.len += (size_t)n;
	r->last_in = (unsigned char)r->to_pty.data[r->to_pty.len - 1];
}

static void write_master(struct relay *r)
{
	ssize_t n = write(r->master, r->to_pty.data + r->to_pty.off, buf_pending(&r->to_pty));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		/* EIO: nobody in the container has the terminal open any more */
		stop_input(r);
		return;
	}
	r->to_pty.off += (size_t)n;
}

/* false once the container's side is closed and everything it wrote is read */
static bool read_master(struct relay *r)
{
	size_t room = buf_room(&r->to_out);
	ssize_t n = read(r->master, r->to_out.data + r->to_out.len, room);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false; /* EIO: every slave fd is closed */
	if (r->out >= 0)
		r->to_out.len += (size_t)n;
	return true;
}

static void write_stdout(struct relay *r, size_t most, bool wait)
{
	size_t len = buf_pending(&r->to_out);
	ssize_t n = write(r->out, r->to_out.data + r->to_out.off, len < most ? len : most);
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
		/* a stdout someone else made non-blocking */
		if (wait && errno == EAGAIN)
			poll(&(struct pollfd){.fd = r->out, .events = POLLOUT}, 1, -1);
		return;
	}
	if (n < 0) {
		/* EPIPE and the like: nobody reads our output, as if our terminal had
		 * gone away; the loop hangs up the container's (SIGHUP, EIO on write),
		 * so that it is neither stuck on a full pty nor writing forever */
		r->out = -1;
		r->to_out.off = r->to_out.len = 0;
		return;
	}
	r->to_out.off += (size_t)n;
}

static void relay_close_master(struct relay *r)
{
	r->master = -1;
	stop_input(r);
}

/* What the container wrote before it exited: every slave fd is closed by then
 * (the pid namespace is gone), so reading stops at EIO once the pty is empty,
 * or at EAGAIN if a process outside still holds it (exec's background jobs). */
static void drain_output(struct relay *r)
{
	while (r->out >= 0 && buf_pending(&r->to_out) > 0)
		write_stdout(r, SIZE_MAX, true);
	while (r->master >= 0 && read_master(r) && buf_pending(&r->to_out) > 0) {
		while (r->out >= 0 && buf_pending(&r->to_out) > 0)
			write_stdout(r, SIZE_MAX, true);
		r->to_out.off = r->to_out.len = 0;
	}
}

int hutch_container_attach_wait(struct hutch_container *c, int stdin_fd, struct hutch_exit *st,
				struct hutch_err **err)
{
	sigset_t mask, old;
	sigemptyset(&mask);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, &old);
	_cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return hutch_fail_sys(err, "set up the event loop (signalfd)");
	}
	/* A reader of our output that goes away must not kill us with the
	 * container still to clean up: the write fails with EPIPE instead. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
	sigaction(SIGPIPE, &ign, &old_pipe);

	struct relay *r = NULL;
	struct termios saved;
	bool raw = false;
	int term_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : STDOUT_FILENO;
	if (c->pty_master >= 0) {
		r = xcalloc(1, sizeof(*r));
		r->in = stdin_fd;
		r->eof_queued = stdin_fd < 0;
		r->master = c->pty_master;
		r->out = STDOUT_FILENO;
		r->last_in = -1;
		int fl = fcntl(r->master, F_GETFL);
		if (fl < 0 || fcntl(r->master, F_SETFL, fl | O_NONBLOCK) < 0) {
			free(r);
			sigaction(SIGPIPE, &old_pipe, NULL);
			sigprocmask(SIG_SETMASK, &old, NULL);
			return hutch_fail_sys(err, "make the pty of container %.12s non-blocking",
					      c->id);
		}
		/* Keystrokes go to the container's terminal as they are typed; only
		 * when we relay them (-i), as Docker does. */
		if (stdin_fd >= 0 && isatty(stdin_fd) && tcgetattr(stdin_fd, &saved) == 0) {
			struct termios t = saved;
			cfmakeraw(&t);
			raw = tcsetattr(stdin_fd, TCSANOW, &t) == 0;
		}
	}

	enum { P_PID, P_SIG, P_IN, P_MASTER, P_OUT, P_N };
	int ret = 0;
	for (;;) {
		struct pollfd p[P_N] = {
		    [P_PID] = {.fd = c->pidfd, .events = POLLIN},
		    [P_SIG] = {.fd = sfd, .events = POLLIN},
		    [P_IN] = {.fd = -1},
		    [P_MASTER] = {.fd = -1},
		    [P_OUT] = {.fd = -1},
		};
		if (r) {
			if (r->in < 0 && !r->eof_queued && buf_pending(&r->to_pty) == 0 &&
			    r->master >= 0)
				queue_eof(r);
			if (r->in >= 0 && buf_room(&r->to_pty) > 0)
				p[P_IN] = (struct pollfd){.fd = r->in, .events = POLLIN};
			short want = 0;
			/* POLLHUP comes whatever we ask for: ask nothing of a hung-up
			 * master until there is room to read what is left */
			bool room_out = buf_room(&r->to_out) > 0;
			if (room_out)
				want |= POLLIN;
			if (buf_pending(&r->to_pty) > 0 && (!r->master_hup || room_out))
				want |= POLLOUT;
			if (r->master >= 0 && want)
				p[P_MASTER] = (struct pollfd){.fd = r->master, .events = want};
			if (r->out >= 0 && buf_pending(&r->to_out) > 0)
				p[P_OUT] = (struct pollfd){.fd = r->out, .events = POLLOUT};
		}
		if (poll(p, P_N, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = hutch_fail_sys(err, "wait for container %.12s (poll)", c->id);
			break;
		}
		if (p[P_PID].revents)
			break;
		if (p[P_SIG].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH) {
					struct winsize ws;
					if (c->pty_master >= 0 &&
					    ioctl(term_fd, TIOCGWINSZ, &ws) == 0)
						ioctl(c->pty_master, TIOCSWINSZ, &ws);
					continue;
				}
				hutch_container_kill(c, (int)si.ssi_signo, NULL);
			}
		}
		if (!r)
			continue;
		if (p[P_IN].revents)
			read_stdin(r);
		short mev = p[P_MASTER].revents;
		if (p[P_MASTER].fd >= 0)
			r->master_hup = mev & POLLHUP;
		if (mev & (POLLIN | POLLHUP | POLLERR)) {
			if ((p[P_MASTER].events & POLLIN) && !read_master(r))
				relay_close_master(r);
		}
		if (r->master >= 0 && (mev & (POLLOUT | POLLHUP | POLLERR)) &&
		    (p[P_MASTER].events & POLLOUT))
			write_master(r);
		if (p[P_OUT].revents)
			write_stdout(r, PIPE_BUF, false);
		if (r->out < 0 && c->pty_master >= 0) {
			close(c->pty_master);
			c->pty_master = -1;
			relay_close_master(r);
		}
	}
	if (r) {
		drain_output(r);
		free(r);
	}
	if (raw)
		tcsetattr(stdin_fd, TCSANOW, &saved);
	sigaction(SIGPIPE, &old_pipe, NULL);
	if (ret == 0)
		ret = hutch_container_reap(c, st, err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret;
}
