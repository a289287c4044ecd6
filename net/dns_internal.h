/* net/: the DNS server's pieces, private to net/ (and its tests). */
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include "net/dns_wire.h"
#include "net/net.h"

#define DNS_TTL_LOCAL	  0    /* aardvark-dns's and Docker's: a restart is seen at once */
#define DNS_LOCAL_UDP_MAX 1232 /* DNS flag day 2020: no fragmented answers */

struct dns_entry {
	char *name; /* lowercase, no trailing dot */
	uint32_t hash;
	uint8_t (*v4)[4];
	size_t n_v4;
	uint8_t (*v6)[16];
	size_t n_v6;
	char *ptr;	/* for a reverse name: the host's first name */
	uint32_t rotor; /* where the next answer's rotation starts */
};

struct dns_subnet {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

struct dns_network {
	char *name;
	struct dns_subnet *subnets;
	size_t n_subnets;
	/* authoritative suffixes: the domains, then the subnets' reverse zones */
	char **zones;
	size_t n_zones;
	struct dns_entry *entries;
	size_t n_entries, cap_entries;
	uint32_t *slots; /* open addressing: entry index + 1, 0 = empty */
	size_t n_slots;
};

struct hutch_dns_records {
	struct dns_network *nets;
	size_t n_nets;
};

uint32_t dns_name_hash(const char *s, size_t len);
struct dns_entry *dns_find_entry(struct dns_network *net, const char *name, size_t len,
				 uint32_t hash);
/* The zone of net that name is in (name itself or a suffix after a dot), or NULL. */
const char *dns_find_zone(const struct dns_network *net, const char *name, size_t len);
bool dns_subnet_contains(const struct dns_subnet *s, int family, const uint8_t *addr);

enum dns_verdict {
	DNS_DROP,    /* not a query, or not even a header: no answer */
	DNS_ANSWER,  /* out holds the answer */
	DNS_FORWARD, /* not hutch's: forward to the upstreams */
};

/* The local part of the server: answers q (from client, over TCP or UDP) out of
 * records into out (cap bytes), or says it is to be forwarded (msg is filled then). */
enum dns_verdict dns_answer_local(struct hutch_dns_records *records, const struct sockaddr *client,
				  const uint8_t *q, size_t qlen, bool tcp, uint8_t *out, size_t cap,
				  size_t *outlen, struct dns_msg *msg);
/* A minimal answer with rcode for query q (SERVFAIL when forwarding failed). */
size_t dns_answer_error(const struct dns_msg *q, uint16_t rcode, uint8_t *out, size_t cap);
/* Whether an upstream's answer matches the question forwarded: same id, QR set, the
 * same name (case-insensitively), type and class. */
bool dns_answer_matches(const uint8_t *ans, size_t len, uint16_t id, const struct dns_msg *q);

/* "IP", "IP:PORT", "[IP6]:PORT" -> sockaddr; default_port when none is given. */
int dns_parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *ss,
		   socklen_t *len);
