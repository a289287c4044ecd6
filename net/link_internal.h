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

/* The bridge (made if missing): gateway/prefix on it, up. */
int net_bridge_ensure(const char *bridge, uint32_t gateway, int prefix, struct hutch_err **err);
int net_link_delete(const char *ifname, struct hutch_err **err); /* missing: fine */
bool net_link_exists(const char *ifname);
/* A veth pair: host_if in bridge, the peer as ifname in the netns at
 * netns_path, with address/prefix, up, a default route via gateway (0: none). */
int net_veth_attach(const char *bridge, const char *host_if, const char *netns_path,
		    const char *ifname, uint32_t address, int prefix, uint32_t gateway,
		    struct hutch_err **err);
/* Every IPv4 route of the host's (of every table), but those through hutch's
 * own bridges (prefixed "hbr-"). */
int net_host_routes(struct hutch_cidr **out, size_t *n, struct hutch_err **err);
/* /proc/sys/net/... = value, if not already. */
int net_sysctl_set(const char *path, const char *value, struct hutch_err **err);

/* nftables (net/nft.c): replace table ip hutch with ruleset (NULL or "": no table). */
int net_nft_apply(const char *ruleset, struct hutch_err **err);
/* Whether table ip hutch is in the kernel now: 1 yes, 0 no, -1 error. */
int net_nft_table_exists(struct hutch_err **err);
