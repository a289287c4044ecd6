/* The DNS server's logic: names looked up by the client's network (case-insensitive,
 * trailing dot, replicas rotating, PTR, NXDOMAIN and NODATA, REFUSED for strangers),
 * records files, and forwarding through a real server on loopback: ids remapped,
 * spoofed and mismatched answers ignored, the next upstream on SERVFAIL and timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/err.h"
#include "net/dns_internal.h"

static const char records_json[] =
    "{\"networks\": ["
    " {\"name\": \"front\", \"subnets\": [\"10.89.1.0/24\"], \"domains\": [\"shop\"],"
    "  \"hosts\": ["
    "   {\"names\": [\"shop-web-1\", \"web\", \"web.shop\", \"www\"], \"addresses\": "
    "[\"10.89.1.2\"]},"
    "   {\"names\": [\"shop-web-2\", \"web\", \"web.shop\"], \"addresses\": [\"10.89.1.3\"]},"
    "   {\"names\": [\"shop-web-3\", \"Web.Shop.\"], \"addresses\": [\"10.89.1.5\"]},"
    "   {\"names\": [\"shop-db-1\", \"db\", \"db.shop\"], \"addresses\": [\"10.89.1.4\", "
    "\"fd00::4\"]}"
    "  ]},"
    " {\"name\": \"back\", \"subnets\": [\"10.89.2.0/24\"], \"domains\": [\"shop\"],"
    "  \"hosts\": [{\"names\": [\"vault\", \"vault.shop\"], \"addresses\": [\"10.89.2.9\"]}]}"
    "]}";

static struct hutch_dns_records *load(void)
{
	struct hutch_dns_records *r = NULL;
	struct hutch_err *err = NULL;
	int rc =
	    hutch_dns_records_from_json(records_json, strlen(records_json), "test.json", &r, &err);
	if (rc < 0)
		fail_msg("%s", err->msg);
	return r;
}

static struct sockaddr_storage client_at(const char *ip)
{
	struct sockaddr_storage ss;
	socklen_t len;
	assert_int_equal(dns_parse_addr(ip, 40000, &ss, &len), 0);
	return ss;
}

static size_t make_query(uint8_t *buf, uint16_t id, const char *name, uint16_t type)
{
	memset(buf, 0, 12);
	dns_put16(buf, id);
	dns_put16(buf + 2, DNS_FLAG_RD);
	dns_put16(buf + 4, 1);
	/* the name as given, case and trailing dot included */
	int n = dns_encode_name(name, buf + 12, 256);
	assert_true(n > 0);
	size_t len = 12 + (size_t)n;
	dns_put16(buf + len, type);
	dns_put16(buf + len + 2, DNS_CLASS_IN);
	return len + 4;
}

struct answer {
	uint16_t flags, an, ns;
	char addrs[16][64]; /* A/AAAA as text, PTR's name, "SOA zone" */
	size_t n;
	char authority[128];
};

static void read_answer(const uint8_t *pkt, size_t len, struct answer *a)
{
	struct dns_msg m;
	memset(a, 0, sizeof(*a));
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_OK);
	a->flags = m.flags;
	a->an = m.ancount;
	a->ns = m.nscount;
	size_t off = m.question_end;
	for (unsigned i = 0; i < (unsigned)m.ancount + m.nscount; i++) {
		struct dns_name owner, target;
		assert_int_equal(dns_read_name(pkt, len, &off, &owner), 0);
		uint16_t type = dns_get16(pkt + off);
		uint16_t rdlen = dns_get16(pkt + off + 8);
		assert_int_equal(dns_get16(pkt + off + 4), 0); /* TTL 0 */
		assert_int_equal(dns_get16(pkt + off + 6), 0);
		off += 10;
		char *out = i < m.ancount ? a->addrs[a->n++] : a->authority;
		if (type == DNS_TYPE_A)
			inet_ntop(AF_INET, pkt + off, out, 64);
		else if (type == DNS_TYPE_AAAA)
			inet_ntop(AF_INET6, pkt + off, out, 64);
		else if (type == DNS_TYPE_PTR) {
			size_t t = off;
			assert_int_equal(dns_read_name(pkt, len, &t, &target), 0);
			snprintf(out, 64, "PTR %.58s", target.text);
		} else if (type == DNS_TYPE_SOA)
			snprintf(out, 64, "SOA %.58s", owner.text);
		off += rdlen;
	}
}

