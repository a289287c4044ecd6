/* net/: container networks, rootful: a Linux bridge per network, a veth pair per
 * container into a network namespace prepared here (RUN/netns/ID, joined by
 * path by the runtime), IPv4 addresses from 10.89.0.0/16, published ports and
 * masquerading as nftables rules in hutch's own table. net/ knows containers'
 * network namespaces, ids, names and addresses; never services or stacks.
 * This block is the link/IPAM/ports part of the module's API (the DNS server
 * has its own block); docs/network.md says how it works and why. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hutch_err;

/* The default bridge network `-p` without --network puts a container on. */
#define HUTCH_NET_DEFAULT "hutch"

/* ---- pure parts (net/ipam.c, net/ports.c; unit-tested) ------------------------ */

struct hutch_cidr {
	uint32_t addr; /* host byte order, the network's address */
	int prefix;    /* 0-32 */
};
/* "10.89.3.0/24" (host bits must be zero); the message names the value. */
int hutch_cidr_parse(const char *s, struct hutch_cidr *out, struct hutch_err **err);
void hutch_cidr_format(const struct hutch_cidr *c, char buf[19]);
void hutch_ipv4_format(uint32_t addr, char buf[16]);
bool hutch_cidr_overlap(const struct hutch_cidr *a, const struct hutch_cidr *b);
/* The first 10.89.N.0/24 (N from 0) that overlaps none of taken (host routes and
 * other networks' subnets; default routes are no clash); -1 when all 256 do. */
int hutch_ipam_choose_subnet(const struct hutch_cidr *taken, size_t n_taken, struct hutch_cidr *out,
			     struct hutch_err **err);

/* The addresses of one network: .1 is the gateway, the rest are handed out.
 * An entry with a key stays reserved for that key after its owner released it,
 * so the supervisor's "STACK-SERVICE-N" gets the same address on every start;
 * an entry without one is gone when released. */
struct hutch_ipam_entry {
	uint32_t addr;
	char *key;   /* NULL: none */
	char *owner; /* container id; NULL: released (kept for its key) */
};
struct hutch_ipam_pool {
	struct hutch_cidr subnet;
	struct hutch_ipam_entry *entries;
	size_t n;
};
uint32_t hutch_ipam_gateway(const struct hutch_cidr *subnet);
/* An address for owner: the key's own if it has one, else a free one (the
 * first after a start derived from the key, so a key gets the same address
 * even in a new pool); only when none is free, the oldest reservation of
 * another key is taken over. Fails when every address is owned. */
int hutch_ipam_allocate(struct hutch_ipam_pool *pool, const char *key, const char *owner,
			uint32_t *out, struct hutch_err **err);
/* What owner holds is released (its key's reservation stays). Returns how many. */
size_t hutch_ipam_release(struct hutch_ipam_pool *pool, const char *owner);
void hutch_ipam_pool_clear(struct hutch_ipam_pool *pool);

enum hutch_port_proto { HUTCH_PORT_TCP = 0, HUTCH_PORT_UDP };
/* -p [IP:][HOST[-HOST2]:]CONTAINER[-CONTAINER2][/tcp|/udp]: count consecutive
 * ports from host_port to container_port. host_port 0: any free one (count 1). */
struct hutch_port_map {
	uint32_t host_ip; /* 0: every address of the host */
	uint16_t host_port, container_port, count;
	enum hutch_port_proto proto;
};
/* The message names the value and what is wrong with it. */
int hutch_port_parse(const char *arg, struct hutch_port_map *out, struct hutch_err **err);
/* "127.0.0.1:8080-8081:80-81/tcp" */
void hutch_port_format(const struct hutch_port_map *p, char buf[64]);
const char *hutch_port_proto_name(enum hutch_port_proto p);

/* ---- networks (net/network.c): DATA/networks/NAME, a lock for all of them ---- */

struct hutch_net_ctx {
	const char *data_root; /* DATA/networks/NAME/{network.json,members.json} */
	const char *run_root;  /* RUN/netns/ID: the containers' network namespaces */
};

struct hutch_net_member {
	char *container; /* id */
	char *name;	 /* container name, may be NULL */
	char **aliases;
	size_t n_aliases;
	char address[16];
	char *key; /* stable-address key, may be NULL */
	struct hutch_port_map *ports;
	size_t n_ports;
};

struct hutch_net_info {
	char *name, *id;
	char bridge[16];
	char subnet[19], gateway[16], dns[16];
	bool internal;
	char *created; /* RFC 3339 */
	struct hutch_net_member *members;
	size_t n_members;
};
void hutch_net_info_free(struct hutch_net_info *info);
void hutch_net_info_list_free(struct hutch_net_info *list, size_t n);

/* subnet NULL: chosen (hutch_ipam_choose_subnet around the host's routes). The
 * name is Docker's rule ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64). */
int hutch_network_create(const struct hutch_net_ctx *ctx, const char *name, const char *subnet,
			 bool internal, struct hutch_net_info *out, struct hutch_err **err);
/* A missing network is HUTCH_NET_NOT_FOUND (message filled). */
#define HUTCH_NET_NOT_FOUND (-2)
int hutch_network_inspect(const struct hutch_net_ctx *ctx, const char *name,
			  struct hutch_net_info *out, struct hutch_err **err);
int hutch_network_list(const struct hutch_net_ctx *ctx, struct hutch_net_info **out, size_t *n,
		       struct hutch_err **err);
/* Refused while containers are attached (naming them); removes its bridge and
 * rules if any are left. */
int hutch_network_remove(const struct hutch_net_ctx *ctx, const char *name, struct hutch_err **err);
/* The network as JSON (ls --format json: one per line; inspect: pretty). */
char *hutch_net_info_to_json(const struct hutch_net_info *info, bool pretty);

/* ---- attachments: a container on a network ------------------------------------ */

struct hutch_net_attach_req {
	const char *network;
	const char *container; /* 64-hex id: names the netns and the veth */
	const char *name;      /* the container's name, for inspect (may be NULL) */
	const char *key;       /* stable-address key (NULL: none) */
	const char *const *aliases;
	size_t n_aliases;
	const struct hutch_port_map *ports;
	size_t n_ports;
};
struct hutch_net_attachment {
	char netns[4096]; /* give the spec this path as its network namespace */
	char address[16], gateway[16], dns[16];
	int prefix;
	struct hutch_port_map *ports; /* as published (any free port chosen); free it */
	size_t n_ports;
};
/* Make (or reuse) the container's netns, wire it to the network's bridge (made
 * on first use), address, route, rules. On failure nothing of it is left. A
 * published port already in use is refused naming it and its holder. */
int hutch_net_attach(const struct hutch_net_ctx *ctx, const struct hutch_net_attach_req *req,
		     struct hutch_net_attachment *out, struct hutch_err **err);
/* Undo every attachment of the container and remove its netns; the last
 * member of a network takes the bridge and its rules with it. Idempotent. */
int hutch_net_detach(const struct hutch_net_ctx *ctx, const char *container,
		     struct hutch_err **err);
/* Detach containers whose netns holds no process and whose attaching hutch is
 * gone (a crashed run or monitor), and rebuild the rules: what a crash left. */
int hutch_net_gc(const struct hutch_net_ctx *ctx, struct hutch_err **err);
