/* The DNS server: answers containers' names from the caller's table, forwards every
 * other name to the host's resolvers. A set of non-blocking fds and one timeout list
 * that the caller's event loop drives (docs/dns.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>

#include "common/util.h"
#include "net/dns_internal.h"

#define DEFAULT_BUDGET_NS  (5 * 1000000000LL)
#define MAX_UPSTREAMS	   3
#define TCP_IDLE_NS	   (10 * 1000000000LL) /* RFC 7766 asks for "a few seconds" */
#define TCP_CLIENT_PENDING 32		       /* forwards one TCP client may have at once */
#define TCP_OUT_MAX	   (256u << 10)	       /* a client that reads nothing is let go */
#define UDP_BATCH	   32
#define UDP_IN_MAX	   4096
#define UDP_OUT_MAX	   DNS_LOCAL_UDP_MAX

/* ---- addresses ---------------------------------------------------------------- */

int dns_parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *ss,
		   socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 16];
	const char *port = NULL;
	size_t sl = strlen(s);
	if (sl == 0 || sl >= sizeof(host))
		return -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (close[1] && close[1] != ':'))
			return -1;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = 0;
		if (close[1] == ':')
			port = close + 2;
	} else {
		const char *colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 address */
		size_t hl = colon ? (size_t)(colon - s) : sl;
		memcpy(host, s, hl);
		host[hl] = 0;
		if (colon)
			port = colon + 1;
	}
	unsigned long p = default_port;
	if (port) {
		char *end;
		errno = 0;
		p = strtoul(port, &end, 10);
		if (!*port || *end || errno || p > 65535)
			return -1;
	}
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)p);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

static void format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(in4->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
	}
}

