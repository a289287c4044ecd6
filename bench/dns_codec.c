/* What decided hutch's DNS codec (docs/dns.md): the work of one local answer, done by
 * hutch's own codec (net/dns_wire.c) and by ldns: read a query (with an EDNS0 OPT),
 * build the answer with 3 A records and an OPT, write it out. Prints ns per answer and
 * heap allocations per answer for each. Built and run by bench/dns.sh:
 *   cc -O2 -I. bench/dns_codec.c net/dns_wire.c -lldns */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/dns_wire.h"

static unsigned long allocs;
/* counts malloc calls (glibc's hooks are gone: wrap through dlsym) */
void *malloc(size_t n)
{
	static void *(*real)(size_t);
	if (!real)
		real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	allocs++;
	return real(n);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const uint8_t addrs[3][4] = {{10, 89, 1, 2}, {10, 89, 1, 3}, {10, 89, 1, 5}};

static size_t hutch_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
	struct dns_msg m;
	if (dns_parse(q, qlen, true, &m) != DNS_PARSE_OK)
		abort();
	struct dns_builder b;
	dns_build_start(&b, out, cap, 1232, &m, DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RA);
	for (int i = 0; i < 3; i++)
		dns_build_answer(&b, DNS_TYPE_A, 0, addrs[i], 4);
	dns_build_opt(&b, 1232, 0);
	return dns_build_finish(&b);
}

static size_t ldns_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
	ldns_pkt *query = NULL;
	if (ldns_wire2pkt(&query, q, qlen) != LDNS_STATUS_OK)
		abort();
	ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(query), 0);
	ldns_pkt *ans = ldns_pkt_new();
	ldns_pkt_set_id(ans, ldns_pkt_id(query));
	ldns_pkt_set_qr(ans, true);
	ldns_pkt_set_aa(ans, true);
	ldns_pkt_set_ra(ans, true);
	ldns_pkt_set_rd(ans, ldns_pkt_rd(query));
	ldns_pkt_push_rr(ans, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
	for (int i = 0; i < 3; i++) {
		ldns_rr *rr = ldns_rr_new();
		ldns_rr_set_owner(rr, ldns_rdf_clone(ldns_rr_owner(question)));
		ldns_rr_set_type(rr, LDNS_RR_TYPE_A);
		ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
		ldns_rr_set_ttl(rr, 0);
		ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, addrs[i]));
		ldns_pkt_push_rr(ans, LDNS_SECTION_ANSWER, rr);
	}
	if (ldns_pkt_edns(query))
		ldns_pkt_set_edns_udp_size(ans, 1232);
	uint8_t *wire = NULL;
	size_t len = 0;
	if (ldns_pkt2wire(&wire, ans, &len) != LDNS_STATUS_OK || len > cap)
		abort();
	memcpy(out, wire, len);
	free(wire);
	ldns_pkt_free(ans);
	ldns_pkt_free(query);
	return len;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	uint8_t q[512] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
	int nl = dns_encode_name("web.shop", q + 12, 256);
	size_t qlen = 12 + (size_t)nl;
	uint8_t tail[] = {0, 1, 0, 1, 0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0};
	memcpy(q + qlen, tail, sizeof(tail));
	qlen += sizeof(tail);
	uint8_t out[1500];
	struct {
		const char *name;
		size_t (*fn)(const uint8_t *, size_t, uint8_t *, size_t);
	} impl[] = {{"hutch", hutch_answer}, {"ldns", ldns_answer}};
	size_t lens[2];
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < 1000; i++) /* warm up */
			impl[k].fn(q, qlen, out, sizeof(out));
		unsigned long a0 = allocs;
		double t0 = now();
		for (long i = 0; i < n; i++)
			lens[k] = impl[k].fn(q, qlen, out, sizeof(out));
		double dt = now() - t0;
		printf("%s\t%.0f ns/answer\t%.1f allocations/answer\t%zu bytes\n", impl[k].name,
		       dt / (double)n * 1e9, (double)(allocs - a0) / (double)n, lens[k]);
	}
	return 0;
}
