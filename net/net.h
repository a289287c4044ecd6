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
	/* bind the listen addresses even when no interface has them yet
	 * (IP_FREEBIND): a stack's server listens on its networks' gateways,
	 * whose bridges come and go with their first and last container */
	bool freebind;
	/* sockets bound already, in place of binding listen's addresses here: a
	 * UDP and a listening TCP one per listen address (2 * n_listen; taken,
	 * also on failure). A rootless stack's server listens in the rootless
	 * network namespace, which the caller cannot enter itself
	 * (hutch_net_rootless_dns_sockets) */
	const int *listen_fds;
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

/* ---- bridge networks (net/network.c, net/link.c, net/nft.c; docs/network.md) ------
 * Rootful: a Linux bridge per network, a veth pair per container into a network
 * namespace prepared here (RUN/netns/ID, joined by path by the runtime), IPv4
 * addresses from 10.89.0.0/16, published ports and masquerading as nftables rules
 * in hutch's own table. net/ knows containers' network namespaces, ids, names and
 * addresses; never services or stacks. */

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

/* IPv6 (dual stack): a network's optional second subnet. */
struct hutch_cidr6 {
	uint8_t addr[16]; /* network order */
	int prefix;	  /* 0-128 */
};
#define HUTCH_CIDR6_LEN 50 /* "ffff:...:ffff/128" */
int hutch_cidr6_parse(const char *s, struct hutch_cidr6 *out, struct hutch_err **err);
void hutch_cidr6_format(const struct hutch_cidr6 *c, char buf[HUTCH_CIDR6_LEN]);
bool hutch_cidr6_overlap(const struct hutch_cidr6 *a, const struct hutch_cidr6 *b);
/* A ULA /64 (fdXX:XXXX:XXXX::/64) derived from the network's id that overlaps
 * none of taken (the host's IPv6 routes, other networks'; default routes are no
 * clash). */
int hutch_ipam_choose_subnet6(const char *id, const struct hutch_cidr6 *taken, size_t n_taken,
			      struct hutch_cidr6 *out, struct hutch_err **err);
/* The IPv6 address of the container whose IPv4 address is addr (in subnet): the
 * same offset into subnet6 (so ::1 is the gateway). buf: INET6_ADDRSTRLEN (46). */
void hutch_ipam_addr6(const struct hutch_cidr6 *subnet6, const struct hutch_cidr *subnet,
		      uint32_t addr, char buf[46]);

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
	/* -p [ADDR]:...: the host's IPv6 address host_ip6 only (all zero, [::]:
	 * every IPv6 address of the host's, none of its IPv4 ones); a network
	 * with IPv6 only. host_ip is 0. */
	bool ipv6;
	uint8_t host_ip6[16];
};
/* The message names the value and what is wrong with it. */
int hutch_port_parse(const char *arg, struct hutch_port_map *out, struct hutch_err **err);
#define HUTCH_PORT_FORMAT_LEN 96
/* "127.0.0.1:8080-8081:80-81/tcp", "[fd00::1]:8080:80/tcp" */
void hutch_port_format(const struct hutch_port_map *p, char buf[HUTCH_PORT_FORMAT_LEN]);
const char *hutch_port_proto_name(enum hutch_port_proto p);

/* ---- networks (net/network.c): DATA/networks/NAME, a lock for all of them ---- */

struct hutch_net_ctx {
	const char *data_root; /* DATA/networks/NAME/{network.json,members.json} */
	const char *run_root;  /* RUN/netns/ID: the containers' network namespaces */
	/* An unprivileged user's networks (net/rootless.c, docs/network.md): the
	 * bridges live in the user's rootless network namespace, made with the
	 * first container and gone with the last, with pasta for the way out and
	 * the published ports. */
	bool rootless;
};

struct hutch_net_member {
	char *container; /* id */
	char *name;	 /* container name, may be NULL */
	char **aliases;
	size_t n_aliases;
	char address[16];
	char address6[46]; /* "": the network has no IPv6 */
	char *key;	   /* stable-address key, may be NULL */
	struct hutch_port_map *ports;
	size_t n_ports;
};

struct hutch_net_info {
	char *name, *id;
	char bridge[16];
	char subnet[19], gateway[16], dns[16];
	bool internal;
	bool ipv6; /* dual stack: subnet6 and gateway6 too ("" when not) */
	char subnet6[HUTCH_CIDR6_LEN], gateway6[46];
	char *owner;	    /* "stack shop": whose network it is (NULL: the user's) */
	bool owner_running; /* the owner's process (a stack's supervisor) runs */
	char *created;	    /* RFC 3339 */
	char **dns_servers; /* its DNS server's upstreams (none: the host's resolvers) */
	size_t n_dns_servers;
	struct hutch_net_member *members;
	size_t n_members;
};
void hutch_net_info_free(struct hutch_net_info *info);
void hutch_net_info_list_free(struct hutch_net_info *list, size_t n);

/* subnet NULL: chosen (hutch_ipam_choose_subnet around the host's routes). The
 * name is Docker's rule ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64). ipv6: dual
 * stack, with subnet6 or a ULA /64 chosen (hutch_ipam_choose_subnet6). */
int hutch_network_create(const struct hutch_net_ctx *ctx, const char *name, const char *subnet,
			 bool internal, bool ipv6, const char *subnet6,
			 const char *const *dns_servers, size_t n_dns_servers,
			 struct hutch_net_info *out, struct hutch_err **err);
/* A missing network is HUTCH_NET_NOT_FOUND (message filled). */
#define HUTCH_NET_NOT_FOUND (-2)
int hutch_network_inspect(const struct hutch_net_ctx *ctx, const char *name,
			  struct hutch_net_info *out, struct hutch_err **err);