/* The client's address as family + bytes; an IPv4-mapped IPv6 address is IPv4. */
static int client_addr(const struct sockaddr *sa, uint8_t addr[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(addr, a->s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(addr, a->s6_addr, 16);
		return AF_INET6;
	}
	return -1;
}

/* ---- answers ------------------------------------------------------------------- */

size_t dns_answer_error(const struct dns_msg *q, uint16_t rcode, uint8_t *out, size_t cap)
{
	struct dns_builder b;
	dns_build_start(&b, out, cap, cap, q, DNS_FLAG_QR | DNS_FLAG_RA | rcode);
	if (q->has_opt)
		dns_build_opt(&b, DNS_LOCAL_UDP_MAX, 0);
	return dns_build_finish(&b);
}

static bool wire_name_equal(const struct dns_name *a, const struct dns_name *b)
{
	if (a->wire_len != b->wire_len)
		return false;
	for (size_t i = 0; i < a->wire_len; i++) {
		uint8_t x = a->wire[i], y = b->wire[i];
		/* length bytes are at most 63, below 'A': folding them changes nothing */
		if (x >= 'A' && x <= 'Z')
			x = (uint8_t)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (uint8_t)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

bool dns_answer_matches(const uint8_t *ans, size_t len, uint16_t id, const struct dns_msg *q)
{
	struct dns_msg a;
	if (dns_parse(ans, len, false, &a) != DNS_PARSE_OK)
		return false;
	return a.id == id && (a.flags & DNS_FLAG_QR) && a.qtype == q->qtype &&
	       a.qclass == q->qclass && wire_name_equal(&a.qname, &q->qname);
}

static void answer_entry(struct dns_builder *b, struct dns_entry *e, uint16_t qtype)
{
	bool any = qtype == DNS_TYPE_ANY;
	if ((qtype == DNS_TYPE_A || any) && e->n_v4) {
		for (size_t i = 0; i < e->n_v4; i++)
			dns_build_answer(b, DNS_TYPE_A, DNS_TTL_LOCAL,
					 e->v4[(e->rotor + i) % e->n_v4], 4);
	}
	if ((qtype == DNS_TYPE_AAAA || any) && e->n_v6) {
		for (size_t i = 0; i < e->n_v6; i++)
			dns_build_answer(b, DNS_TYPE_AAAA, DNS_TTL_LOCAL,
					 e->v6[(e->rotor + i) % e->n_v6], 16);
	}
	if ((qtype == DNS_TYPE_PTR || any) && e->ptr)
		dns_build_answer_ptr(b, DNS_TTL_LOCAL, e->ptr);
	/* replicas: each answer starts one further on, so clients that take the first
	 * address spread over them */
	e->rotor++;
}

enum dns_verdict dns_answer_local(struct hutch_dns_records *records, const struct sockaddr *client,
				  const uint8_t *q, size_t qlen, bool tcp, uint8_t *out, size_t cap,
				  size_t *outlen, struct dns_msg *msg)
{
	enum dns_parse_result pr = dns_parse(q, qlen, true, msg);
	*outlen = 0;
	if (pr == DNS_PARSE_SHORT || (msg->flags & DNS_FLAG_QR))
		return DNS_DROP;
	if (pr == DNS_PARSE_BAD) {
		/* echo no question: it is what could not be read */
		msg->qname.wire_len = 0;
		msg->has_opt = false;
		*outlen = dns_answer_error(msg, DNS_RCODE_FORMERR, out, cap);
		return DNS_ANSWER;
	}
	if (DNS_OPCODE(msg->flags) != 0) {
		*outlen = dns_answer_error(msg, DNS_RCODE_NOTIMP, out, cap);
		return DNS_ANSWER;
	}
	size_t limit = cap;
	if (!tcp) {
		limit = msg->has_opt ? msg->opt_udp_size : DNS_MAX_UDP_PLAIN;
		if (limit > DNS_LOCAL_UDP_MAX)
			limit = DNS_LOCAL_UDP_MAX;
	}
	struct dns_builder b;
	if (msg->has_opt && msg->opt_version > 0) {
		/* RFC 6891 6.1.3: BADVERS (16: 1 in the OPT's upper rcode bits) */
		dns_build_start(&b, out, cap, limit, msg, DNS_FLAG_QR | DNS_FLAG_RA);
		dns_build_opt(&b, DNS_LOCAL_UDP_MAX, 1);
		*outlen = dns_build_finish(&b);
		return DNS_ANSWER;
	}
	/* the client's networks: names are answered from those alone */
	uint8_t addr[16];
	int family = client_addr(client, addr);
	struct dns_network *nets[8];
	size_t n_nets = 0;
	for (size_t i = 0; records && i < records->n_nets && n_nets < ARRAY_SIZE(nets); i++) {
		struct dns_network *n = &records->nets[i];
		for (size_t s = 0; s < n->n_subnets; s++) {
			if (dns_subnet_contains(&n->subnets[s], family, addr)) {
				nets[n_nets++] = n;
				break;
			}
		}
	}
	if (!n_nets) {
		/* not a client of any network: hutch is no open resolver for whoever can
		 * reach the address it listens on */
		*outlen = dns_answer_error(msg, DNS_RCODE_REFUSED, out, cap);
		return DNS_ANSWER;
	}
	if (msg->qclass != DNS_CLASS_IN && msg->qclass != DNS_CLASS_ANY)
		return DNS_FORWARD;
	const char *name = msg->qname.text;
	size_t len = msg->qname.text_len;
	uint32_t hash = dns_name_hash(name, len);
	uint16_t flags = DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RA;
	for (size_t i = 0; i < n_nets && !msg->qname.odd; i++) {
		struct dns_entry *e = dns_find_entry(nets[i], name, len, hash);
		if (!e)
			continue;
		dns_build_start(&b, out, cap, limit, msg, flags);
		answer_entry(&b, e, msg->qtype);
		if (!b.ancount && !b.truncated) {
			/* NODATA: the name exists, not with this type (an AAAA for a name with
			 * only A: never NXDOMAIN, or the client would give up on the A) */
			const char *zone = dns_find_zone(nets[i], name, len);
			if (zone)
				dns_build_soa(&b, zone, DNS_TTL_LOCAL, false);
		}
		if (msg->has_opt)
			dns_build_opt(&b, DNS_LOCAL_UDP_MAX, 0);
		*outlen = dns_build_finish(&b);
		return DNS_ANSWER;
	}
	for (size_t i = 0; i < n_nets; i++) {
		const char *zone = dns_find_zone(nets[i], name, len);
		if (!zone)
			continue;
		bool apex = strlen(zone) == len;
		dns_build_start(&b, out, cap, limit, msg, flags | (apex ? 0 : DNS_RCODE_NXDOMAIN));
		if (apex && (msg->qtype == DNS_TYPE_SOA || msg->qtype == DNS_TYPE_ANY))
			dns_build_soa(&b, zone, DNS_TTL_LOCAL, true);
		else
			dns_build_soa(&b, zone, DNS_TTL_LOCAL, false);
		if (msg->has_opt)
			dns_build_opt(&b, DNS_LOCAL_UDP_MAX, 0);
		*outlen = dns_build_finish(&b);
		return DNS_ANSWER;
	}
	return DNS_FORWARD;
}

/* ---- the server ------------------------------------------------------------------ */

enum fd_kind { FD_NONE, FD_UDP_LISTEN, FD_TCP_LISTEN, FD_TCP_CLIENT, FD_FORWARD };

struct fd_slot {
	enum fd_kind kind;
	void *obj;
};

struct listener {
	int udp_fd, tcp_fd;
	int port;
};

struct tcp_client {
	struct tcp_client *prev, *next; /* the idle list, oldest first */
	int fd;
	int64_t deadline;
	struct sockaddr_storage peer;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	unsigned pending;
	bool want_out;
	bool eof;  /* the client has shut its side: answer what is pending, then close */
	bool dead; /* closed; freed once the event being handled is done with it */
	struct tcp_client *next_dead;
};

struct forward {
	struct forward *prev, *next; /* the in-flight list, earliest deadline first */
	int fd;
	bool tcp;
	int upstream;
	int64_t deadline;
	uint16_t id;	  /* the id the upstream got: random, never the client's */
	struct dns_msg q; /* the client's question and id */
	uint8_t *query;	  /* the client's query: 2 bytes of TCP length, then the message */
	size_t query_len;
	/* where the answer goes */
	int reply_fd;
	struct sockaddr_storage client;
	socklen_t client_len;
	struct tcp_client *tc;
	/* TCP to the upstream */
	bool connected;
	size_t sent;
	uint8_t *in;
	size_t in_len, in_need;
};

struct list {
	void *head, *tail;
};

struct hutch_dns {
	struct hutch_dns_records *records;
	hutch_dns_watch_fn watch;
	void *watch_ctx;
	struct listener *listeners;
	size_t n_listeners;
	struct sockaddr_storage upstreams[MAX_UPSTREAMS];
	socklen_t upstream_len[MAX_UPSTREAMS];
	char upstream_text[MAX_UPSTREAMS][INET6_ADDRSTRLEN + 8];
	size_t n_upstreams;
	int64_t per_upstream_ns;
	unsigned max_forwards, n_forwards;
	unsigned max_tcp_clients, n_tcp_clients;
	struct forward *fwd_head, *fwd_tail;
	struct tcp_client *tc_head, *tc_tail;
	struct tcp_client *dead_clients;
	int reserve_fd; /* given up to accept (and close) a connection when out of fds */
	struct fd_slot *fds;
	size_t n_fds;
	uint64_t rng;
	struct hutch_dns_stats stats;
	/* recvmmsg/sendmmsg batches */
	struct mmsghdr in_msgs[UDP_BATCH], out_msgs[UDP_BATCH];
	struct iovec in_iov[UDP_BATCH], out_iov[UDP_BATCH];
	struct sockaddr_storage in_addr[UDP_BATCH];
	uint8_t in_buf[UDP_BATCH][UDP_IN_MAX];
	uint8_t out_buf[UDP_BATCH][UDP_OUT_MAX];
	uint8_t big[2 + DNS_MAX_MSG]; /* one answer over TCP or from an upstream */
};

int64_t hutch_dns_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint16_t random_id(struct hutch_dns *d)
{
	/* xorshift64*, seeded from getrandom: ids an off-path attacker cannot guess
	 * from earlier ones without seeing many (the per-forward socket's random port
	 * is the other half of the defence) */
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return (uint16_t)((d->rng * 2685821657736338717ULL) >> 48);
}

static void set_fd(struct hutch_dns *d, int fd, enum fd_kind kind, void *obj)
{
	if ((size_t)fd >= d->n_fds) {
		size_t n = d->n_fds ? d->n_fds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		d->fds = xrealloc(d->fds, n * sizeof(*d->fds));
		memset(d->fds + d->n_fds, 0, (n - d->n_fds) * sizeof(*d->fds));
		d->n_fds = n;
	}
	d->fds[fd].kind = kind;
	d->fds[fd].obj = obj;
}

static void watch(struct hutch_dns *d, int fd, uint32_t events)
{
	if (d->watch)
		d->watch(d->watch_ctx, fd, events);
}

static void drop_fd(struct hutch_dns *d, int fd)
{
	if (fd < 0)
		return;
	watch(d, fd, 0);
	set_fd(d, fd, FD_NONE, NULL);
	close(fd);
}

/* doubly linked lists through prev/next */
#define LIST_APPEND(head, tail, x)                                                                 \
	do {                                                                                       \
		(x)->prev = (tail);                                                                \
		(x)->next = NULL;                                                                  \
		if (tail)                                                                          \
			(tail)->next = (x);                                                        \
		else                                                                               \
			(head) = (x);                                                              \
		(tail) = (x);                                                                      \
	} while (0)
#define LIST_REMOVE(head, tail, x)                                                                 \
	do {                                                                                       \
		if ((x)->prev)                                                                     \
			(x)->prev->next = (x)->next;                                               \
		else                                                                               \
			(head) = (x)->next;                                                        \
		if ((x)->next)                                                                     \
			(x)->next->prev = (x)->prev;                                               \
		else                                                                               \
			(tail) = (x)->prev;                                                        \
		(x)->prev = (x)->next = NULL;                                                      \
	} while (0)

static void count_local(struct hutch_dns *d, const uint8_t *answer)
{
	d->stats.answered_locally++;
	uint16_t rcode = DNS_RCODE(dns_get16(answer + 2));
	if (rcode == DNS_RCODE_NXDOMAIN)
		d->stats.nxdomain++;
	else if (rcode == DNS_RCODE_REFUSED)
		d->stats.refused++;
}

/* ---- TCP clients ---------------------------------------------------------------- */

/* Closes c at once; its memory goes only when the current event is handled (callers up
 * the stack may still hold it: they check c->dead). */
static void tcp_client_close(struct hutch_dns *d, struct tcp_client *c)
{
	if (c->dead)
		return;
	/* its forwards go on, their answers have nowhere to go */
	for (struct forward *f = d->fwd_head; f && c->pending; f = f->next) {
		if (f->tc == c) {
			f->tc = NULL;
			c->pending--;
		}
	}
	LIST_REMOVE(d->tc_head, d->tc_tail, c);
	drop_fd(d, c->fd);
	c->fd = -1;
	c->dead = true;
	c->next_dead = d->dead_clients;
	d->dead_clients = c;
	d->n_tcp_clients--;
}

static void reap_clients(struct hutch_dns *d)
{
	while (d->dead_clients) {
		struct tcp_client *c = d->dead_clients;
		d->dead_clients = c->next_dead;
		free(c->in);
		free(c->out);
		free(c);
	}
}

static void tcp_client_rewatch(struct hutch_dns *d, struct tcp_client *c)
{
	watch(d, c->fd, (c->eof ? 0 : EPOLLIN) | (c->want_out ? EPOLLOUT : 0));
}

/* A client that has shut its side is closed once nothing is left for it. */
static void tcp_client_check_done(struct hutch_dns *d, struct tcp_client *c)
{
	if (!c->dead && c->eof && !c->pending && c->out_off == c->out_len)
		tcp_client_close(d, c);
}

static void tcp_client_touch(struct hutch_dns *d, struct tcp_client *c)
{
	c->deadline = hutch_dns_now_ns() + TCP_IDLE_NS;
	LIST_REMOVE(d->tc_head, d->tc_tail, c);
	LIST_APPEND(d->tc_head, d->tc_tail, c);
}

/* Queues msg (length-prefixed) to the client; -1 when the client is gone. */
static int tcp_client_send(struct hutch_dns *d, struct tcp_client *c, const uint8_t *msg,
			   size_t len)
{
	if (c->dead)
		return -1;
	uint8_t pfx[2];
	dns_put16(pfx, (uint16_t)len);
	size_t done = 0;
	if (c->out_len == c->out_off) {
		struct iovec iov[2] = {{pfx, 2}, {(void *)msg, len}};
		ssize_t n = writev(c->fd, iov, 2);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			tcp_client_close(d, c);
			return -1;
		}
		done = n > 0 ? (size_t)n : 0;
		if (done == len + 2)
			return 0;
	}
	size_t rest = len + 2 - done;
	if (c->out_len - c->out_off + rest > TCP_OUT_MAX) {
		tcp_client_close(d, c);
		return -1;
	}
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + rest > c->out_cap) {
		c->out_cap = (c->out_len + rest) * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
	for (size_t i = done; i < len + 2; i++)
		c->out[c->out_len++] = i < 2 ? pfx[i] : msg[i - 2];
	if (!c->want_out) {
		c->want_out = true;
		tcp_client_rewatch(d, c);
	}
	return 0;
}

static int start_forward(struct hutch_dns *d, const struct dns_msg *q, const uint8_t *pkt,
			 size_t len, int reply_fd, const struct sockaddr_storage *client,
			 socklen_t client_len, struct tcp_client *tc);

static void tcp_client_process(struct hutch_dns *d, struct tcp_client *c)
{
	size_t off = 0;
	while (c->in_len - off >= 2) {
		size_t mlen = dns_get16(c->in + off);
		if (c->in_len - off < 2 + mlen)
			break;
		const uint8_t *m = c->in + off + 2;
		off += 2 + mlen;
		struct dns_msg q;
		size_t alen;
		d->stats.queries++;
		enum dns_verdict v =
		    dns_answer_local(d->records, (struct sockaddr *)&c->peer, m, mlen, true, d->big,
				     sizeof(d->big), &alen, &q);
		if (v == DNS_DROP) {
			d->stats.dropped++;
			continue;
		}
		if (v == DNS_FORWARD && c->pending >= TCP_CLIENT_PENDING) {
			alen = dns_answer_error(&q, DNS_RCODE_SERVFAIL, d->big, sizeof(d->big));
			v = DNS_ANSWER;
		}
		if (v == DNS_FORWARD)
			start_forward(d, &q, m, mlen, -1, NULL, 0, c);
		else {
			count_local(d, d->big);
			tcp_client_send(d, c, d->big, alen);
		}
		if (c->dead)
			return; /* it went away meanwhile */
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void tcp_client_event(struct hutch_dns *d, struct tcp_client *c, uint32_t events)
{
	if (events & EPOLLOUT) {
		while (c->out_off < c->out_len) {
			ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				tcp_client_close(d, c);
				return;
			}
			c->out_off += (size_t)n;
		}
		if (c->out_off == c->out_len && c->want_out) {
			c->want_out = false;
			c->out_off = c->out_len = 0;
			tcp_client_rewatch(d, c);
			tcp_client_check_done(d, c);
		}
	}
	if (c->dead || c->eof || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (c->in_cap - c->in_len < 4096 && c->in_cap < 2 + DNS_MAX_MSG + 4096) {
		c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
		c->in = xrealloc(c->in, c->in_cap);
	}
	ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0 && !(events & EPOLLERR) && (c->pending || c->out_off < c->out_len)) {
		/* shut for writing after its queries: the answers still go out */
		c->eof = true;
		tcp_client_rewatch(d, c);
		return;
	}
	if (n <= 0) {
		tcp_client_close(d, c);
		return;
	}
	c->in_len += (size_t)n;
	tcp_client_touch(d, c);
	tcp_client_process(d, c);
}

static void tcp_accept(struct hutch_dns *d, int lfd)
{
	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && d->reserve_fd >= 0) {
			/* out of fds: the pending connection would wake the loop forever;
			 * take it with the reserve fd and close it (the client retries) */
			close(d->reserve_fd);
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			return;
		}
		if (fd < 0)
			return;
		if (d->n_tcp_clients >= d->max_tcp_clients) {
			/* the oldest idle one makes room (RFC 7766 6.2.3) */
			tcp_client_close(d, d->tc_head);
		}
		struct tcp_client *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->peer = peer;
		d->n_tcp_clients++;
		c->deadline = hutch_dns_now_ns() + TCP_IDLE_NS;
		LIST_APPEND(d->tc_head, d->tc_tail, c);
		set_fd(d, fd, FD_TCP_CLIENT, c);
		watch(d, fd, EPOLLIN);
	}
}

/* ---- forwarding ------------------------------------------------------------------- */

static void forward_free(struct hutch_dns *d, struct forward *f)
{
	LIST_REMOVE(d->fwd_head, d->fwd_tail, f);
	drop_fd(d, f->fd);
	if (f->tc)
		f->tc->pending--;
	free(f->query);
	free(f->in);
	free(f);
	d->n_forwards--;
}

static void reply(struct hutch_dns *d, struct forward *f, uint8_t *msg, size_t len)
{
	dns_put16(msg, f->q.id);
	if (f->tc) {
		struct tcp_client *tc = f->tc;
		f->tc = NULL;
		tc->pending--;
		tcp_client_send(d, tc, msg, len);
		tcp_client_check_done(d, tc);
	} else if (f->reply_fd >= 0) {
		sendto(f->reply_fd, msg, len, MSG_DONTWAIT, (struct sockaddr *)&f->client,
		       f->client_len);
	}
}

static void reply_servfail(struct hutch_dns *d, struct forward *f)
{
	d->stats.forward_failed++;
	size_t n = dns_answer_error(&f->q, DNS_RCODE_SERVFAIL, d->big, sizeof(d->big));
	reply(d, f, d->big, n);
}

/* Sends f to upstream number f->upstream; -1 when that cannot even start. */
static int forward_send(struct hutch_dns *d, struct forward *f)
{
	const struct sockaddr *up = (struct sockaddr *)&d->upstreams[f->upstream];
	int fd = socket(up->sa_family,
			(f->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* a connected socket of its own: the kernel picks a random source port and drops
	 * datagrams from any other address than the upstream's */
	f->id = random_id(d);
	dns_put16(f->query + 2, f->id);
	f->connected = false;
	f->sent = 0;
	free(f->in);
	f->in = NULL;
	f->in_len = f->in_need = 0;
	if (connect(fd, up, d->upstream_len[f->upstream]) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	f->fd = fd;
	set_fd(d, fd, FD_FORWARD, f);
	if (f->tcp) {
		watch(d, fd, EPOLLOUT);
	} else {
		/* an error here (no route) shows as the next read's error */
		send(fd, f->query + 2, f->query_len - 2, MSG_DONTWAIT);
		watch(d, fd, EPOLLIN);
	}
	f->deadline = hutch_dns_now_ns() + d->per_upstream_ns;
	LIST_REMOVE(d->fwd_head, d->fwd_tail, f);
	LIST_APPEND(d->fwd_head, d->fwd_tail, f);
	return 0;
}

/* The current upstream failed (silent, SERVFAIL, REFUSED, unreachable): the next one,
 * or SERVFAIL when none is left. */
static void forward_next(struct hutch_dns *d, struct forward *f)
{
	drop_fd(d, f->fd);
	f->fd = -1;
	while (++f->upstream < (int)d->n_upstreams) {
		if (forward_send(d, f) == 0)
			return;
	}
	reply_servfail(d, f);
	forward_free(d, f);
}

static int start_forward(struct hutch_dns *d, const struct dns_msg *q, const uint8_t *pkt,
			 size_t len, int reply_fd, const struct sockaddr_storage *client,
			 socklen_t client_len, struct tcp_client *tc)
{
	if (!d->n_upstreams || d->n_forwards >= d->max_forwards) {
		size_t n = dns_answer_error(q, DNS_RCODE_SERVFAIL, d->big, sizeof(d->big));
		d->stats.forward_failed++;
		if (tc)
			return tcp_client_send(d, tc, d->big, n);
		sendto(reply_fd, d->big, n, MSG_DONTWAIT, (const struct sockaddr *)client,
		       client_len);
		return 0;
	}
	struct forward *f = xcalloc(1, sizeof(*f));
	f->fd = -1;
	f->q = *q;
	f->tcp = tc != NULL;
	f->query = xcalloc(1, len + 2);
	dns_put16(f->query, (uint16_t)len);
	memcpy(f->query + 2, pkt, len);
	f->query_len = len + 2;
	f->reply_fd = reply_fd;
	if (client) {
		f->client = *client;
		f->client_len = client_len;
	}
	f->tc = tc;
	if (tc)
		tc->pending++;
	f->upstream = -1;
	d->n_forwards++;
	d->stats.forwarded++;
	LIST_APPEND(d->fwd_head, d->fwd_tail, f);
	forward_next(d, f);
	return 0;
}

/* An upstream's answer: relayed if it is the one asked for; SERVFAIL and REFUSED
 * move on to the next upstream. Returns true when f is done (freed). */
static bool forward_answer(struct hutch_dns *d, struct forward *f, uint8_t *msg, size_t len)
{
	if (!dns_answer_matches(msg, len, f->id, &f->q)) {
		/* An error without the question (FORMERR may come so, RFC 6891 7): from
		 * this upstream (the socket is connected) with our random id, it is this
		 * upstream failing; move on rather than wait out its time. */
		if (len >= DNS_HEADER_LEN && dns_get16(msg) == f->id &&
		    (dns_get16(msg + 2) & DNS_FLAG_QR) && dns_get16(msg + 4) == 0 &&
		    DNS_RCODE(dns_get16(msg + 2)) != DNS_RCODE_NOERROR) {
			forward_next(d, f);
			return true;
		}
		return false; /* late, spoofed or garbled: not the answer; keep waiting */
	}
	uint16_t rc = DNS_RCODE(dns_get16(msg + 2));
	if ((rc == DNS_RCODE_SERVFAIL || rc == DNS_RCODE_REFUSED) &&
	    f->upstream + 1 < (int)d->n_upstreams) {
		forward_next(d, f);
		return true;
	}
	/* a truncated UDP answer goes back as it is: the client retries over TCP */
	reply(d, f, msg, len);
	forward_free(d, f);
	return true;
}

static void forward_event(struct hutch_dns *d, struct forward *f, uint32_t events)
{
	if (!f->tcp) {
		for (int i = 0; i < 8; i++) {
			ssize_t n = recv(f->fd, d->big, sizeof(d->big), MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				/* ICMP unreachable (ECONNREFUSED): this upstream is gone */
				forward_next(d, f);
				return;
			}
			if (forward_answer(d, f, d->big, (size_t)n))
				return;
		}
		return;
	}
	if (!f->connected) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			forward_next(d, f);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		f->connected = true;
	}
	if (f->sent < f->query_len) {
		ssize_t n = send(f->fd, f->query + f->sent, f->query_len - f->sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				forward_next(d, f);
			return;
		}
		f->sent += (size_t)n;
		if (f->sent == f->query_len)
			watch(d, f->fd, EPOLLIN);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (!f->in) {
		f->in = xcalloc(1, 2 + DNS_MAX_MSG);
		f->in_need = 2;
	}
	ssize_t n = recv(f->fd, f->in + f->in_len, f->in_need - f->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		forward_next(d, f);
		return;
	}
	f->in_len += (size_t)n;
	if (f->in_len == 2 && f->in_need == 2)
		f->in_need = 2 + (size_t)dns_get16(f->in);
	if (f->in_len < f->in_need)
		return;
	if (!forward_answer(d, f, f->in + 2, f->in_len - 2))
		forward_next(d, f); /* a TCP stream that answers something else is useless */
}

/* ---- UDP queries ------------------------------------------------------------------- */

static void udp_event(struct hutch_dns *d, int fd)
{
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < UDP_BATCH; i++) {
			d->in_iov[i] = (struct iovec){d->in_buf[i], UDP_IN_MAX};
			d->in_msgs[i].msg_hdr = (struct msghdr){
			    .msg_name = &d->in_addr[i],
			    .msg_namelen = sizeof(d->in_addr[i]),
			    .msg_iov = &d->in_iov[i],
			    .msg_iovlen = 1,
			};
		}
		int n = recvmmsg(fd, d->in_msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		int out = 0;
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &d->in_msgs[i].msg_hdr;
			size_t len = d->in_msgs[i].msg_len;
			d->stats.queries++;
			if (h->msg_flags & MSG_TRUNC) {
				d->stats.dropped++;
				continue;
			}
			struct dns_msg q;
			size_t alen;
			enum dns_verdict v =
			    dns_answer_local(d->records, h->msg_name, d->in_buf[i], len, false,
					     d->out_buf[out], UDP_OUT_MAX, &alen, &q);
			if (v == DNS_DROP) {
				d->stats.dropped++;
			} else if (v == DNS_FORWARD) {
				start_forward(d, &q, d->in_buf[i], len, fd, h->msg_name,
					      h->msg_namelen, NULL);
			} else {
				count_local(d, d->out_buf[out]);
				d->out_iov[out] = (struct iovec){d->out_buf[out], alen};
				d->out_msgs[out].msg_hdr = (struct msghdr){
				    .msg_name = h->msg_name,
				    .msg_namelen = h->msg_namelen,
				    .msg_iov = &d->out_iov[out],
				    .msg_iovlen = 1,
				};
				out++;
			}
		}
		for (int sent = 0; sent < out;) {
			int k =
			    sendmmsg(fd, d->out_msgs + sent, (unsigned)(out - sent), MSG_DONTWAIT);
			/* one that cannot go (a full socket buffer, a vanished route) is
			 * skipped: its client retries */
			sent += k > 0 ? k : 1;
		}
		if (n < UDP_BATCH)
			return;
	}
}

/* ---- the API ------------------------------------------------------------------------ */

void hutch_dns_on_event(struct hutch_dns *d, int fd, uint32_t events)
{
	if (fd < 0 || (size_t)fd >= d->n_fds)
		return;
	struct fd_slot *s = &d->fds[fd];
	switch (s->kind) {
	case FD_UDP_LISTEN:
		udp_event(d, fd);
		break;
	case FD_TCP_LISTEN:
		tcp_accept(d, fd);
		break;
	case FD_TCP_CLIENT:
		tcp_client_event(d, s->obj, events);
		break;
	case FD_FORWARD:
		forward_event(d, s->obj, events);
		break;
	case FD_NONE:
		break;
	}
	reap_clients(d);
}

int64_t hutch_dns_next_timeout_ns(const struct hutch_dns *d)
{
	int64_t t = -1;
	if (d->fwd_head)
		t = d->fwd_head->deadline;
	if (d->tc_head && (t < 0 || d->tc_head->deadline < t))
		t = d->tc_head->deadline;
	return t;
}

void hutch_dns_on_timeout(struct hutch_dns *d, int64_t now)
{
	while (d->fwd_head && d->fwd_head->deadline <= now)
		forward_next(d, d->fwd_head);
	while (d->tc_head && d->tc_head->deadline <= now)
		tcp_client_close(d, d->tc_head);
	reap_clients(d);
}

void hutch_dns_set_records(struct hutch_dns *d, struct hutch_dns_records *records)
{
	hutch_dns_records_free(d->records);
	d->records = records;
}

int hutch_dns_port(const struct hutch_dns *d, size_t i)
{
	return i < d->n_listeners ? d->listeners[i].port : -1;
}

size_t hutch_dns_upstream_count(const struct hutch_dns *d)
{
	return d->n_upstreams;
}

const char *hutch_dns_upstream(const struct hutch_dns *d, size_t i)
{
	return i < d->n_upstreams ? d->upstream_text[i] : NULL;
}

void hutch_dns_get_stats(const struct hutch_dns *d, struct hutch_dns_stats *stats)
{
	*stats = d->stats;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int add_upstream(struct hutch_dns *d, const char *s, bool loopback_ok, bool strict,
			struct hutch_err **err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (dns_parse_addr(s, 53, &ss, &len) < 0) {
		if (!strict)
			return 0; /* resolv.conf: a scoped IPv6 address, say; not usable here */
		_cleanup_free_ char *shown = printable(s, strlen(s));
		return hutch_fail(err, EINVAL,
				  "DNS upstream \"%s\" is not IP, IP:PORT or [IPv6]:PORT", shown);
	}
	if (d->n_upstreams >= MAX_UPSTREAMS || (!loopback_ok && is_loopback(&ss)))
		return 0;
	d->upstreams[d->n_upstreams] = ss;
	d->upstream_len[d->n_upstreams] = len;
	format_addr((struct sockaddr *)&ss, d->upstream_text[d->n_upstreams],
		    sizeof(d->upstream_text[0]));
	d->n_upstreams++;
	return 0;
}

static int read_resolv_conf(struct hutch_dns *d, const char *path, bool loopback_ok,
			    struct hutch_err **err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0; /* no resolvers: every other name is SERVFAIL */
		return hutch_fail_sys(err, "DNS: cannot read %s", path);
	}
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		char word[32], addr[128];
		if (sscanf(line, " %31s %127s", word, addr) == 2 && !strcmp(word, "nameserver"))
			add_upstream(d, addr, loopback_ok, false, NULL);
	}
	return 0;
}

/* Sockets bound elsewhere (hutch_dns_config.listen_fds): watched as they are. */
static void listen_given(struct hutch_dns *d, struct listener *l, int udp_fd, int tcp_fd)
{
	struct sockaddr_storage ss;
	socklen_t got = sizeof(ss);
	l->udp_fd = udp_fd;
	l->tcp_fd = tcp_fd;
	if (getsockname(udp_fd, (struct sockaddr *)&ss, &got) == 0)
		l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							: ((struct sockaddr_in6 *)&ss)->sin6_port);
	fcntl(udp_fd, F_SETFL, fcntl(udp_fd, F_GETFL) | O_NONBLOCK);
	fcntl(tcp_fd, F_SETFL, fcntl(tcp_fd, F_GETFL) | O_NONBLOCK);
	set_fd(d, l->udp_fd, FD_UDP_LISTEN, l);
	set_fd(d, l->tcp_fd, FD_TCP_LISTEN, l);
	watch(d, l->udp_fd, EPOLLIN);
	watch(d, l->tcp_fd, EPOLLIN);
}

