/* The DNS codec: names (compression followed backwards only, loops and forward pointers
 * refused, label and name limits), queries parsed with their OPT record, truncated
 * packets at every length, and answers built (and read back) within a size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/dns_wire.h"

/* A query for name/type, optionally with an OPT record of udp_size. */
static size_t make_query(uint8_t *buf, uint16_t id, const char *name, uint16_t type, int udp_size)
{
	memset(buf, 0, 12);
	dns_put16(buf, id);
	dns_put16(buf + 2, DNS_FLAG_RD);
	dns_put16(buf + 4, 1);
	int n = dns_encode_name(name, buf + 12, 256);
	assert_true(n > 0);
	size_t len = 12 + (size_t)n;
	dns_put16(buf + len, type);
	dns_put16(buf + len + 2, DNS_CLASS_IN);
	len += 4;
	if (udp_size) {
		dns_put16(buf + 10, 1);
		uint8_t opt[11] = {0, 0, 41};
		dns_put16(opt + 3, (uint16_t)udp_size);
		opt[7] = 0x80; /* DO */
		memcpy(buf + len, opt, 11);
		len += 11;
	}
	return len;
}

static void test_read_plain_name(void **state)
{
	uint8_t buf[512];
	size_t len = make_query(buf, 7, "Web.Shop", DNS_TYPE_A, 0);
	struct dns_msg m;
	assert_int_equal(dns_parse(buf, len, true, &m), DNS_PARSE_OK);
	assert_int_equal(m.id, 7);
	assert_string_equal(m.qname.text, "web.shop"); /* lowercased for lookups */
	assert_int_equal(m.qname.wire_len, 10);
	assert_memory_equal(m.qname.wire, "\3Web\4Shop", 10); /* case kept on the wire */
	assert_int_equal(m.qtype, DNS_TYPE_A);
	assert_false(m.qname.odd);
	assert_false(m.has_opt);
	assert_int_equal(m.opt_udp_size, 512);
}

static void test_trailing_dot_and_root(void **state)
{
	uint8_t a[300], b[300];
	assert_int_equal(dns_encode_name("web.shop.", a, sizeof(a)),
			 dns_encode_name("web.shop", b, sizeof(b)));
	assert_memory_equal(a, b, 10);
	assert_int_equal(dns_encode_name("", a, sizeof(a)), 1);
	assert_int_equal(dns_encode_name(".", a, sizeof(a)), 1);
	assert_int_equal(dns_encode_name("a..b", a, sizeof(a)), -1);
	uint8_t q[512];
	size_t len = make_query(q, 1, ".", DNS_TYPE_SOA, 0);
	struct dns_msg m;
	assert_int_equal(dns_parse(q, len, true, &m), DNS_PARSE_OK);
	assert_string_equal(m.qname.text, "");
	assert_int_equal(m.qname.wire_len, 1);
}

static void test_label_limits(void **state)
{
	char label63[64], label64[65], name[400];
	memset(label63, 'a', 63);
	label63[63] = 0;
	memset(label64, 'b', 64);
	label64[64] = 0;
	uint8_t out[300];
	assert_int_equal(dns_encode_name(label63, out, sizeof(out)), 65);
	assert_int_equal(dns_encode_name(label64, out, sizeof(out)), -1);
	/* 4 x 63 + 3 dots = 255 characters: wire 256 bytes, one too many */
	snprintf(name, sizeof(name), "%s.%s.%s.%s", label63, label63, label63, label63);
	assert_int_equal(dns_encode_name(name, out, sizeof(out)), -1);
	/* 3 x 63 + 61: wire 255, the most there is */
	snprintf(name, sizeof(name), "%s.%s.%s.%.61s", label63, label63, label63, label63);
	assert_int_equal(dns_encode_name(name, out, sizeof(out)), 255);

	/* on the wire: a 64-byte label is a reserved label type (0x40), refused */
	uint8_t pkt[600] = {0};
	dns_put16(pkt + 4, 1);
	pkt[12] = 64;
	memset(pkt + 13, 'x', 64);
	struct dns_msg m;
	assert_int_equal(dns_parse(pkt, 12 + 1 + 64 + 1 + 4, false, &m), DNS_PARSE_BAD);
	/* a name over 255 bytes through many labels is refused */
	size_t off = 12;
	for (int i = 0; i < 5; i++) {
		pkt[off] = 63;
		memset(pkt + off + 1, 'y', 63);
		off += 64;
	}
	pkt[off++] = 0;
	assert_int_equal(dns_parse(pkt, off + 4, false, &m), DNS_PARSE_BAD);
}

