/* The foreground side of `hutch run` and `hutch exec`: one poll loop over the
 * container's pidfd, a signalfd for the signals we forward, and the relay of
 * its stdio: with -t the pty (stdin to the master with -i only, the master to
 * stdout), without it the pipes of io_relay (below).
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
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

/* ---- Without a terminal: the caller's stdio through pipes ----
 *
 * The container never gets a file of the caller's that it could reopen:
 * /proc/PID/fd/1 of a process in it opens the file itself, with a new offset
 * and new flags, so a log the caller appends to (>>) could be read from its
 * start and overwritten, and the caller's terminal kept open after hutch has
 * returned. Docker relays through its daemon, podman through conmon; hutch
 * gives the container a pipe of its own per stream and copies between it and
 * the caller's fd in the wait loop. A pipe or a socket of the caller's is
 * passed as it is: a pipe reopened through /proc is the same pipe, a socket
 * cannot be reopened at all. So is /dev/null: reopened, it is the container's
 * own /dev/null again (and `hutch run ... >/dev/null` costs nothing).
 *
 * Each stream has one side of ours (the pipe's other end, non-blocking) and
 * one side shared with the caller (blocking, left as it is). The shared side
 * is used only once poll said it is ready (a regular file always is), at most
 * PIPE_BUF bytes at a time when writing to what may block (a terminal); then
 * our side is polled. splice(2) moves the bytes where the kernel allows it;
 * where it does not (a file opened O_APPEND, some devices: EINVAL before any
 * byte moved), read and write through a buffer. */

struct io_stream {
	int shared;	   /* the caller's fd: never closed or changed here */
	int pipe;	   /* our end of the container's pipe, non-blocking; -1 once ended */
	bool input;	   /* shared -> pipe (stdin with -i); else pipe -> shared */
	bool always_ready; /* shared is a regular file or a block device */
	bool ready;	   /* poll said the shared side was ready, nothing moved since */
	bool no_splice;
	struct relay_buf *buf; /* without splice: bytes read and not yet written */
};

struct io_relay {
	struct io_stream s[3];
	size_t n;
	int child_end[3]; /* the container's ends, ours to close once it has them */
	size_t n_child;
};

/* Safe to hand over as it is (see above). */
static bool passes_as_is(const struct stat *st)
{
	if (S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode))
		return true;
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

void io_relay_free(struct io_relay *r)
{
	if (!r)
		return;
	io_relay_started(r);
	for (size_t i = 0; i < r->n; i++) {
		if (r->s[i].pipe >= 0)
			close(r->s[i].pipe);
		free(r->s[i].buf);
	}
	free(r);
}

void io_relay_started(struct io_relay *r)
{
	for (size_t i = 0; r && i < r->n_child; i++)
		close(r->child_end[i]);
	if (r)
		r->n_child = 0;
}

int io_relay_prepare(const struct hutch_io *io, bool interactive, struct hutch_io *child,
		     struct io_relay **out, struct hutch_err **err)
{
	static const char *const names[] = {"stdin", "stdout", "stderr"};
	int fds[3] = {io->stdin_fd, io->stdout_fd, io->stderr_fd};
	int *child_fds[3] = {&child->stdin_fd, &child->stdout_fd, &child->stderr_fd};
	struct stat st[3];
	bool relay[3] = {false, false, false};
	*child = *io;
	*out = NULL;
	/* without -i the container's stdin is its own /dev/null */
	for (int i = interactive ? 0 : 1; i < 3; i++) {
		if (fstat(fds[i], &st[i]) < 0)
			return hutch_fail_sys(err, "look at the %s given to the container (fd %d)",
					      names[i], fds[i]);
		relay[i] = !passes_as_is(&st[i]);
	}
	if (!relay[0] && !relay[1] && !relay[2])
		return 0;
	struct io_relay *r = xcalloc(1, sizeof(*r));
	for (int i = 0; i < 3; i++) {
		if (!relay[i])
			continue;
		/* One file for both (2>&1, or >>log 2>>log): one pipe, so that the
		 * container's writes to either keep their order. */
		if (i == 2 && relay[1] && st[2].st_dev == st[1].st_dev &&
		    st[2].st_ino == st[1].st_ino) {
			child->stderr_fd = child->stdout_fd;
			continue;
		}
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			io_relay_free(r);
			return hutch_fail_sys(err, "create the pipe for the container's %s",
					      names[i]);
		}
		int ours = i == 0 ? p[1] : p[0], theirs = i == 0 ? p[0] : p[1];
		r->child_end[r->n_child++] = theirs;
		r->s[r->n++] = (struct io_stream){
		    .shared = fds[i],
		    .pipe = ours,
		    .input = i == 0,
		    .always_ready = S_ISREG(st[i].st_mode) || S_ISBLK(st[i].st_mode),
		};
		*child_fds[i] = theirs;
		if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0) {
			io_relay_free(r);
			return hutch_fail_sys(
			    err, "make the pipe for the container's %s non-blocking", names[i]);
		}
	}
	*out = r;
	return 0;
}

enum step { STEP_MOVED, STEP_WAIT, STEP_END };

