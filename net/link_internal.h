/* net/: links, namespaces and rules (private to the module). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

/* A network namespace of its own bind-mounted at path (as `ip netns add`),
 * loopback up. An existing one is kept. */
int net_netns_create(const char *path, struct hutch_err **err);
/* Unmount and unlink; missing is fine. Its links go with the namespace. */
int net_netns_remove(const char *path, struct hutch_err **err);
/* The nsfs inode of the namespace at path (0: none). */
uint64_t net_netns_inode(const char *path);

/* The bridge (made if missing): gateway/prefix on it, up; mtu 0: the kernel's
 * default (1500). */
int net_bridge_ensure(const char *bridge, uint32_t gateway, int prefix, unsigned mtu,
		      struct hutch_err **err);
int net_link_delete(const char *ifname, struct hutch_err **err); /* missing: fine */
bool net_link_exists(const char *ifname);
/* A veth pair: host_if in bridge, the peer as ifname in the netns at
 * netns_path, with address/prefix, up, a default route via gateway (0: none);
 * both ends with mtu (0: 1500). */
int net_veth_attach(const char *bridge, const char *host_if, const char *netns_path,
		    const char *ifname, uint32_t address, int prefix, uint32_t gateway,
		    unsigned mtu, struct hutch_err **err);
/* Every IPv4 route of the host's (of every table), but those through hutch's
 * own bridges (prefixed "hbr-"). */
int net_host_routes(struct hutch_cidr **out, size_t *n, struct hutch_err **err);
/* IPv6 (dual stack): the host's IPv6 routes of the main table (link-local and
 * multicast left out), a bridge's gateway address ("fd..::1/64"), a container's
 * address in its namespace and, gateway not NULL, its IPv6 default route. */
int net_host_routes6(struct hutch_cidr6 **out, size_t *n, struct hutch_err **err);
int net_bridge_add6(const char *bridge, const char *gateway_cidr, struct hutch_err **err);
int net_veth_add6(const char *netns_path, const char *ifname, const char *cidr, const char *gateway,
		  struct hutch_err **err);
/* /proc/sys/net/... = value, if not already. */
int net_sysctl_set(const char *path, const char *value, struct hutch_err **err);

/* nftables (net/nft.c): replace table ip hutch with ruleset (NULL or "": no table). */
int net_nft_apply(const char *ruleset, struct hutch_err **err);
/* Whether table ip hutch is in the kernel now: 1 yes, 0 no, -1 error. */
int net_nft_table_exists(struct hutch_err **err);

/* network.c: the start time of pid (/proc/PID/stat field 22; 0: gone). */
uint64_t net_proc_start_time(int pid);
/* network.c: the process whose namespace's sockets are the host's (ports in
 * use, /proc/PID/net); 0: this one. Set in the rootless namespace's helper. */
extern int net_host_pid;

/* ---- the rootless network namespace (net/rootless.c) --------------------------- */
/* The MTU of the rootless namespace's bridges and veths: pasta's tap's. Every
 * link in there is virtual, and pasta's tap path (the outbound traffic, ports
 * reached from other hosts or the host's own non-loopback address) costs per
 * frame in pasta: at 1500 it carried a tenth of what it carries at 65520. */
#define NET_ROOTLESS_MTU 65520u
/* pasta's tap's IPv6 side in the namespace (a ULA /64 of its own, as the IPv4
 * side is link-local: the host's own addresses stay reachable through pasta,
 * which carries the outbound traffic masqueraded to TAP6_ADDR) */
#define NET_ROOTLESS_TAP6_NET  "fd68:7574:6368::/64"
#define NET_ROOTLESS_TAP6_ADDR "fd68:7574:6368::2"
#define NET_ROOTLESS_TAP6_GW   "fd68:7574:6368::1"
struct net_rootless {
	int holder, pasta;	    /* pids (pasta 0: not running) */
	char userns[64], netns[64]; /* /proc/HOLDER/ns/{user,net} */
};
/* 1 when the holder is alive (rl filled), else 0. */
int net_rootless_find(const struct hutch_net_ctx *ctx, struct net_rootless *rl);
/* The holder alive, made if need be (what a crash left is cleared first). */
int net_rootless_ensure(const struct hutch_net_ctx *ctx, struct net_rootless *rl,
			struct hutch_err **err);
/* pasta running with ports forwarded (started, or restarted when they changed). */
int net_rootless_pasta(const struct hutch_net_ctx *ctx, const struct net_rootless *rl,
		       const struct hutch_port_map *ports, size_t n, struct hutch_err **err);
/* pasta, the holder and their files gone (the namespace with them). */
void net_rootless_stop(const struct hutch_net_ctx *ctx);
/* fn(arg) in a child in the namespace (and its user namespace); its error back. */
/* fds[2i], fds[2i+1]: UDP and listening TCP sockets on addrs[i] ("IP:PORT",
 * IP_FREEBIND) made in the namespace by a child, passed back. */
int net_rootless_sockets(const struct net_rootless *rl, const char *const *addrs, size_t n,
			 int *fds, struct hutch_err **err);
int net_rootless_run(const struct net_rootless *rl, int (*fn)(void *arg, struct hutch_err **err),
		     void *arg, struct hutch_err **err);
