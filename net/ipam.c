/* IPAM: which /24 a network gets and which address a container gets. Pure
 * logic on in-memory pools; net/store.c keeps them on disk under a lock. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "net/net.h"

#define HUTCH_NET_RANGE 0x0a590000u /* 10.89.0.0/16 */

static uint32_t prefix_mask(int prefix)
{
	return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1);
}

int hutch_cidr_parse(const char *s, struct hutch_cidr *out, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(s, strlen(s));
	const char *slash = strchr(s, '/');
	char ip[16];
	size_t n = slash ? (size_t)(slash - s) : 0;
	if (!slash || n == 0 || n >= sizeof(ip))
		return hutch_fail(err, 0,
				  "invalid subnet '%s': expected an IPv4 CIDR such as 10.89.5.0/24",
				  shown);
	memcpy(ip, s, n);
	ip[n] = '\0';
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return hutch_fail(err, 0,
				  "invalid subnet '%s': '%s' is no IPv4 address (an IPv6 subnet "
				  "goes in --subnet6, or subnet6 in a stack)",
				  shown, ip);
	char *end;
	const char *p = slash + 1;
	if (*p < '0' || *p > '9')
		return hutch_fail(err, 0, "invalid subnet '%s': the prefix length must be a number",
				  shown);
	long prefix = strtol(p, &end, 10);
	if (*end || prefix < 0 || prefix > 32)
		return hutch_fail(err, 0, "invalid subnet '%s': the prefix length must be 0-32",
				  shown);
	uint32_t addr = ntohl(a.s_addr);
	if (addr & ~prefix_mask((int)prefix)) {
		char net[16];
		hutch_ipv4_format(addr & prefix_mask((int)prefix), net);
		return hutch_fail(err, 0,
				  "invalid subnet '%s': host bits are set (did you mean %s/%ld?)",
				  shown, net, prefix);
	}
	out->addr = addr;
	out->prefix = (int)prefix;
	return 0;
}

void hutch_ipv4_format(uint32_t addr, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
		 addr & 255);
}

void hutch_cidr_format(const struct hutch_cidr *c, char buf[19])
{
	char ip[16];
	hutch_ipv4_format(c->addr, ip);
	snprintf(buf, 19, "%s/%d", ip, c->prefix);
}

bool hutch_cidr_overlap(const struct hutch_cidr *a, const struct hutch_cidr *b)
{
	uint32_t m = prefix_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
	return (a->addr & m) == (b->addr & m);
}

int hutch_ipam_choose_subnet(const struct hutch_cidr *taken, size_t n_taken, struct hutch_cidr *out,
			     struct hutch_err **err)
{
	for (uint32_t i = 0; i < 256; i++) {
		struct hutch_cidr c = {.addr = HUTCH_NET_RANGE | (i << 8), .prefix = 24};
		bool clash = false;
		for (size_t k = 0; k < n_taken && !clash; k++)
			/* a default route covers everything and clashes with nothing */
			clash = taken[k].prefix > 0 && hutch_cidr_overlap(&c, &taken[k]);
		if (!clash) {
			*out = c;
			return 0;
		}
	}
	return hutch_fail(err, 0,
			  "no free subnet left in 10.89.0.0/16 (every /24 is used by a route of "
			  "the host or another network): give one with --subnet");
}

uint32_t hutch_ipam_gateway(const struct hutch_cidr *subnet)
{
	return subnet->addr + 1;
}

/* FNV-1a: a start that depends on the key only. */
static uint32_t key_hash(const char *key)
{
	uint32_t h = 2166136261u;
	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h;
}

static struct hutch_ipam_entry *find_addr(struct hutch_ipam_pool *pool, uint32_t addr)
{
	for (size_t i = 0; i < pool->n; i++)
		if (pool->entries[i].addr == addr)
			return &pool->entries[i];
	return NULL;
}

int hutch_ipam_allocate(struct hutch_ipam_pool *pool, const char *key, const char *owner,
			uint32_t *out, struct hutch_err **err)
{
	const struct hutch_cidr *s = &pool->subnet;
	if (s->prefix > 30)
		return hutch_fail(err, 0, "subnet /%d has no room for containers", s->prefix);
	uint32_t size = 1u << (32 - s->prefix);
	/* usable: .2 .. broadcast-1 (.1 is the gateway) */
	uint32_t first = s->addr + 2, n_usable = size - 3;
	if (key) {
		for (size_t i = 0; i < pool->n; i++) {
			struct hutch_ipam_entry *e = &pool->entries[i];
			if (!e->key || strcmp(e->key, key))
				continue;
			if (e->owner && strcmp(e->owner, owner)) {
				char a[16];
				hutch_ipv4_format(e->addr, a);
				return hutch_fail(
				    err, 0, "address key '%s' (%s) is held by container %.12s", key,
				    a, e->owner);
			}
			free(e->owner);
			e->owner = xstrdup(owner);
			*out = e->addr;
			return 0;
		}
	}
	uint32_t start = key ? key_hash(key) % n_usable : 0;
	for (uint32_t k = 0; k < n_usable; k++) {
		uint32_t addr = first + (start + k) % n_usable;
		if (find_addr(pool, addr))
			continue;
		pool->entries = xrealloc(pool->entries, (pool->n + 1) * sizeof(*pool->entries));
		pool->entries[pool->n++] = (struct hutch_ipam_entry){
		    .addr = addr, .key = key ? xstrdup(key) : NULL, .owner = xstrdup(owner)};
		*out = addr;
		return 0;
	}
	/* full: take over the oldest reservation nobody holds (entries are kept in
	 * the order they were made) */
	for (size_t i = 0; i < pool->n; i++) {
		struct hutch_ipam_entry *e = &pool->entries[i];
		if (e->owner)
			continue;
		struct hutch_ipam_entry taken = {
		    .addr = e->addr, .key = key ? xstrdup(key) : NULL, .owner = xstrdup(owner)};
		free(e->key);
		memmove(e, e + 1, (pool->n - i - 1) * sizeof(*e));
		pool->entries[pool->n - 1] = taken;
		*out = taken.addr;
		return 0;
	}
	char sub[19];
	hutch_cidr_format(s, sub);
	return hutch_fail(err, 0, "no free address left in %s (%u containers are on it)", sub,
			  n_usable);
}