static int listen_on(struct hutch_dns *d, struct listener *l, const char *spec, bool freebind,
		     struct hutch_err **err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	_cleanup_free_ char *shown = printable(spec, strlen(spec));
	if (dns_parse_addr(spec, 53, &ss, &len) < 0)
		return hutch_fail(err, EINVAL,
				  "DNS listen address \"%s\" is not IP:PORT or [IPv6]:PORT", shown);
	int one = 1;
	l->udp_fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->udp_fd < 0)
		return hutch_fail_sys(err, "DNS: cannot make a UDP socket for %s", shown);
	if (ss.ss_family == AF_INET6)
		setsockopt(l->udp_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (freebind)
		setsockopt(l->udp_fd, ss.ss_family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
			   ss.ss_family == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, &one,
			   sizeof(one));
	if (bind(l->udp_fd, (struct sockaddr *)&ss, len) < 0)
		return hutch_fail_sys(err, "DNS: cannot listen on %s (UDP)", shown);
	/* the TCP socket on the same port, the one UDP got when 0 was asked */
	socklen_t got = sizeof(ss);
	getsockname(l->udp_fd, (struct sockaddr *)&ss, &got);
	l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	l->tcp_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->tcp_fd < 0)
		return hutch_fail_sys(err, "DNS: cannot make a TCP socket for %s", shown);
	setsockopt(l->tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(l->tcp_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (freebind)
		setsockopt(l->tcp_fd, ss.ss_family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
			   ss.ss_family == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, &one,
			   sizeof(one));
	if (bind(l->tcp_fd, (struct sockaddr *)&ss, got) < 0 || listen(l->tcp_fd, 128) < 0)
		return hutch_fail_sys(err, "DNS: cannot listen on %s (TCP port %d)", shown,
				      l->port);
	set_fd(d, l->udp_fd, FD_UDP_LISTEN, l);
	set_fd(d, l->tcp_fd, FD_TCP_LISTEN, l);
	watch(d, l->udp_fd, EPOLLIN);
	watch(d, l->tcp_fd, EPOLLIN);
	return 0;
}

struct hutch_dns *hutch_dns_new(const struct hutch_dns_config *cfg,
				struct hutch_dns_records *records, struct hutch_err **err)
{
	struct hutch_dns *d = xcalloc(1, sizeof(*d));
	d->records = records;
	d->watch = cfg->watch;
	d->watch_ctx = cfg->watch_ctx;
	d->max_forwards = cfg->max_forwards ? cfg->max_forwards : 512;
	d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	d->max_tcp_clients = cfg->max_tcp_clients ? cfg->max_tcp_clients : 128;
	if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng))
		d->rng = (uint64_t)hutch_dns_now_ns() ^ (uint64_t)getpid() << 32;
	d->rng |= 1;
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (add_upstream(d, cfg->upstreams[i], true, true, err) < 0)
			goto fail;
	if (!cfg->n_upstreams &&
	    read_resolv_conf(d, cfg->resolv_conf ? cfg->resolv_conf : "/etc/resolv.conf",
			     cfg->upstream_loopback_ok, err) < 0)
		goto fail;
	int64_t budget = cfg->upstream_budget_ns > 0 ? cfg->upstream_budget_ns : DEFAULT_BUDGET_NS;
	d->per_upstream_ns = budget / (int64_t)(d->n_upstreams ? d->n_upstreams : 1);
	d->listeners = xcalloc(cfg->n_listen ? cfg->n_listen : 1, sizeof(*d->listeners));
	for (size_t i = 0; i < cfg->n_listen; i++) {
		d->listeners[i].udp_fd = d->listeners[i].tcp_fd = -1;
		d->n_listeners++;
		if (cfg->listen_fds)
			listen_given(d, &d->listeners[i], cfg->listen_fds[2 * i],
				     cfg->listen_fds[2 * i + 1]);
		else if (listen_on(d, &d->listeners[i], cfg->listen[i], cfg->freebind, err) < 0)
			goto fail;
	}
	return d;
