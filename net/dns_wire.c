/* The DNS wire format: a reader that trusts nothing and a builder for the answers the
 * server gives. See dns_wire.h and docs/dns.md (why not ldns). */
#include "net/dns_wire.h"

#include <string.h>

int dns_read_name(const uint8_t *pkt, size_t len, size_t *off, struct dns_name *name)
{
	size_t pos = *off, end_in_place = 0;
	bool jumped = false;
	unsigned hops = 0;
	/* a pointer must aim before the label that holds it: strictly backwards, so no
	 * loop is possible and the hop bound is a second line of defence */
	size_t lowest = pos;
	name->wire_len = 0;
	name->text_len = 0;
	name->odd = false;
	for (;;) {
		if (pos >= len)
			return -1;
		uint8_t c = pkt[pos];
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= len)
				return -1;
			size_t target = (size_t)(c & 0x3f) << 8 | pkt[pos + 1];
			if (target >= lowest || ++hops > DNS_MAX_POINTER_HOP)
				return -1;
			if (!jumped)
				end_in_place = pos + 2;
			jumped = true;
			pos = lowest = target;
			continue;
		}
		if (c & 0xc0) /* 0x40 (extended, RFC 6891 deprecates it) and 0x80: reserved */
			return -1;
		if (name->wire_len + 1 + c > DNS_MAX_NAME)
			return -1;
		if (c == 0) {
			name->wire[name->wire_len++] = 0;
			pos++;
			break;
		}
		if (pos + 1 + c > len)
			return -1;
		const uint8_t *label = pkt + pos + 1;
		name->wire[name->wire_len++] = c;
		memcpy(name->wire + name->wire_len, label, c);
		name->wire_len += c;
		if (name->text_len)
			name->text[name->text_len++] = '.';
		for (size_t i = 0; i < c; i++) {
			uint8_t ch = label[i];
			if (ch >= 'A' && ch <= 'Z')
				ch = (uint8_t)(ch + 32);
			else if (ch == '.' || ch == '\\' || ch <= 0x20 || ch >= 0x7f)
				name->odd = true;
			name->text[name->text_len++] = (char)ch;
		}
		pos += 1 + c;
		if (pos > lowest && !jumped)
			lowest = pos;
	}
	name->text[name->text_len] = 0;
	*off = jumped ? end_in_place : pos;
	return 0;
}

/* Skips one resource record at *off; fills type, class, ttl and the rdata's span. */
static int skip_record(const uint8_t *pkt, size_t len, size_t *off, uint16_t *type, uint16_t *klass,
		       uint32_t *ttl, size_t *rdata, uint16_t *rdlen)
{
	struct dns_name owner;
	if (dns_read_name(pkt, len, off, &owner) < 0)
		return -1;
	if (*off + 10 > len)
		return -1;
	const uint8_t *p = pkt + *off;
	*type = dns_get16(p);
	*klass = dns_get16(p + 2);
	*ttl = (uint32_t)dns_get16(p + 4) << 16 | dns_get16(p + 6);
	*rdlen = dns_get16(p + 8);
	*off += 10;
	if (*off + *rdlen > len)
		return -1;
	*rdata = *off;
	*off += *rdlen;
	/* an OPT's owner must be the root */
	if (*type == DNS_TYPE_OPT && owner.wire_len != 1)
		return -1;
	return 0;
}