static void test_compression(void **state)
{
	/* an answer-like message: the question, then a record whose owner points at it,
	 * and one whose owner is "www" + pointer */
	uint8_t pkt[512];
	size_t len = make_query(pkt, 9, "web.shop", DNS_TYPE_A, 0);
	size_t rr = len;
	pkt[len++] = 3;
	memcpy(pkt + len, "www", 3);
	len += 3;
	pkt[len++] = 0xc0;
	pkt[len++] = 12 + 4; /* "shop" inside the question */
	struct dns_name n;
	size_t off = rr;
	assert_int_equal(dns_read_name(pkt, len, &off, &n), 0);
	assert_string_equal(n.text, "www.shop");
	assert_int_equal(off, len); /* past the pointer, not the pointed-to name */
	assert_int_equal(n.wire_len, 10);
}

static void test_compression_loops_refused(void **state)
{
	uint8_t pkt[64] = {0};
	struct dns_name n;
	size_t off;
	/* a pointer to itself */
	pkt[12] = 0xc0;
	pkt[13] = 12;
	off = 12;
	assert_int_equal(dns_read_name(pkt, 14, &off, &n), -1);
	/* two pointers to each other */
	pkt[14] = 0xc0;
	pkt[15] = 12;
	off = 14;
	assert_int_equal(dns_read_name(pkt, 16, &off, &n), -1);
	/* a forward pointer */
	pkt[12] = 0xc0;
	pkt[13] = 20;
	pkt[20] = 0;
	off = 12;
	assert_int_equal(dns_read_name(pkt, 21, &off, &n), -1);
	/* a label, then a pointer back into that label's own bytes: a loop through text */
	pkt[12] = 1;
	pkt[13] = 'a';
	pkt[14] = 0xc0;
	pkt[15] = 12;
	off = 12;
	assert_int_equal(dns_read_name(pkt, 16, &off, &n), -1);
	/* a pointer cut in half */
	pkt[12] = 0xc0;
	off = 12;
	assert_int_equal(dns_read_name(pkt, 13, &off, &n), -1);
	/* the reserved 0x80 label type */
	pkt[12] = 0x80;
	off = 12;
	assert_int_equal(dns_read_name(pkt, 16, &off, &n), -1);
}

static void test_truncated_everywhere(void **state)
{
	uint8_t pkt[512];
	size_t len = make_query(pkt, 3, "db.shop", DNS_TYPE_AAAA, 1232);
	struct dns_msg m;
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_OK);
	for (size_t cut = 0; cut < len; cut++) {
		enum dns_parse_result r = dns_parse(pkt, cut, true, &m);
		assert_int_equal(r, cut < 12 ? DNS_PARSE_SHORT : DNS_PARSE_BAD);
	}
}

static void test_opt(void **state)
{
	uint8_t pkt[512];
	size_t len = make_query(pkt, 3, "db.shop", DNS_TYPE_A, 4096);
	struct dns_msg m;
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_OK);
	assert_true(m.has_opt);
	assert_int_equal(m.opt_udp_size, 4096);
	assert_int_equal(m.opt_flags, 0x8000);
	/* a size under 512 counts as 512 (RFC 6891 6.2.5) */
	len = make_query(pkt, 3, "db.shop", DNS_TYPE_A, 100);
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_OK);
	assert_int_equal(m.opt_udp_size, 512);
	/* two OPT records: malformed */
	memcpy(pkt + len, pkt + len - 11, 11);
	dns_put16(pkt + 10, 2);
	assert_int_equal(dns_parse(pkt, len + 11, true, &m), DNS_PARSE_BAD);
	/* an OPT whose owner is not the root */
	len = make_query(pkt, 3, "db.shop", DNS_TYPE_A, 0);
	dns_put16(pkt + 10, 1);
	uint8_t bad[] = {1, 'x', 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0};
	memcpy(pkt + len, bad, sizeof(bad));
	assert_int_equal(dns_parse(pkt, len + sizeof(bad), true, &m), DNS_PARSE_BAD);
	/* an rdata length past the end */
	len = make_query(pkt, 3, "db.shop", DNS_TYPE_A, 1232);
	dns_put16(pkt + len - 2, 50);
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_BAD);
}

static void test_question_count(void **state)
{
	uint8_t pkt[512];
	size_t len = make_query(pkt, 3, "db.shop", DNS_TYPE_A, 0);
	struct dns_msg m;
	dns_put16(pkt + 4, 0);
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_BAD);
	dns_put16(pkt + 4, 2);
	assert_int_equal(dns_parse(pkt, len, true, &m), DNS_PARSE_BAD);
}