fail:
	/* the given sockets not yet ours are closed too */
	for (size_t i = d->n_listeners; cfg->listen_fds && i < cfg->n_listen; i++) {
		close(cfg->listen_fds[2 * i]);
		close(cfg->listen_fds[2 * i + 1]);
	}
	hutch_dns_free(d);
	return NULL;
}

void hutch_dns_free(struct hutch_dns *d)
{
	if (!d)
		return;
	while (d->fwd_head)
		forward_free(d, d->fwd_head);
	while (d->tc_head)
		tcp_client_close(d, d->tc_head);
	reap_clients(d);
	if (d->reserve_fd >= 0)
		close(d->reserve_fd);
	for (size_t i = 0; i < d->n_listeners; i++) {
		struct listener *l = &d->listeners[i];
		if (l->udp_fd >= 0 && (size_t)l->udp_fd < d->n_fds && d->fds[l->udp_fd].kind)
			drop_fd(d, l->udp_fd);
		else if (l->udp_fd >= 0)
			close(l->udp_fd);
		if (l->tcp_fd >= 0 && (size_t)l->tcp_fd < d->n_fds && d->fds[l->tcp_fd].kind)
			drop_fd(d, l->tcp_fd);
		else if (l->tcp_fd >= 0)
			close(l->tcp_fd);
	}
	free(d->listeners);
	free(d->fds);
	hutch_dns_records_free(d->records);
	free(d);
}