enum dns_parse_result dns_parse(const uint8_t *pkt, size_t len, bool with_records,
				struct dns_msg *msg)
{
	if (len < DNS_HEADER_LEN)
		return DNS_PARSE_SHORT;
	msg->id = dns_get16(pkt);
	msg->flags = dns_get16(pkt + 2);
	msg->qdcount = dns_get16(pkt + 4);
	msg->ancount = dns_get16(pkt + 6);
	msg->nscount = dns_get16(pkt + 8);
	msg->arcount = dns_get16(pkt + 10);
	msg->has_opt = false;
	msg->opt_udp_size = DNS_MAX_UDP_PLAIN;
	msg->opt_version = 0;
	msg->opt_flags = 0;
	msg->qname.wire_len = msg->qname.text_len = 0;
	msg->qname.text[0] = 0;
	msg->qname.odd = false;
	msg->qtype = msg->qclass = 0;
	msg->question_end = DNS_HEADER_LEN;
	if (msg->qdcount != 1)
		return DNS_PARSE_BAD;
	size_t off = DNS_HEADER_LEN;
	if (dns_read_name(pkt, len, &off, &msg->qname) < 0 || off + 4 > len)
		return DNS_PARSE_BAD;
	msg->qtype = dns_get16(pkt + off);
	msg->qclass = dns_get16(pkt + off + 2);
	off += 4;
	msg->question_end = off;
	if (!with_records)
		return DNS_PARSE_OK;
	unsigned total = (unsigned)msg->ancount + msg->nscount + msg->arcount;
	for (unsigned i = 0; i < total; i++) {
		uint16_t type, klass, rdlen;
		uint32_t ttl;
		size_t rdata;
		if (skip_record(pkt, len, &off, &type, &klass, &ttl, &rdata, &rdlen) < 0)
			return DNS_PARSE_BAD;
		if (type != DNS_TYPE_OPT)
			continue;
		/* only one OPT, and only in the additional section (RFC 6891 6.1.1) */
		if (msg->has_opt || i < (unsigned)msg->ancount + msg->nscount)
			return DNS_PARSE_BAD;
		msg->has_opt = true;
		msg->opt_udp_size = klass < DNS_MAX_UDP_PLAIN ? DNS_MAX_UDP_PLAIN : klass;
		msg->opt_version = (uint8_t)(ttl >> 16);
		msg->opt_flags = (uint16_t)ttl;
	}
	return DNS_PARSE_OK;
}

int dns_encode_name(const char *text, uint8_t *out, size_t cap)
{
	size_t n = 0;
	const char *p = text;
	if (*p == '.' && p[1] == 0)
		p++;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > DNS_MAX_LABEL || n + 1 + l + 1 > DNS_MAX_NAME || n + 1 + l >= cap)
			return -1;
		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	if (n + 1 > cap)
		return -1;
	out[n++] = 0;
	return (int)n;
}

void dns_build_start(struct dns_builder *b, uint8_t *buf, size_t cap, size_t limit,
		     const struct dns_msg *q, uint16_t flags)
{
	b->buf = buf;
	b->cap = cap;
	b->limit = limit < cap ? limit : cap;
	b->truncated = false;
	b->ancount = b->nscount = b->arcount = 0;
	flags |= q->flags & (DNS_FLAG_RD | DNS_FLAG_CD);
	flags |= q->flags & 0x7800; /* the opcode */
	dns_put16(buf, q->id);
	dns_put16(buf + 2, flags);
	memset(buf + 4, 0, 8);
	b->len = DNS_HEADER_LEN;
	/* the question as asked; its name in the query may have been compressed (a
	 * pointer into itself is impossible in the first name, so it never is in
	 * practice), so the wire form read is written out */
	if (q->qname.wire_len && b->len + q->qname.wire_len + 4 <= b->cap) {
		memcpy(buf + b->len, q->qname.wire, q->qname.wire_len);
		b->len += q->qname.wire_len;
		dns_put16(buf + b->len, q->qtype);
		dns_put16(buf + b->len + 2, q->qclass);
		b->len += 4;
		dns_put16(buf + 4, 1);
	}
	b->question_end = b->len;
}

/* Room for n more bytes within the limit (reserving 11 for an OPT record). Past
 * it, nothing partial: the question alone and TC, and the client retries over TCP. */
static bool room(struct dns_builder *b, size_t n)
{
	if (b->truncated)
		return false;
	if (b->len + n + 11 <= b->limit)
		return true;
	b->truncated = true;
	b->ancount = b->nscount = 0;
	b->len = b->question_end;
	dns_put16(b->buf + 2, dns_get16(b->buf + 2) | DNS_FLAG_TC);
	return false;
}

