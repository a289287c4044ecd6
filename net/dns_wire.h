/* net/: the DNS wire format, the subset hutch's DNS server needs (RFC 1035, EDNS0 of
 * RFC 6891): one question, A/AAAA/PTR/SOA answers, the OPT record passed through.
 * Private to net/. Every function bounds-checks against the packet's length: the
 * packets are foreign input (fuzzed by tests/fuzz/fuzz_dns.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN	    12
#define DNS_MAX_NAME	    255 /* wire length, root label included */
#define DNS_MAX_LABEL	    63
#define DNS_MAX_UDP_PLAIN   512
#define DNS_MAX_MSG	    65535
#define DNS_MAX_POINTER_HOP 64 /* a name has at most 127 labels; pointers only go back */

#define DNS_TYPE_A     1
#define DNS_TYPE_NS    2
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_SOA   6
#define DNS_TYPE_PTR   12
#define DNS_TYPE_AAAA  28
#define DNS_TYPE_OPT   41
#define DNS_TYPE_ANY   255
#define DNS_CLASS_IN   1
#define DNS_CLASS_ANY  255

#define DNS_RCODE_NOERROR  0
#define DNS_RCODE_FORMERR  1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP   4
#define DNS_RCODE_REFUSED  5

#define DNS_FLAG_QR	  0x8000
#define DNS_FLAG_AA	  0x0400
#define DNS_FLAG_TC	  0x0200
#define DNS_FLAG_RD	  0x0100
#define DNS_FLAG_RA	  0x0080
#define DNS_FLAG_CD	  0x0010
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define DNS_RCODE(flags)  ((flags)&0xf)

static inline uint16_t dns_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void dns_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A name read off the wire: in dotted text, lowercased, without the trailing dot
 * ("" for the root), and the same name in uncompressed wire form as it was sent
 * (case kept: answers echo the question as asked, RFC 4343 and 0x20 randomisation). */
struct dns_name {
	char text[DNS_MAX_NAME + 1];
	size_t text_len;
	uint8_t wire[DNS_MAX_NAME];
	size_t wire_len;
	/* A label holds '.', '\\' or a byte outside printable ASCII: no local name can
	 * match it, and its dotted text is not the name (it is only forwarded). */
	bool odd;
};

/* Reads the name at *off (following compression pointers, only backwards, at most
 * DNS_MAX_POINTER_HOP of them), and moves *off past its in-place part.
 * Returns 0, or -1 for a malformed name (truncated, too long, a loop, a forward
 * pointer, a reserved label type). */
int dns_read_name(const uint8_t *pkt, size_t len, size_t *off, struct dns_name *name);

/* What the server needs of a message: the header, its question, the OPT record. */
struct dns_msg {
	uint16_t id, flags, qdcount, ancount, nscount, arcount;
	struct dns_name qname;
	uint16_t qtype, qclass;
	size_t question_end; /* offset just past the question */
	bool has_opt;
	uint16_t opt_udp_size; /* the requestor's payload size (at least 512) */
	uint8_t opt_version;
	uint16_t opt_flags; /* the DO bit and the rest of the OPT's TTL field */
};

enum dns_parse_result {
	DNS_PARSE_OK = 0,
	DNS_PARSE_SHORT = -1, /* not even a header: nothing to answer */
	DNS_PARSE_BAD = -2,   /* a header but a bad body: FORMERR if it was a query */
};

/* Parses the header and the single question; with with_records, walks every
 * record after it too (bounds, names) to find the OPT record. A message with a
 * question count other than 1 is DNS_PARSE_BAD. */
enum dns_parse_result dns_parse(const uint8_t *pkt, size_t len, bool with_records,
				struct dns_msg *msg);

/* An answer being built into a caller's buffer of cap bytes (at most 65535). */
struct dns_builder {
	uint8_t *buf;
	size_t cap, len;
	size_t question_end;
	size_t limit; /* the client's maximum size: past it, TC and no answers */
	bool truncated;
	uint16_t ancount, nscount, arcount;
};

/* Header and the question of q (copied as asked). flags: QR, AA, RA, RCODE...; RD
 * and CD are copied from the query. */
void dns_build_start(struct dns_builder *b, uint8_t *buf, size_t cap, size_t limit,
		     const struct dns_msg *q, uint16_t flags);
/* An answer for the question's name (a compression pointer to it): A (4 bytes),
 * AAAA (16), or PTR (rdata: a dotted name). Returns -1 when it does not fit the
 * limit: the message is then truncated (TC set, answers dropped). */
int dns_build_answer(struct dns_builder *b, uint16_t type, uint32_t ttl, const void *rdata,
		     size_t rdlen);
int dns_build_answer_ptr(struct dns_builder *b, uint32_t ttl, const char *target);
/* The SOA of zone (dotted, "" = root): in the authority section for negative answers
 * (RFC 2308: its MINIMUM is the negative TTL), or as an answer. */
int dns_build_soa(struct dns_builder *b, const char *zone, uint32_t minimum, bool in_answer);
/* An OPT record in the additional section (when the query had one); ext_rcode: the
 * upper 8 bits of a 12-bit rcode (1 for BADVERS). */
int dns_build_opt(struct dns_builder *b, uint16_t udp_size, uint8_t ext_rcode);
/* Counts written into the header; returns the message length. */
size_t dns_build_finish(struct dns_builder *b);

/* Writes a dotted name in uncompressed wire form; returns its length or -1 (bad
 * label, too long). */
int dns_encode_name(const char *text, uint8_t *out, size_t cap);