static enum dns_verdict ask(struct hutch_dns_records *r, const char *client, const char *name,
			    uint16_t type, struct answer *a)
{
	uint8_t q[512], out[1500];
	struct sockaddr_storage c = client_at(client);
	size_t qlen = make_query(q, 77, name, type), alen;
	struct dns_msg m;
	enum dns_verdict v =
	    dns_answer_local(r, (struct sockaddr *)&c, q, qlen, false, out, sizeof(out), &alen, &m);
	if (v == DNS_ANSWER) {
		read_answer(out, alen, a);
		assert_int_equal(dns_get16(out), 77);
	}
	return v;
}

static void test_names_case_and_dot(void **state)
{
	struct hutch_dns_records *r = load();
	struct answer a;
	const char *forms[] = {"db", "DB", "db.shop", "Db.ShOp.", "shop-db-1"};
	for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
		assert_int_equal(ask(r, "10.89.1.7", forms[i], DNS_TYPE_A, &a), DNS_ANSWER);
		assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NOERROR);
		assert_true(a.flags & DNS_FLAG_AA);
		assert_int_equal(a.n, 1);
		assert_string_equal(a.addrs[0], "10.89.1.4");
	}
	assert_int_equal(ask(r, "10.89.1.7", "db", DNS_TYPE_AAAA, &a), DNS_ANSWER);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.addrs[0], "fd00::4");
	assert_int_equal(ask(r, "10.89.1.7", "db", DNS_TYPE_ANY, &a), DNS_ANSWER);
	assert_int_equal(a.n, 2);
	hutch_dns_records_free(r);
}

static void test_replicas_rotate(void **state)
{
	struct hutch_dns_records *r = load();
	struct answer a;
	char firsts[3][64];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ask(r, "10.89.1.7", "web.shop", DNS_TYPE_A, &a), DNS_ANSWER);
		/* "Web.Shop." given by the third host is the same name */
		assert_int_equal(a.n, 3);
		strcpy(firsts[i], a.addrs[0]);
		/* every replica in every answer */
		int seen = 0;
		for (size_t k = 0; k < a.n; k++)
			seen |= !strcmp(a.addrs[k], "10.89.1.2") << 0 |
				!strcmp(a.addrs[k], "10.89.1.3") << 1 |
				!strcmp(a.addrs[k], "10.89.1.5") << 2;
		assert_int_equal(seen, 7);
	}
	assert_string_not_equal(firsts[0], firsts[1]);
	assert_string_not_equal(firsts[1], firsts[2]);
	assert_string_not_equal(firsts[0], firsts[2]);
	hutch_dns_records_free(r);
}

static void test_ptr(void **state)
{
	struct hutch_dns_records *r = load();
	struct answer a;
	assert_int_equal(ask(r, "10.89.1.7", "4.1.89.10.in-addr.arpa", DNS_TYPE_PTR, &a),
			 DNS_ANSWER);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.addrs[0], "PTR shop-db-1");
	assert_int_equal(
	    ask(r, "10.89.1.7",
		"4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
		DNS_TYPE_PTR, &a),
	    DNS_ANSWER);
	assert_string_equal(a.addrs[0], "PTR shop-db-1");
	/* an unknown address in the network's subnet: NXDOMAIN, not forwarded */
	assert_int_equal(ask(r, "10.89.1.7", "99.1.89.10.in-addr.arpa", DNS_TYPE_PTR, &a),
			 DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NXDOMAIN);
	assert_string_equal(a.authority, "SOA 1.89.10.in-addr.arpa");
	/* another address: the host's resolvers' business */
	assert_int_equal(ask(r, "10.89.1.7", "8.8.8.8.in-addr.arpa", DNS_TYPE_PTR, &a),
			 DNS_FORWARD);
	hutch_dns_records_free(r);
}