static enum step stream_copy(struct io_stream *s, int from, int to, size_t most, size_t *taken)
{
	if (!s->buf)
		s->buf = xcalloc(1, sizeof(*s->buf));
	struct relay_buf *b = s->buf;
	if (buf_pending(b) == 0) {
		size_t room = buf_room(b);
		ssize_t n = read(from, b->data + b->len, room);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return STEP_WAIT;
		if (n <= 0)
			return STEP_END; /* EOF, or an error that ends it just the same */
		b->len += (size_t)n;
		*taken = (size_t)n;
	}
	size_t len = buf_pending(b) < most ? buf_pending(b) : most;
	ssize_t n = write(to, b->data + b->off, len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return STEP_WAIT;
	if (n < 0)
		return STEP_END;
	b->off += (size_t)n;
	return STEP_MOVED;
}

/* Move what can be moved now, without blocking on our side; *taken: how many
 * bytes left the source. */
static enum step stream_step(struct io_stream *s, bool draining, size_t *taken)
{
	*taken = 0;
	int from = s->input ? s->shared : s->pipe, to = s->input ? s->pipe : s->shared;
	/* a write to a shared fd that may block: what POLLOUT promises */
	size_t most = s->input || s->always_ready || draining ? (size_t)1 << 20 : PIPE_BUF;
	if (!s->no_splice) {
		ssize_t n = splice(from, NULL, to, NULL, most, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			*taken = (size_t)n;
			return STEP_MOVED;
		}
		if (n == 0)
			return STEP_END;
		if (errno == EINTR || errno == EAGAIN)
			return STEP_WAIT;
		if (errno != EINVAL)
			return STEP_END; /* EPIPE, EIO, ENOSPC: as the -t path, stop */
		s->no_splice = true;
	}
	return stream_copy(s, from, to, most, taken);
}

static bool stream_pending(const struct io_stream *s)
{
	return s->buf && buf_pending(s->buf) > 0;
}

static void stream_end(struct io_stream *s)
{
	/* stdin: the container reads EOF; output: its further writes get EPIPE */
	close(s->pipe);
	s->pipe = -1;
}

static bool pipe_ready(const struct io_stream *s)
{
	struct pollfd p = {.fd = s->pipe, .events = s->input ? POLLOUT : POLLIN};
	return poll(&p, 1, 0) > 0;
}

/* The one fd this stream waits on next. */
static struct pollfd stream_pollfd(const struct io_stream *s)
{
	if (s->pipe < 0)
		return (struct pollfd){.fd = -1};
	bool on_shared = stream_pending(s) ? !s->input : !s->always_ready && !s->ready;
	if (on_shared)
		return (struct pollfd){.fd = s->shared, .events = s->input ? POLLIN : POLLOUT};
	return (struct pollfd){.fd = s->pipe, .events = s->input ? POLLOUT : POLLIN};
}

static void stream_event(struct io_stream *s, const struct pollfd *p)
{
	if (s->pipe < 0 || p->fd < 0 || !p->revents)
		return;
	if (p->fd == s->shared && !stream_pending(s))
		s->ready = true;
	size_t taken;
	switch (stream_step(s, false, &taken)) {
	case STEP_MOVED:
		/* a blocking fd promised one step per poll */
		if (!s->always_ready)
			s->ready = false;
		break;
	case STEP_WAIT:
		/* The shared fd made non-blocking by someone else can say EAGAIN too:
		 * wait for it, not for our side, when ours is ready. */
		if (!s->always_ready && pipe_ready(s))
			s->ready = false;
		break;
	case STEP_END:
		stream_end(s);
		break;
	}
}

/* The process we waited for has exited: what it wrote is in the pipes. After
 * `run` every writer is gone (its pid namespace died with it), so this reads
 * to EOF; after `exec` a background process may still hold a pipe and write
 * on: take what is there, at most a pipe's worth, then close ours (its next
 * write gets EPIPE). stdin is closed: nobody we serve reads it any more. */
static void relay_drain(struct io_relay *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct io_stream *s = &r->s[i];
		if (s->pipe < 0 || s->input)
			continue;
		int cap = fcntl(s->pipe, F_GETPIPE_SZ);
		size_t left = cap > 0 ? (size_t)cap : 65536, taken;
		while (left > 0 || stream_pending(s)) {
			enum step st = stream_step(s, true, &taken);
			left -= taken < left ? taken : left;
			if (st == STEP_END)
				break;
			if (st == STEP_WAIT) {
				/* our pipe is empty: done; else the shared fd is
				 * non-blocking and full: wait for it */
				if (!stream_pending(s) && !pipe_ready(s))
					break;
				poll(&(struct pollfd){.fd = s->shared, .events = POLLOUT}, 1, -1);
			}
		}
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->s[i].pipe >= 0)
			stream_end(&r->s[i]);
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

	enum { P_PID, P_SIG, P_IN, P_MASTER, P_OUT, P_STREAM, P_N = P_STREAM + 3 };
	struct io_relay *pipes = c->relay;
	int ret = 0;
	for (;;) {
		struct pollfd p[P_N] = {
		    [P_PID] = {.fd = c->pidfd, .events = POLLIN},
		    [P_SIG] = {.fd = sfd, .events = POLLIN},
		    [P_IN] = {.fd = -1},
		    [P_MASTER] = {.fd = -1},
		    [P_OUT] = {.fd = -1},
		};
		for (size_t i = 0; i < 3; i++)
			p[P_STREAM + i] = pipes && i < pipes->n ? stream_pollfd(&pipes->s[i])
								: (struct pollfd){.fd = -1};
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
		for (size_t i = 0; pipes && i < pipes->n; i++)
			stream_event(&pipes->s[i], &p[P_STREAM + i]);
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
	if (pipes)
		relay_drain(pipes);
	if (raw)
		tcsetattr(stdin_fd, TCSANOW, &saved);
	sigaction(SIGPIPE, &old_pipe, NULL);
	if (ret == 0)
		ret = hutch_container_reap(c, st, err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret;
}
