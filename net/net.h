/* net/: the network module's API: container networks and their DNS server.
 * net/ knows containers' addresses and names, never services or stacks' logic. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hutch_err;

/* ---- DNS server (net/dns.c, docs/dns.md) ----------------------------------------
 * A server the caller's event loop hosts: a set of fds and one timeout, no threads, no
 * blocking call. The names it serves are a table the caller builds and can replace at
 * any time (hutch_dns_set_records), so a restarted container is found at once. */

/* The names table: networks, each with the subnets its clients query from, the
 * domains it is authoritative for (the stack's name, "dns.hutch"...: an unknown name
 * under one is NXDOMAIN, never forwarded) and its hosts. */
struct hutch_dns_records;
struct hutch_dns_records *hutch_dns_records_new(void);
void hutch_dns_records_free(struct hutch_dns_records *records);
/* Returns the new network's index (>= 0), or -1. */
int hutch_dns_records_add_network(struct hutch_dns_records *records, const char *name,
				  struct hutch_err **err);
/* "10.89.0.0/24", "fd00::/64": a client whose source address is in it is on the
 * network; PTR queries under its reverse zone are answered here. */
int hutch_dns_records_add_subnet(struct hutch_dns_records *records, int network, const char *cidr,
				 struct hutch_err **err);
int hutch_dns_records_add_domain(struct hutch_dns_records *records, int network, const char *domain,
				 struct hutch_err **err);
/* One container: every name it answers to (container name, SERVICE, SERVICE.STACK,
 * aliases: the first one is what PTR answers) and its addresses. A name given by
 * several hosts (replicas) answers with all their addresses, in rotating order. */
int hutch_dns_records_add_host(struct hutch_dns_records *records, int network,
			       const char *const *names, size_t n_names, const char *const *addrs,
			       size_t n_addrs, struct hutch_err **err);
/* The same from JSON (the format is in docs/dns.md); path only names it in messages. */
int hutch_dns_records_from_json(const char *text, size_t len, const char *path,
				struct hutch_dns_records **out, struct hutch_err **err);
int hutch_dns_records_load(const char *path, struct hutch_dns_records **out,
			   struct hutch_err **err);

/* Called for every fd the server wants watched: events is the full set wanted
 * (EPOLLIN, EPOLLOUT), 0 to stop watching it (for now, or before it is closed). */
typedef void (*hutch_dns_watch_fn)(void *ctx, int fd, uint32_t events);

struct hutch_dns_config {
	/* "IP:PORT", "[IPv6]:PORT" (port 0: any free one, the same for UDP and TCP); each
	 * is served over UDP and TCP */
	const char *const *listen;
	size_t n_listen;
	/* "IP", "IP:PORT", "[IPv6]:PORT": at most 3 are used. None: the nameservers of
	 * resolv_conf (default /etc/resolv.conf), loopback ones left out unless
	 * upstream_loopback_ok (a loopback address in the host's file is no server a
	 * container's requests can reach through hutch's namespace in general) */
	const char *const *upstreams;
	size_t n_upstreams;
	const char *resolv_conf;
	bool upstream_loopback_ok;
	int64_t upstream_budget_ns; /* 0: 5 s, split evenly between the upstreams */
	unsigned max_forwards;	    /* queries being forwarded at once; 0: 1024 */
	unsigned max_tcp_clients;   /* 0: 128 */
	hutch_dns_watch_fn watch;
	void *watch_ctx;
};

struct hutch_dns_stats {
	uint64_t queries, answered_locally, nxdomain, forwarded, forward_failed, refused, dropped;
};

struct hutch_dns;
/* Binds the sockets and registers them through config->watch. Takes records, also on
 * failure (may be NULL: no names yet). */
struct hutch_dns *hutch_dns_new(const struct hutch_dns_config *config,
				struct hutch_dns_records *records, struct hutch_err **err);
/* Unregisters and closes every fd; forwards in flight are dropped. */
void hutch_dns_free(struct hutch_dns *dns);
/* Replaces the names table (takes it; the old one is freed). Answers from the next
 * query on use it. */
void hutch_dns_set_records(struct hutch_dns *dns, struct hutch_dns_records *records);
/* An fd registered through watch is ready (epoll's events). */
void hutch_dns_on_event(struct hutch_dns *dns, int fd, uint32_t events);
/* The next deadline (CLOCK_MONOTONIC, ns) the caller must call on_timeout at, or -1. */
int64_t hutch_dns_next_timeout_ns(const struct hutch_dns *dns);
void hutch_dns_on_timeout(struct hutch_dns *dns, int64_t now_ns);
int64_t hutch_dns_now_ns(void);
/* The port the i-th listen address got (when it asked for 0). */
int hutch_dns_port(const struct hutch_dns *dns, size_t i);
/* The upstreams in use, as "IP:PORT" (for logs and `network inspect`). */
size_t hutch_dns_upstream_count(const struct hutch_dns *dns);
const char *hutch_dns_upstream(const struct hutch_dns *dns, size_t i);
void hutch_dns_get_stats(const struct hutch_dns *dns, struct hutch_dns_stats *stats);