static void test_odd_labels(void **state)
{
	/* a label with a dot inside is not two labels: marked, never matched locally */
	uint8_t pkt[64] = {0};
	dns_put16(pkt + 4, 1);
	memcpy(pkt + 12, "\10web.shop\0\0\1\0\1", 14);
	struct dns_msg m;
	assert_int_equal(dns_parse(pkt, 26, true, &m), DNS_PARSE_OK);
	assert_true(m.qname.odd);
	memcpy(pkt + 12, "\3w\0b\4shop\0\0\1\0\1", 14);
	assert_int_equal(dns_parse(pkt, 26, true, &m), DNS_PARSE_OK);
	assert_true(m.qname.odd);
}

static void test_build_and_read_back(void **state)
{
	uint8_t q[512], out[1500];
	size_t qlen = make_query(q, 0x1234, "Web.Shop", DNS_TYPE_A, 1232);
	struct dns_msg m;
	assert_int_equal(dns_parse(q, qlen, true, &m), DNS_PARSE_OK);
	struct dns_builder b;
	dns_build_start(&b, out, sizeof(out), 1232, &m, DNS_FLAG_QR | DNS_FLAG_AA);
	uint8_t a1[4] = {10, 89, 1, 2}, a2[4] = {10, 89, 1, 3};
	assert_int_equal(dns_build_answer(&b, DNS_TYPE_A, 0, a1, 4), 0);
	assert_int_equal(dns_build_answer(&b, DNS_TYPE_A, 0, a2, 4), 0);
	assert_int_equal(dns_build_answer_ptr(&b, 0, "shop-web-1"), 0);
	assert_int_equal(dns_build_soa(&b, "shop", 0, false), 0);
	assert_int_equal(dns_build_opt(&b, 1232, 0), 0);
	size_t len = dns_build_finish(&b);
	struct dns_msg r;
	assert_int_equal(dns_parse(out, len, true, &r), DNS_PARSE_OK);
	assert_int_equal(r.id, 0x1234);
	assert_true(r.flags & DNS_FLAG_QR);
	assert_true(r.flags & DNS_FLAG_RD); /* copied from the query */
	assert_int_equal(r.ancount, 3);
	assert_int_equal(r.nscount, 1);
	assert_true(r.has_opt);
	assert_memory_equal(r.qname.wire, "\3Web\4Shop", 10);
	/* the first answer: a pointer to the question, type A, TTL 0, 10.89.1.2 */
	const uint8_t *p = out + r.question_end;
	assert_int_equal(p[0], 0xc0);
	assert_int_equal(p[1], 12);
	assert_int_equal(dns_get16(p + 2), DNS_TYPE_A);
	assert_int_equal(dns_get16(p + 6), 0);
	assert_int_equal(dns_get16(p + 10), 4);
	assert_memory_equal(p + 12, a1, 4);
}

static void test_build_truncates(void **state)
{
	uint8_t q[512], out[1500];
	size_t qlen = make_query(q, 5, "many.shop", DNS_TYPE_A, 0);
	struct dns_msg m;
	assert_int_equal(dns_parse(q, qlen, true, &m), DNS_PARSE_OK);
	struct dns_builder b;
	dns_build_start(&b, out, sizeof(out), 512, &m, DNS_FLAG_QR);
	int fitted = 0;
	for (int i = 0; i < 100; i++) {
		uint8_t a[4] = {10, 0, 0, (uint8_t)i};
		if (dns_build_answer(&b, DNS_TYPE_A, 0, a, 4) == 0)
			fitted++;
	}
	/* 12 + 15 question + 16 per answer within 512 - 11: 29 fit, then TC */
	assert_int_equal(fitted, 29);
	assert_true(b.truncated);
	size_t len = dns_build_finish(&b);
	struct dns_msg r;
	assert_int_equal(dns_parse(out, len, true, &r), DNS_PARSE_OK);
	assert_true(r.flags & DNS_FLAG_TC);
	assert_int_equal(r.ancount, 0); /* nothing partial */
	assert_int_equal(len, r.question_end);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_plain_name),
	    cmocka_unit_test(test_trailing_dot_and_root),
	    cmocka_unit_test(test_label_limits),
	    cmocka_unit_test(test_compression),
	    cmocka_unit_test(test_compression_loops_refused),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_opt),
	    cmocka_unit_test(test_question_count),
	    cmocka_unit_test(test_odd_labels),
	    cmocka_unit_test(test_build_and_read_back),
	    cmocka_unit_test(test_build_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
