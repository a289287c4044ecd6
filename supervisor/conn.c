/* A control-socket connection that never blocks the supervisor's loop: lines
 * in are gathered until their newline (a request may come in many reads), lines
 * out are written as far as the socket takes them and the rest is queued, to
 * be written when the socket says it has room (EPOLLOUT). The queue is
 * bounded: a client that stops reading (a subscriber gone to sleep) is
 * dropped once SUP_CONN_OUT_MAX bytes wait for it, instead of holding the
 * loop and every other client, as a blocking write did. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "supervisor/sup_internal.h"

void sup_conn_init(struct sup_conn *c, int fd)
{
	*c = (struct sup_conn){.fd = fd};
}

void sup_conn_fini(struct sup_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->in_len = c->out_len = c->out_off = 0;
}

bool sup_conn_pending(const struct sup_conn *c)
{
	return c->out_len > c->out_off;
}

/* Write what is queued; -1: the connection is broken. */
int sup_conn_flush(struct sup_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	} else if (c->out_off > 65536 && c->out_off * 2 > c->out_len) {
		/* what was written goes, now and then, not at every write */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	return 0;
}

int sup_conn_send(struct sup_conn *c, const char *line, size_t len)
{
	if (c->fd < 0)
		return -1;
	size_t waiting = c->out_len - c->out_off;
	if (waiting + len + 1 > SUP_CONN_OUT_MAX)
		return -2;
	if (c->out_len + len + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len + 1)
			cap *= 2;
		c->out = xrealloc(c->out, cap);
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, line, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
	/* written at once when nothing waits: most answers never queue */
	return waiting ? 0 : sup_conn_flush(c);
}

int sup_conn_fill(struct sup_conn *c)
{
	char buf[8192];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	if (c->in_len + (size_t)n > SUP_REQUEST_MAX + 1)
		return -2;
	c->in = xrealloc(c->in, c->in_len + (size_t)n + 1);
	memcpy(c->in + c->in_len, buf, (size_t)n);
	c->in_len += (size_t)n;
	return 0;
}

bool sup_conn_line(struct sup_conn *c, char **line, size_t *len)
{
	char *nl = c->in ? memchr(c->in, '\n', c->in_len) : NULL;
	if (!nl)
		return false;
	*line = c->in;
	*len = (size_t)(nl - c->in);
	return true;
}

void sup_conn_consume(struct sup_conn *c, size_t len)
{
	memmove(c->in, c->in + len + 1, c->in_len - len - 1);
	c->in_len -= len + 1;
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sup_conn_drain(struct sup_conn *c, int timeout_ms)
{
	int64_t end = ms_now() + timeout_ms;
	while (c->fd >= 0 && sup_conn_pending(c) && sup_conn_flush(c) == 0 && sup_conn_pending(c)) {
		int64_t left = end - ms_now();
		struct pollfd p = {.fd = c->fd, .events = POLLOUT};
		if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
			break;
	}
}
