/* DNS packets as any client or upstream could send them, through the message reader
 * (names at every offset, compression, OPT records), the server's handling of a query
 * (UDP and TCP, from a client of a network and from a stranger) and the check an
 * upstream's answer goes through. Whatever the server answers must be a well-formed
 * message with the query's id, within the size the client can take. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns_internal.h"

static const char records_json[] =
    "{\"networks\": [{\"name\": \"front\", \"subnets\": [\"10.89.1.0/24\", \"fd00::/64\"],"
    " \"domains\": [\"shop\", \"dns.hutch\"], \"hosts\": ["
    "  {\"names\": [\"shop-web-1\", \"web\", \"web.shop\"], \"addresses\": [\"10.89.1.2\"]},"
    "  {\"names\": [\"shop-web-2\", \"web\", \"web.shop\"], \"addresses\": [\"10.89.1.3\", "
    "\"fd00::3\"]},"
    "  {\"names\": [\"a\"], \"addresses\": [\"10.89.1.10\", \"10.89.1.11\", \"10.89.1.12\", "
    "\"10.89.1.13\", \"10.89.1.14\", \"10.89.1.15\", \"10.89.1.16\", \"10.89.1.17\", "
    "\"10.89.1.18\", \"10.89.1.19\", \"10.89.1.20\", \"10.89.1.21\", \"10.89.1.22\", "
    "\"10.89.1.23\", \"10.89.1.24\", \"10.89.1.25\", \"10.89.1.26\", \"10.89.1.27\", "
    "\"10.89.1.28\", \"10.89.1.29\", \"10.89.1.30\", \"10.89.1.31\", \"10.89.1.32\", "
    "\"10.89.1.33\", \"10.89.1.34\", \"10.89.1.35\", \"10.89.1.36\", \"10.89.1.37\", "
    "\"10.89.1.38\", \"10.89.1.39\", \"10.89.1.40\", \"10.89.1.41\", \"10.89.1.42\"]}"
    "]}]}";

static struct hutch_dns_records *records(void)
{
	static struct hutch_dns_records *r;
	if (!r &&
	    hutch_dns_records_from_json(records_json, strlen(records_json), "fuzz", &r, NULL) < 0)
		abort();
	return r;
}

static void check_name(const struct dns_name *n)
{
	if (n->wire_len > DNS_MAX_NAME || n->text_len > DNS_MAX_NAME || n->text[n->text_len])
		abort();
	/* an odd name may hold a NUL; any other is plain lowercase text */
	if (!n->odd && strlen(n->text) != n->text_len)
		abort();
	if (!n->odd)
		for (size_t i = 0; i < n->text_len; i++)
			if (n->text[i] >= 'A' && n->text[i] <= 'Z')
				abort();
}

static void serve(const uint8_t *q, size_t len, const char *client, bool tcp)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (dns_parse_addr(client, 5353, &ss, &sl) < 0)
		abort();
	static uint8_t out[2 + DNS_MAX_MSG];
	size_t alen = 0;
	struct dns_msg m;
	size_t cap = tcp ? DNS_MAX_MSG : DNS_LOCAL_UDP_MAX;
	enum dns_verdict v =
	    dns_answer_local(records(), (struct sockaddr *)&ss, q, len, tcp, out, cap, &alen, &m);
	if (v == DNS_DROP || v == DNS_FORWARD) {
		if (alen)
			abort();
		if (v == DNS_FORWARD)
			check_name(&m.qname);
		return;
	}
	if (alen < DNS_HEADER_LEN || alen > cap || dns_get16(out) != dns_get16(q))
		abort();
	if (!tcp && alen > (m.has_opt ? DNS_LOCAL_UDP_MAX : DNS_MAX_UDP_PLAIN))
		abort();
	struct dns_msg a;
	enum dns_parse_result r = dns_parse(out, alen, true, &a);
	/* FORMERR and errors to unparsable queries carry no question */
	if (a.qdcount == 0 && DNS_RCODE(a.flags) != DNS_RCODE_NOERROR)
		return;
	if (r != DNS_PARSE_OK || !(a.flags & DNS_FLAG_QR))
		abort();
	/* and a truncated answer holds nothing but the question (and an OPT) */
	if ((a.flags & DNS_FLAG_TC) && (a.ancount || a.nscount))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so ASan sees any read past the end */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	struct dns_msg m;
	if (dns_parse(p, size, true, &m) == DNS_PARSE_OK)
		check_name(&m.qname);
	for (size_t off = 0; off < size && off < 96; off++) {
		struct dns_name n;
		size_t o = off;
		if (dns_read_name(p, size, &o, &n) == 0) {
			check_name(&n);
			if (o <= off || o > size)
				abort();
		}
	}
	serve(p, size, "10.89.1.7", false);
	serve(p, size, "10.89.1.7", true);
	serve(p, size, "[fd00::9]:53", false);
	serve(p, size, "192.0.2.1", false);
	/* as an upstream's answer to a question of ours */
	static const uint8_t asked[] = {0x12, 0x34, 1,	 0,   0,   1,	0,   0,	  0,   0,
					0,    0,    7,	 'e', 'x', 'a', 'm', 'p', 'l', 'e',
					3,    'c',  'o', 'm', 0,   0,	1,   0,	  1};
	struct dns_msg q;
	if (dns_parse(asked, sizeof(asked), true, &q) != DNS_PARSE_OK)
		abort();
	if (dns_answer_matches(p, size, 0x1234, &q) &&
	    (size < sizeof(asked) || !(p[2] & 0x80) || dns_get16(p) != 0x1234))
		abort();
	free(p);
	return 0;
}