size_t hutch_ipam_release(struct hutch_ipam_pool *pool, const char *owner)
{
	size_t released = 0;
	for (size_t i = 0; i < pool->n;) {
		struct hutch_ipam_entry *e = &pool->entries[i];
		if (!e->owner || strcmp(e->owner, owner)) {
			i++;
			continue;
		}
		released++;
		free(e->owner);
		e->owner = NULL;
		if (e->key) {
			i++;
			continue;
		}
		memmove(e, e + 1, (pool->n - i - 1) * sizeof(*e));
		pool->n--;
	}
	return released;
}

void hutch_ipam_pool_clear(struct hutch_ipam_pool *pool)
{
	for (size_t i = 0; i < pool->n; i++) {
		free(pool->entries[i].key);
		free(pool->entries[i].owner);
	}
	free(pool->entries);
	pool->entries = NULL;
	pool->n = 0;
}

/* ---- IPv6 (dual stack) ---------------------------------------------------------- */

int hutch_cidr6_parse(const char *s, struct hutch_cidr6 *out, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(s, strlen(s));
	const char *slash = strchr(s, '/');
	char ip[INET6_ADDRSTRLEN];
	size_t n = slash ? (size_t)(slash - s) : 0;
	struct in6_addr a;
	if (!slash || n == 0 || n >= sizeof(ip))
		return hutch_fail(err, 0,
				  "invalid IPv6 subnet '%s': expected a CIDR such as "
				  "fd00:1:2:3::/64",
				  shown);
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET6, ip, &a) != 1)
		return hutch_fail(err, 0, "invalid IPv6 subnet '%s': '%s' is no IPv6 address",
				  shown, ip);
	const char *p = slash + 1;
	char *end;
	long prefix = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
	if (prefix < 0 || *end || prefix > 128)
		return hutch_fail(
		    err, 0, "invalid IPv6 subnet '%s': the prefix length must be 0-128", shown);
	for (int bit = (int)prefix; bit < 128; bit++)
		if (a.s6_addr[bit / 8] & (0x80 >> (bit % 8)))
			return hutch_fail(err, 0, "invalid IPv6 subnet '%s': host bits are set",
					  shown);
	memcpy(out->addr, a.s6_addr, 16);
	out->prefix = (int)prefix;
	return 0;
}

void hutch_cidr6_format(const struct hutch_cidr6 *c, char buf[HUTCH_CIDR6_LEN])
{
	char ip[INET6_ADDRSTRLEN];
	inet_ntop(AF_INET6, c->addr, ip, sizeof(ip));
	snprintf(buf, HUTCH_CIDR6_LEN, "%s/%d", ip, c->prefix);
}

bool hutch_cidr6_overlap(const struct hutch_cidr6 *a, const struct hutch_cidr6 *b)
{
	int p = a->prefix < b->prefix ? a->prefix : b->prefix;
	for (int bit = 0; bit < p; bit++) {
		uint8_t m = 0x80 >> (bit % 8);
		if ((a->addr[bit / 8] & m) != (b->addr[bit / 8] & m))
			return false;
	}
	return true;
}

/* RFC 4193's shape: fd, a 40-bit global id, a 16-bit subnet id of 0. The global
 * id comes from the network's id (and the attempt, for a clash), so one network
 * keeps its prefix while it exists and two are apart without coordination. */
int hutch_ipam_choose_subnet6(const char *id, const struct hutch_cidr6 *taken, size_t n_taken,
			      struct hutch_cidr6 *out, struct hutch_err **err)
{
	for (uint32_t attempt = 0; attempt < 64; attempt++) {
		uint32_t h1 = key_hash(id) ^ (attempt * 0x9e3779b9u);
		char salted[80];
		snprintf(salted, sizeof(salted), "%u:%s", attempt, id);
		uint32_t h2 = key_hash(salted);
		struct hutch_cidr6 c = {.addr = {0xfd, (uint8_t)(h1 >> 24), (uint8_t)(h1 >> 16),
						 (uint8_t)(h1 >> 8), (uint8_t)h1, (uint8_t)h2},
					.prefix = 64};
		bool clash = false;
		for (size_t k = 0; k < n_taken && !clash; k++)
			clash = taken[k].prefix > 0 && hutch_cidr6_overlap(&c, &taken[k]);
		if (!clash) {
			*out = c;
			return 0;
		}
	}
	return hutch_fail(err, 0,
			  "no free IPv6 subnet found for the network: give one with --subnet6");
}

/* The IPv6 address that goes with a container's IPv4 one: the same offset into
 * the IPv6 subnet, so it is as stable per key as the IPv4 address and needs no
 * pool of its own (the gateway, .1, is ::1 of the subnet). */
void hutch_ipam_addr6(const struct hutch_cidr6 *subnet6, const struct hutch_cidr *subnet,
		      uint32_t addr, char buf[INET6_ADDRSTRLEN])
{
	uint8_t a[16];
	memcpy(a, subnet6->addr, 16);
	uint32_t off = addr - subnet->addr;
	for (int i = 15; i >= 12; i--, off >>= 8)
		a[i] |= (uint8_t)(off & 255);
	inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN);
}