static void test_nxdomain_nodata(void **state)
{
	struct hutch_dns_records *r = load();
	struct answer a;
	assert_int_equal(ask(r, "10.89.1.7", "nope.shop", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NXDOMAIN);
	assert_true(a.flags & DNS_FLAG_AA);
	assert_int_equal(a.n, 0);
	assert_string_equal(a.authority, "SOA shop");
	assert_int_equal(ask(r, "10.89.1.7", "a.b.c.shop.", DNS_TYPE_AAAA, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NXDOMAIN);
	/* AAAA of a name with only A: NOERROR and no answer, never NXDOMAIN */
	assert_int_equal(ask(r, "10.89.1.7", "web.shop", DNS_TYPE_AAAA, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NOERROR);
	assert_int_equal(a.n, 0);
	assert_string_equal(a.authority, "SOA shop");
	/* the zone's apex: its SOA */
	assert_int_equal(ask(r, "10.89.1.7", "shop", DNS_TYPE_SOA, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NOERROR);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.addrs[0], "SOA shop");
	/* a name that only ends like the zone is not in it */
	assert_int_equal(ask(r, "10.89.1.7", "workshop", DNS_TYPE_A, &a), DNS_FORWARD);
	assert_int_equal(ask(r, "10.89.1.7", "example.com", DNS_TYPE_A, &a), DNS_FORWARD);
	hutch_dns_records_free(r);
}

static void test_networks_apart(void **state)
{
	struct hutch_dns_records *r = load();
	struct answer a;
	/* vault is on back only: front's clients get NXDOMAIN (shop is theirs too) */
	assert_int_equal(ask(r, "10.89.1.7", "vault.shop", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NXDOMAIN);
	assert_int_equal(ask(r, "10.89.2.7", "vault.shop", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_string_equal(a.addrs[0], "10.89.2.9");
	assert_int_equal(ask(r, "10.89.2.7", "db.shop", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_NXDOMAIN);
	/* a client of no network: refused, for local and other names */
	assert_int_equal(ask(r, "192.168.9.9", "db.shop", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_REFUSED);
	assert_int_equal(ask(r, "192.168.9.9", "example.com", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_int_equal(DNS_RCODE(a.flags), DNS_RCODE_REFUSED);
	/* an IPv4-mapped IPv6 source is its IPv4 address */
	assert_int_equal(ask(r, "[::ffff:10.89.1.7]:53", "db", DNS_TYPE_A, &a), DNS_ANSWER);
	assert_string_equal(a.addrs[0], "10.89.1.4");
	hutch_dns_records_free(r);
}

static void test_bad_queries(void **state)
{
	struct hutch_dns_records *r = load();
	uint8_t q[512], out[1500];
	struct sockaddr_storage c = client_at("10.89.1.7");
	struct dns_msg m;
	size_t alen, qlen = make_query(q, 5, "db", DNS_TYPE_A);
	/* an answer sent to the server: ignored (no reflection loops) */
	dns_put16(q + 2, DNS_FLAG_QR);
	assert_int_equal(
	    dns_answer_local(r, (struct sockaddr *)&c, q, qlen, false, out, sizeof(out), &alen, &m),
	    DNS_DROP);
	/* shorter than a header: ignored */
	assert_int_equal(
	    dns_answer_local(r, (struct sockaddr *)&c, q, 5, false, out, sizeof(out), &alen, &m),
	    DNS_DROP);
	/* a cut question: FORMERR with no question */
	dns_put16(q + 2, 0);
	assert_int_equal(dns_answer_local(r, (struct sockaddr *)&c, q, qlen - 3, false, out,
					  sizeof(out), &alen, &m),
			 DNS_ANSWER);
	assert_int_equal(DNS_RCODE(dns_get16(out + 2)), DNS_RCODE_FORMERR);
	assert_int_equal(dns_get16(out + 4), 0);
	/* an UPDATE: NOTIMP */
	dns_put16(q + 2, 5 << 11);
	assert_int_equal(
	    dns_answer_local(r, (struct sockaddr *)&c, q, qlen, false, out, sizeof(out), &alen, &m),
	    DNS_ANSWER);
	assert_int_equal(DNS_RCODE(dns_get16(out + 2)), DNS_RCODE_NOTIMP);
	hutch_dns_records_free(r);
}

static void test_records_errors(void **state)
{
	struct hutch_dns_records *r = NULL;
	struct hutch_err *err = NULL;
	const char *bad[] = {
	    "{}",
	    "{\"networks\": [{\"subnets\": [\"10.89.1.0/33\"]}]}",
	    "{\"networks\": [{\"hosts\": [{\"names\": [\"a b\"], \"addresses\": "
	    "[\"10.0.0.1\"]}]}]}",
	    "{\"networks\": [{\"hosts\": [{\"names\": [\"a\"], \"addresses\": "
	    "[\"10.0.0.256\"]}]}]}",
	    "{\"networks\": [{\"hosts\": [{\"names\": [], \"addresses\": []}]}]}",
	    "{\"networks\": [{\"domains\": [\"..\"]}]}",
	    "[1,",
	};
	const char *says[] = {"expected {\"networks\"", "bad prefix length", "a character",
			      "not an IPv4 or IPv6",	"no name",	     "empty label",
			      "not valid JSON"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(
		    hutch_dns_records_from_json(bad[i], strlen(bad[i]), "r.json", &r, &err), -1);
		assert_null(r);
		if (!strstr(err->msg, says[i]))
			fail_msg("%s: %s", bad[i], err->msg);
		hutch_err_free(&err);
	}
}

/* ---- forwarding through a real server on loopback ----------------------------------- */

static int ep;

static void test_watch(void *ctx, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (!events)
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	else if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void pump(struct hutch_dns *d, int ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(ep, evs, 16, ms);
	for (int i = 0; i < n; i++)
		hutch_dns_on_event(d, evs[i].data.fd, evs[i].events);
	hutch_dns_on_timeout(d, hutch_dns_now_ns());
}

static int udp_bound(struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr->sin_port = 0;
	assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	socklen_t l = sizeof(*addr);
	getsockname(fd, (struct sockaddr *)addr, &l);
	struct timeval tv = {0, 10000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Waits (pumping the server) for a datagram on fd. */
static ssize_t recv_pumping(struct hutch_dns *d, int fd, uint8_t *buf, size_t cap,
			    struct sockaddr_in *from, int max_ms)
{
	for (int i = 0; i < max_ms / 10; i++) {
		pump(d, 0);
		socklen_t fl = sizeof(*from);
		ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)from, &fl);
		if (n >= 0)
			return n;
	}
	return -1;
}

static void test_forward_ids_remapped(void **state)
{
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct sockaddr_in up1, up2, cl;
	int u1 = udp_bound(&up1), u2 = udp_bound(&up2), c = udp_bound(&cl);
	char u1s[64], u2s[64];
	snprintf(u1s, sizeof(u1s), "127.0.0.1:%u", ntohs(up1.sin_port));
	snprintf(u2s, sizeof(u2s), "127.0.0.1:%u", ntohs(up2.sin_port));
	const char *ups[] = {u1s, u2s}, *listen[] = {"127.0.0.1:0"};
	struct hutch_dns_records *r = hutch_dns_records_new();
	int net = hutch_dns_records_add_network(r, "lo", NULL);
	assert_int_equal(hutch_dns_records_add_subnet(r, net, "127.0.0.0/8", NULL), 0);
	struct hutch_dns_config cfg = {.listen = listen,
				       .n_listen = 1,
				       .upstreams = ups,
				       .n_upstreams = 2,
				       .upstream_budget_ns = 400000000LL,
				       .watch = test_watch};
	struct hutch_err *err = NULL;
	struct hutch_dns *d = hutch_dns_new(&cfg, r, &err);
	if (!d)
		fail_msg("%s", err->msg);
	struct sockaddr_in srv = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)hutch_dns_port(d, 0))};
	uint8_t q[512], buf[1500];
	size_t qlen = make_query(q, 0x4242, "Example.COM", DNS_TYPE_A);
	struct sockaddr_in from;

	/* 1: the upstream gets the query with another id */
	sendto(c, q, qlen, 0, (struct sockaddr *)&srv, sizeof(srv));
	ssize_t n = recv_pumping(d, u1, buf, sizeof(buf), &from, 500);
	assert_int_equal(n, (ssize_t)qlen);
	uint16_t up_id = dns_get16(buf);
	assert_int_not_equal(up_id, 0x4242);
	assert_memory_equal(buf + 2, q + 2, qlen - 2);
	/* a spoofed answer (wrong id), then one for another question: ignored */
	uint8_t ans[512];
	memcpy(ans, buf, (size_t)n);
	dns_put16(ans + 2, DNS_FLAG_QR | DNS_FLAG_RA);
	dns_put16(ans, (uint16_t)(up_id + 1));
	sendto(u1, ans, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from));
	size_t other = make_query(ans, up_id, "example.org", DNS_TYPE_A);
	dns_put16(ans + 2, DNS_FLAG_QR);
	sendto(u1, ans, other, 0, (struct sockaddr *)&from, sizeof(from));
	assert_true(recv_pumping(d, c, buf + 600, 600, &cl, 100) < 0);
	/* the real one, its name in another case (0x20): relayed with the client's id */
	memcpy(ans, q, qlen);
	ans[13] = 'E';
	dns_put16(ans, up_id);
	dns_put16(ans + 2, DNS_FLAG_QR | DNS_FLAG_RA | DNS_FLAG_RD);
	sendto(u1, ans, qlen, 0, (struct sockaddr *)&from, sizeof(from));
	n = recv_pumping(d, c, buf, sizeof(buf), &from, 500);
	assert_int_equal(n, (ssize_t)qlen);
	assert_int_equal(dns_get16(buf), 0x4242);
	assert_int_equal(from.sin_port, srv.sin_port);

	/* 2: SERVFAIL from the first upstream: the second is asked */
	sendto(c, q, qlen, 0, (struct sockaddr *)&srv, sizeof(srv));
	n = recv_pumping(d, u1, buf, sizeof(buf), &from, 500);
	assert_true(n > 0);
	dns_put16(buf + 2, DNS_FLAG_QR | DNS_RCODE_SERVFAIL);
	sendto(u1, buf, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from));
	n = recv_pumping(d, u2, buf, sizeof(buf), &from, 500);
	assert_int_equal(n, (ssize_t)qlen);
	dns_put16(buf + 2, DNS_FLAG_QR | DNS_RCODE_NXDOMAIN);
	sendto(u2, buf, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from));
	n = recv_pumping(d, c, buf, sizeof(buf), &from, 500);
	assert_true(n > 0);
	assert_int_equal(dns_get16(buf), 0x4242);
	assert_int_equal(DNS_RCODE(dns_get16(buf + 2)), DNS_RCODE_NXDOMAIN);

	/* 2b: FORMERR without the question (an upstream that chokes on the query): the
	 * next one at once, not after the first one's time */
	sendto(c, q, qlen, 0, (struct sockaddr *)&srv, sizeof(srv));
	n = recv_pumping(d, u1, buf, sizeof(buf), &from, 500);
	assert_true(n > 0);
	dns_put16(buf + 2, DNS_FLAG_QR | DNS_RCODE_FORMERR);
	dns_put16(buf + 4, 0);
	sendto(u1, buf, DNS_HEADER_LEN, 0, (struct sockaddr *)&from, sizeof(from));
	int64_t t1 = hutch_dns_now_ns();
	n = recv_pumping(d, u2, buf, sizeof(buf), &from, 500);
	assert_int_equal(n, (ssize_t)qlen);
	assert_true(hutch_dns_now_ns() - t1 < 150000000LL);
	dns_put16(buf + 2, DNS_FLAG_QR | DNS_FLAG_RA);
	sendto(u2, buf, (size_t)n, 0, (struct sockaddr *)&from, sizeof(from));
	n = recv_pumping(d, c, buf, sizeof(buf), &from, 500);
	assert_int_equal(n, (ssize_t)qlen);
	assert_int_equal(dns_get16(buf), 0x4242);
	assert_int_equal(DNS_RCODE(dns_get16(buf + 2)), DNS_RCODE_NOERROR);

	/* 3: both silent: SERVFAIL within the budget (400 ms, 200 each) */
	int64_t t0 = hutch_dns_now_ns();
	sendto(c, q, qlen, 0, (struct sockaddr *)&srv, sizeof(srv));
	n = recv_pumping(d, c, buf, sizeof(buf), &from, 1500);
	int64_t took = hutch_dns_now_ns() - t0;
	assert_true(n > 0);
	assert_int_equal(DNS_RCODE(dns_get16(buf + 2)), DNS_RCODE_SERVFAIL);
	assert_true(took >= 390000000LL);
	assert_true(took < 900000000LL);
	/* each upstream got it once */
	assert_true(recvfrom(u1, buf, sizeof(buf), 0, NULL, NULL) > 0);
	assert_true(recvfrom(u2, buf, sizeof(buf), 0, NULL, NULL) > 0);

	struct hutch_dns_stats st;
	hutch_dns_get_stats(d, &st);
	assert_int_equal(st.forwarded, 4);
	assert_int_equal(hutch_dns_next_timeout_ns(d), -1); /* nothing left in flight */
	hutch_dns_free(d);
	close(u1);
	close(u2);
	close(c);
	close(ep);
}

static void test_forward_bound(void **state)
{
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct sockaddr_in up, cl;
	int u = udp_bound(&up), c = udp_bound(&cl);
	char us[64];
	snprintf(us, sizeof(us), "127.0.0.1:%u", ntohs(up.sin_port));
	const char *ups[] = {us}, *listen[] = {"127.0.0.1:0"};
	struct hutch_dns_records *r = hutch_dns_records_new();
	int net = hutch_dns_records_add_network(r, "lo", NULL);
	assert_int_equal(hutch_dns_records_add_subnet(r, net, "127.0.0.0/8", NULL), 0);
	struct hutch_dns_config cfg = {.listen = listen,
				       .n_listen = 1,
				       .upstreams = ups,
				       .n_upstreams = 1,
				       .max_forwards = 1,
				       .watch = test_watch};
	struct hutch_dns *d = hutch_dns_new(&cfg, r, NULL);
	assert_non_null(d);
	struct sockaddr_in srv = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)hutch_dns_port(d, 0))};
	uint8_t q[512], buf[1500];
	struct sockaddr_in from;
	size_t qlen = make_query(q, 1, "one.example", DNS_TYPE_A);
	sendto(c, q, qlen, 0, (struct sockaddr *)&srv, sizeof(srv));
	assert_true(recv_pumping(d, u, buf, sizeof(buf), &from, 500) > 0);
	/* the upstream sits on the first: the second finds no room, SERVFAIL at once */
	qlen = make_query(q, 2, "two.example", DNS_TYPE_A);
	sendto(c, q, qlen, 0, (struct sockaddr *)&srv, sizeof(srv));
	ssize_t n = recv_pumping(d, c, buf, sizeof(buf), &from, 200);
	assert_true(n > 0);
	assert_int_equal(dns_get16(buf), 2);
	assert_int_equal(DNS_RCODE(dns_get16(buf + 2)), DNS_RCODE_SERVFAIL);
	assert_true(hutch_dns_next_timeout_ns(d) > 0); /* the first still waits */
	hutch_dns_free(d);
	close(u);
	close(c);
	close(ep);
}

static void test_upstreams_from_resolv_conf(void **state)
{
	char path[] = "/tmp/hutch-test-resolv-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "# the host's\n"
			    "search example.net\n"
			    "nameserver 127.0.0.53\n"
			    "nameserver 192.0.2.1\n"
			    "options ndots:2\n"
			    "nameserver ::1\n"
			    "nameserver fe80::1%eth0\n"
			    "  nameserver   2001:db8::53  \n"
			    "nameserver 192.0.2.2\n"
			    "nameserver 192.0.2.3\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	struct hutch_err *err = NULL;
	struct hutch_dns_config cfg = {.resolv_conf = path};
	struct hutch_dns *d = hutch_dns_new(&cfg, NULL, &err);
	assert_non_null(d);
	/* loopback ones left out, a scoped one unusable, at most 3 */
	assert_int_equal(hutch_dns_upstream_count(d), 3);
	assert_string_equal(hutch_dns_upstream(d, 0), "192.0.2.1:53");
	assert_string_equal(hutch_dns_upstream(d, 1), "[2001:db8::53]:53");
	assert_string_equal(hutch_dns_upstream(d, 2), "192.0.2.2:53");
	hutch_dns_free(d);
	cfg.upstream_loopback_ok = true;
	d = hutch_dns_new(&cfg, NULL, &err);
	assert_non_null(d);
	assert_string_equal(hutch_dns_upstream(d, 0), "127.0.0.53:53");
	assert_string_equal(hutch_dns_upstream(d, 1), "192.0.2.1:53");
	assert_string_equal(hutch_dns_upstream(d, 2), "[::1]:53");
	hutch_dns_free(d);
	unlink(path);
	/* the caller's list wins, and a bad one is named */
	const char *ups[] = {"192.0.2.9:5300", "not-an-ip"};
	struct hutch_dns_config cfg2 = {.upstreams = ups, .n_upstreams = 1, .resolv_conf = path};
	d = hutch_dns_new(&cfg2, NULL, &err);
	assert_non_null(d);
	assert_int_equal(hutch_dns_upstream_count(d), 1);
	assert_string_equal(hutch_dns_upstream(d, 0), "192.0.2.9:5300");
	hutch_dns_free(d);
	cfg2.n_upstreams = 2;
	assert_null(hutch_dns_new(&cfg2, NULL, &err));
	assert_non_null(strstr(err->msg, "\"not-an-ip\""));
	hutch_err_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_case_and_dot),
	    cmocka_unit_test(test_replicas_rotate),
	    cmocka_unit_test(test_ptr),
	    cmocka_unit_test(test_nxdomain_nodata),
	    cmocka_unit_test(test_networks_apart),
	    cmocka_unit_test(test_bad_queries),
	    cmocka_unit_test(test_records_errors),
	    cmocka_unit_test(test_forward_ids_remapped),
	    cmocka_unit_test(test_forward_bound),
	    cmocka_unit_test(test_upstreams_from_resolv_conf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