int hutch_network_list(const struct hutch_net_ctx *ctx, struct hutch_net_info **out, size_t *n,
		       struct hutch_err **err);
/* The network as it is on disk, without the lock or the gc: for a reader that
 * only wants a consistent copy (the file is replaced whole), as its DNS server. */
int hutch_network_peek(const struct hutch_net_ctx *ctx, const char *name,
		       struct hutch_net_info *out, struct hutch_err **err);
/* The directory whose network.json every change of the network's members replaces
 * whole (a rename): what a reader that follows them (its DNS server) watches. */
char *hutch_network_record_dir(const struct hutch_net_ctx *ctx, const char *name);
/* The lock every change to networks is made under: *fd to close to release it. */
int hutch_net_lock(const struct hutch_net_ctx *ctx, int *fd, struct hutch_err **err);
/* Refused while containers are attached (naming them); removes its bridge and
 * rules if any are left. */
int hutch_network_remove(const struct hutch_net_ctx *ctx, const char *name, struct hutch_err **err);
/* A network another part of hutch owns (owner "stack shop": a stack's), made
 * here or, when it exists with the same owner, taken over as it is (its
 * subnet, members and reservations kept; an explicit subnet or internal that
 * differs remakes it when nobody is on it, else is refused). The calling
 * process becomes its owner: `network rm` refuses it while that process runs,
 * and what a crashed owner left is recognisable by owner. A network of the
 * same name that is not owner's is refused. */
/* Dual stack when ipv6 (subnet6: NULL, a ULA /64 chosen; given, it implies
 * ipv6); IPv6 switched on or off, or another subnet6, remakes it as a changed
 * subnet does. */
int hutch_network_ensure_owned6(const struct hutch_net_ctx *ctx, const char *name,
				const char *subnet, bool internal, bool ipv6, const char *subnet6,
				const char *owner, struct hutch_net_info *out,
				struct hutch_err **err);
/* Remove owner's network: its members are detached first (the owner took its
 * containers down), then its bridge, rules and directory. Missing: 0. A
 * network of another owner is refused. */
int hutch_network_remove_owned(const struct hutch_net_ctx *ctx, const char *name, const char *owner,
			       struct hutch_err **err);
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
	/* the process that answers for the attachment until the container runs
	 * in it (a crash's leftovers are told by it): 0, the caller; a stack's
	 * supervisor names itself for the starters it forks */
	int attacher_pid;
};
struct hutch_net_attachment {
	char netns[4096]; /* give the spec this path as its network namespace */
	/* Rootless: netns is "", the container gets a network namespace of its own
	 * (a new one), made under this user namespace (hutch_runtime.userns_parent)
	 * and wired with hutch_net_wire once its process exists (from
	 * hutch_runtime.on_created), before any of it runs. */
	char userns[64];
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
/* Rootless, every attachment of the container (hutch_net_attach first): the
 * veths into the network namespace of pid, a process of the container's whose
 * user namespace is a child of attachment.userns (so the caller is a process
 * in that one: hutch after the clone). A stack supervisor does the same:
 * attach each network, create the container with runtime.userns_parent =
 * attachment.userns and on_created calling this; detach when it is gone. The
 * attaching process must be outside that user namespace (pasta and newuidmap
 * cannot be started from inside it), and the clone puts the process that
 * makes the container in it for good: a long-lived caller makes containers
 * from a child process of its own, or attaches from a process that never
 * made one. */
int hutch_net_wire(const struct hutch_net_ctx *ctx, const char *container, int pid,
		   struct hutch_err **err);
/* Undo every attachment of the container and remove its netns; the last
 * member of a network takes the bridge and its rules with it. Idempotent. */
int hutch_net_detach(const struct hutch_net_ctx *ctx, const char *container,
		     struct hutch_err **err);
/* The process whose life the container's attachments follow (pid and start time
 * as in /proc/PID/stat): its detached container's keeper, which detaches them
 * when the container exits. While it runs, gc needs no scan of /proc. */
int hutch_net_set_attacher(const struct hutch_net_ctx *ctx, const char *container, int pid,
			   uint64_t start, struct hutch_err **err);
/* Detach containers whose netns holds no process and whose attaching hutch is
 * gone (a crashed run or monitor), and rebuild the rules: what a crash left. */
int hutch_net_gc(const struct hutch_net_ctx *ctx, struct hutch_err **err);

/* OCI linux.netDevices (net/link.c): the interface ifname of this network
 * namespace moved into the one at netns_path (as "/proc/PID/ns/net"),
 * renamed newname in the same step (NULL: its name), with its IP addresses
 * (the kernel drops them in the move: read before, added back in there) and
 * its up state. A physical device goes back to the initial namespace when
 * that namespace goes; a virtual one (veth) goes with it. */
int hutch_net_link_move(const char *ifname, const char *newname, const char *netns_path,
			struct hutch_err **err);

/* Rootless: the user's rootless network namespace (net/rootless.c) made if it is
 * not there (it stays while a network whose owner runs is there: a stack's
 * supervisor), and for every addrs[i] ("IP:PORT") a UDP and a listening TCP
 * socket bound in it (IP_FREEBIND), fds[2i] and fds[2i+1]: a stack's DNS
 * server on its gateways, served by a caller that cannot enter the namespace
 * (the user namespace it would have to join is for good). *ns_id: which
 * namespace they are in (hutch_net_rootless_id). */
int hutch_net_rootless_dns_sockets(const struct hutch_net_ctx *ctx, const char *const *addrs,
				   size_t n, int *fds, uint64_t *ns_id, struct hutch_err **err);
/* The rootless network namespace's id now (0: there is none). */
uint64_t hutch_net_rootless_id(const struct hutch_net_ctx *ctx);