static void put_rr_head(struct dns_builder *b, const uint8_t *owner, size_t owner_len,
			uint16_t type, uint32_t ttl, uint16_t rdlen)
{
	uint8_t *p = b->buf + b->len;
	memcpy(p, owner, owner_len);
	p += owner_len;
	dns_put16(p, type);
	dns_put16(p + 2, DNS_CLASS_IN);
	dns_put16(p + 4, (uint16_t)(ttl >> 16));
	dns_put16(p + 6, (uint16_t)ttl);
	dns_put16(p + 8, rdlen);
	b->len += owner_len + 10;
}

static const uint8_t question_ptr[2] = {0xc0, DNS_HEADER_LEN};

int dns_build_answer(struct dns_builder *b, uint16_t type, uint32_t ttl, const void *rdata,
		     size_t rdlen)
{
	if (!room(b, 2 + 10 + rdlen))
		return -1;
	put_rr_head(b, question_ptr, 2, type, ttl, (uint16_t)rdlen);
	memcpy(b->buf + b->len, rdata, rdlen);
	b->len += rdlen;
	b->ancount++;
	return 0;
}

int dns_build_answer_ptr(struct dns_builder *b, uint32_t ttl, const char *target)
{
	uint8_t wire[DNS_MAX_NAME];
	int n = dns_encode_name(target, wire, sizeof(wire));
	if (n < 0)
		return -1;
	return dns_build_answer(b, DNS_TYPE_PTR, ttl, wire, (size_t)n);
}

int dns_build_soa(struct dns_builder *b, const char *zone, uint32_t minimum, bool in_answer)
{
	uint8_t owner[DNS_MAX_NAME], rdata[DNS_MAX_NAME * 2 + 20];
	int on = dns_encode_name(zone, owner, sizeof(owner));
	if (on < 0)
		return -1;
	/* MNAME: the zone itself (hutch is its only server); RNAME: hostmaster.ZONE, or
	 * "hostmaster." for the root */
	size_t r = 0;
	memcpy(rdata, owner, (size_t)on);
	r += (size_t)on;
	static const uint8_t hostmaster[] = {10, 'h', 'o', 's', 't', 'm', 'a', 's', 't', 'e', 'r'};
	if ((size_t)on + sizeof(hostmaster) > DNS_MAX_NAME)
		return -1;
	memcpy(rdata + r, hostmaster, sizeof(hostmaster));
	r += sizeof(hostmaster);
	memcpy(rdata + r, owner, (size_t)on);
	r += (size_t)on;
	const uint32_t fields[5] = {1, 3600, 600, 86400, minimum};
	for (int i = 0; i < 5; i++) {
		dns_put16(rdata + r, (uint16_t)(fields[i] >> 16));
		dns_put16(rdata + r + 2, (uint16_t)fields[i]);
		r += 4;
	}
	if (!room(b, (size_t)on + 10 + r))
		return -1;
	put_rr_head(b, owner, (size_t)on, DNS_TYPE_SOA, minimum, (uint16_t)r);
	memcpy(b->buf + b->len, rdata, r);
	b->len += r;
	if (in_answer)
		b->ancount++;
	else
		b->nscount++;
	return 0;
}

int dns_build_opt(struct dns_builder *b, uint16_t udp_size, uint8_t ext_rcode)
{
	if (b->len + 11 > b->cap)
		return -1;
	uint8_t *p = b->buf + b->len;
	p[0] = 0; /* root owner */
	dns_put16(p + 1, DNS_TYPE_OPT);
	dns_put16(p + 3, udp_size);
	memset(p + 5, 0, 6); /* extended rcode, version 0, flags, rdlen 0 */
	p[5] = ext_rcode;
	b->len += 11;
	b->arcount++;
	return 0;
}

size_t dns_build_finish(struct dns_builder *b)
{
	dns_put16(b->buf + 6, b->ancount);
	dns_put16(b->buf + 8, b->nscount);
	dns_put16(b->buf + 10, b->arcount);
	return b->len;
}
