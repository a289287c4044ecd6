/* Links through rtnetlink (libnl-route): bridges, veth pairs, addresses, routes.
 * No `ip` commands: one netlink socket per namespace, made while in it. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "common/err.h"
#include "common/util.h"
#include "net/link_internal.h"

static void sock_freep(struct nl_sock **sk)
{
	if (*sk)
		nl_socket_free(*sk);
}
#define _cleanup_sock_ __attribute__((cleanup(sock_freep)))
static void link_putp(struct rtnl_link **l)
{
	if (*l)
		rtnl_link_put(*l);
}
#define _cleanup_link_ __attribute__((cleanup(link_putp)))
static void addr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}
#define _cleanup_nladdr_ __attribute__((cleanup(addr_putp)))

static int nl_fail(struct hutch_err **err, int nlerr, const char *what)
{
	return hutch_fail(err, 0, "%s: %s", what, nl_geterror(nlerr));
}

static int sock_open(struct nl_sock **out, struct hutch_err **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk)
		return hutch_fail(err, ENOMEM, "allocate a netlink socket");
	int r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(sk);
		return nl_fail(err, r, "connect to rtnetlink");
	}
	*out = sk;
	return 0;
}

/* A netlink socket in the namespace at path: sockets stay in the namespace
 * they were made in, so hutch steps in, makes it and steps back. */
static int sock_open_in(const char *netns_path, struct nl_sock **out, struct hutch_err **err)
{
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int target = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || target < 0)
		return hutch_fail_sys(err, "open the network namespace %s", netns_path);
	if (setns(target, CLONE_NEWNET) < 0)
		return hutch_fail_sys(err, "enter the network namespace %s", netns_path);
	int r = sock_open(out, err);
	if (setns(self, CLONE_NEWNET) < 0) {
		/* hutch would go on configuring the wrong namespace: stop here */
		fprintf(stderr, "hutch: cannot return to its own network namespace: %s\n",
			strerror(errno));
		abort();
	}
	return r;
}

/* link (as the kernel gave it) up, unless it is */
static int link_up(struct nl_sock *sk, struct rtnl_link *link, const char *ifname,
		   struct hutch_err **err)
{
	if (rtnl_link_get_flags(link) & IFF_UP)
		return 0;
	_cleanup_link_ struct rtnl_link *change = rtnl_link_alloc();
	rtnl_link_set_flags(change, IFF_UP);
	int r = rtnl_link_change(sk, link, change, 0);
	if (r < 0) {
		hutch_fail(err, 0, "bring %s up: %s", ifname, nl_geterror(r));
		return -1;
	}
	return 0;
}

static int link_set_up(struct nl_sock *sk, const char *ifname, struct hutch_err **err)
{
	_cleanup_link_ struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (r < 0)
		return nl_fail(err, r, ifname);
	return link_up(sk, link, ifname, err);
}

/* cidr ("ADDR/PREFIX" of family) on ifindex, replacing what is there. */
static int addr_add_cidr(struct nl_sock *sk, const char *ifname, int ifindex, int family,
			 const char *cidr, unsigned flags, struct hutch_err **err)
{
	_cleanup_nladdr_ struct nl_addr *local = NULL;
	if (nl_addr_parse(cidr, family, &local) < 0)
		return hutch_fail(err, 0, "bad %saddress %s", family == AF_INET6 ? "IPv6 " : "",
				  cidr);
	struct rtnl_addr *a = rtnl_addr_alloc();
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_local(a, local);
	if (flags)
		rtnl_addr_set_flags(a, flags);
	int r = rtnl_addr_add(sk, a, NLM_F_REPLACE);
	rtnl_addr_put(a);
	if (r < 0 && r != -NLE_EXIST)
		return hutch_fail(err, 0, "add address %s to %s: %s", cidr, ifname, nl_geterror(r));
	return 0;
}

static int addr_add_at(struct nl_sock *sk, const char *ifname, int ifindex, uint32_t address,
		       int prefix, struct hutch_err **err)
{
	char text[24], ip[16];
	hutch_ipv4_format(address, ip);
	snprintf(text, sizeof(text), "%s/%d", ip, prefix);
	return addr_add_cidr(sk, ifname, ifindex, AF_INET, text, 0, err);
}

static int addr_add(struct nl_sock *sk, const char *ifname, uint32_t address, int prefix,
		    struct hutch_err **err)
{
	_cleanup_link_ struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (r < 0)
		return nl_fail(err, r, ifname);
	return addr_add_at(sk, ifname, rtnl_link_get_ifindex(link), address, prefix, err);
}

static int default_route_add(struct nl_sock *sk, int ifindex, uint32_t gateway,
			     struct hutch_err **err)
{
	char gw[16];
	hutch_ipv4_format(gateway, gw);
	_cleanup_nladdr_ struct nl_addr *dst = NULL, *via = NULL;
	if (nl_addr_parse("0.0.0.0/0", AF_INET, &dst) < 0 || nl_addr_parse(gw, AF_INET, &via) < 0)
		return hutch_fail(err, 0, "bad gateway %s", gw);
	struct rtnl_route *route = rtnl_route_alloc();
	rtnl_route_set_family(route, AF_INET);
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_nh_set_gateway(nh, via);
	rtnl_route_add_nexthop(route, nh);
	int r = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_route_put(route);
	if (r < 0)
		return hutch_fail(err, 0, "add the default route via %s: %s", gw, nl_geterror(r));
	return 0;
}

int net_sysctl_set(const char *path, const char *value, struct hutch_err **err)
{
	char cur[32] = "";
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", path);
	ssize_t n = read(fd, cur, sizeof(cur) - 1);
	if (n > 0 && !strncmp(cur, value, strlen(value)) && cur[strlen(value)] == '\n')
		return 0;
	if (pwrite(fd, value, strlen(value), 0) < 0)
		return hutch_fail_sys(err, "write %s to %s", value, path);
	return 0;
}

int net_netns_create(const char *path, struct hutch_err **err)
{
	_cleanup_free_ char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	if (mkdir_p_at(AT_FDCWD, dir, 0700, err) < 0)
		return -1;
	if (net_netns_inode(path))
		return 0;
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0 && errno != EEXIST)
		return hutch_fail_sys(err, "create %s", path);
	if (fd >= 0)
		close(fd);
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return hutch_fail_sys(err, "open /proc/self/ns/net");
	/* hutch is single-threaded: step into a new namespace, pin it on the
	 * file, step back (what `ip netns add` does, without a child) */
	if (unshare(CLONE_NEWNET) < 0) {
		hutch_fail_sys(err, "create a network namespace");
		unlink(path);
		return -1;
	}
	int r = 0;
	if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0)
		r = hutch_fail_sys(err, "bind the network namespace to %s", path);
	if (setns(self, CLONE_NEWNET) < 0) {
		fprintf(stderr, "hutch: cannot return to its own network namespace: %s\n",
			strerror(errno));
		abort();
	}
	if (r < 0) {
		unlink(path);
		return -1;
	}
	_cleanup_sock_ struct nl_sock *sk = NULL;
	if (sock_open_in(path, &sk, err) < 0 || link_set_up(sk, "lo", err) < 0) {
		net_netns_remove(path, NULL);
		return -1;
	}
	return 0;
}

int net_netns_remove(const char *path, struct hutch_err **err)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return hutch_fail_sys(err, "unmount %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return hutch_fail_sys(err, "remove %s", path);
	/* the directory goes with the last one (ENOTEMPTY otherwise: fine) */
	_cleanup_free_ char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	(void)rmdir(dir);
	return 0;
}

uint64_t net_netns_inode(const char *path)
{
	struct stat st;
	/* an nsfs file (not the empty file under it) is on another device than
	 * its directory */
	struct stat dir;
	_cleanup_free_ char *d = xstrdup(path);
	*strrchr(d, '/') = '\0';
	if (stat(path, &st) < 0 || stat(d, &dir) < 0 || st.st_dev == dir.st_dev)
		return 0;
	return st.st_ino;
}

bool net_link_exists(const char *ifname)
{
	return if_nametoindex(ifname) != 0;
}

int net_link_delete(const char *ifname, struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *sk = NULL;
	if (sock_open(&sk, err) < 0)
		return -1;
	_cleanup_link_ struct rtnl_link *link = rtnl_link_alloc();
	rtnl_link_set_name(link, ifname);
	int r = rtnl_link_delete(sk, link);
	if (r < 0 && r != -NLE_NODEV && r != -NLE_OBJ_NOTFOUND)
		return hutch_fail(err, 0, "delete link %s: %s", ifname, nl_geterror(r));
	return 0;
}

int net_bridge_ensure(const char *bridge, uint32_t gateway, int prefix, unsigned mtu,
		      struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *sk = NULL;
	if (sock_open(&sk, err) < 0)
		return -1;
	if (!net_link_exists(bridge)) {
		/* a MAC address of its own, given at creation: else the bridge takes
		 * the lowest of its ports' and changes it when a container comes or
		 * goes, and the others' ARP entry for the gateway (their DNS server)
		 * points nowhere until it expires, seconds later. Locally
		 * administered, from the gateway's address: the same every time. */
		uint8_t mac[6] = {0x02,
				  0x68,
				  (uint8_t)(gateway >> 24),
				  (uint8_t)(gateway >> 16),
				  (uint8_t)(gateway >> 8),
				  (uint8_t)gateway};
		struct rtnl_link *l = rtnl_link_alloc();
		struct nl_addr *a = nl_addr_build(AF_LLC, mac, sizeof(mac));
		if (!l || !a || rtnl_link_set_type(l, "bridge") < 0) {
			rtnl_link_put(l);
			nl_addr_put(a);
			return hutch_fail(err, ENOMEM, "allocate bridge %s", bridge);
		}
		rtnl_link_set_name(l, bridge);
		rtnl_link_set_addr(l, a);
		if (mtu)
			rtnl_link_set_mtu(l, mtu);
		int r = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
		rtnl_link_put(l);
		nl_addr_put(a);
		if (r < 0 && r != -NLE_EXIST)
			return hutch_fail(err, 0, "create bridge %s: %s", bridge, nl_geterror(r));
	}
	/* route_localnet is not set here: the rules decide it per network (only
	 * bridges that carry a port published on the host's loopback), once the
	 * guard against CVE-2020-8558 is in the table */
	if (addr_add(sk, bridge, gateway, prefix, err) < 0 || link_set_up(sk, bridge, err) < 0)
		return -1;
	return 0;
}

/* The bridge port's hairpin mode (IFLA_BRPORT_MODE): a container reaching its
 * own published port through the host's address gets its packets back out of
 * the port they came in by. With br_netfilter (bridge-nf-call-iptables) the
 * DNAT happens while the frame is being bridged, and a bridge never sends a
 * frame back out of its ingress port unless the port is in hairpin mode. */
static int port_hairpin(struct nl_sock *sk, const char *host_if, struct hutch_err **err)
{
	int index = (int)if_nametoindex(host_if);
	if (!index)
		return hutch_fail_sys(err, "find veth %s", host_if);
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_SETLINK, 0);
	if (!msg)
		return hutch_fail(err, ENOMEM, "allocate a netlink message");
	struct ifinfomsg ifi = {.ifi_family = AF_BRIDGE, .ifi_index = index};
	struct nlattr *pi;
	int r = -NLE_NOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) == 0 &&
	    (pi = nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED)) &&
	    nla_put_u8(msg, IFLA_BRPORT_MODE, 1) == 0 && nla_nest_end(msg, pi) == 0)
		r = nl_send_sync(sk, msg); /* frees msg */
	else
		nlmsg_free(msg);
	if (r < 0)
		return hutch_fail(err, 0, "set hairpin mode on %s: %s", host_if, nl_geterror(r));
	return 0;
}

int net_veth_attach(const char *bridge, const char *host_if, const char *netns_path,
		    const char *ifname, uint32_t address, int prefix, uint32_t gateway,
		    unsigned mtu, struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *sk = NULL, *inner = NULL;
	if (sock_open(&sk, err) < 0 || sock_open_in(netns_path, &inner, err) < 0)
		return -1;
	_cleanup_close_ int nsfd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return hutch_fail_sys(err, "open %s", netns_path);
	int master = (int)if_nametoindex(bridge);
	if (!master)
		return hutch_fail(err, 0, "bridge %s is missing", bridge);
	/* made in place: the peer is born in the container's namespace under its
	 * final name (no clash with the host's eth0), the host end in the bridge */
	struct rtnl_link *veth = rtnl_link_veth_alloc();
	if (!veth)
		return hutch_fail(err, ENOMEM, "allocate a veth");
	rtnl_link_set_name(veth, host_if);
	rtnl_link_set_master(veth, master);
	rtnl_link_set_flags(veth, IFF_UP);
	struct rtnl_link *peer = rtnl_link_veth_get_peer(veth);
	rtnl_link_set_name(peer, ifname);
	rtnl_link_set_ns_fd(peer, nsfd);
	if (mtu) {
		rtnl_link_set_mtu(veth, mtu);
		rtnl_link_set_mtu(peer, mtu);
	}
	/* the container's MAC address from its IP address (as Docker's 02:42:IP):
	 * a container started again keeps its address, and the others' ARP
	 * entries for it stay right instead of pointing at a veth that is gone */
	uint8_t mac[6] = {0x02,
			  0x68,
			  (uint8_t)(address >> 24),
			  (uint8_t)(address >> 16),
			  (uint8_t)(address >> 8),
			  (uint8_t)address};
	struct nl_addr *lladdr = nl_addr_build(AF_LLC, mac, sizeof(mac));
	if (lladdr)
		rtnl_link_set_addr(peer, lladdr);
	int r = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
	if (r == -NLE_EXIST) {
		/* the container's last veth of that name, whose namespace went a
		 * moment ago (the kernel deletes the pair in its own time): a
		 * container started again at once is here before it is gone */
		net_link_delete(host_if, NULL);
		r = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
	}
	nl_addr_put(lladdr);
	rtnl_link_put(peer);
	rtnl_link_veth_release(veth);
	if (r < 0)
		return hutch_fail(err, 0, "create veth %s: %s", host_if, nl_geterror(r));
	if (port_hairpin(sk, host_if, err) < 0) {
		net_link_delete(host_if, NULL);
		return -1;
	}
	/* one look at the peer (its index) for the rest */
	_cleanup_link_ struct rtnl_link *link = NULL;
	r = rtnl_link_get_kernel(inner, 0, ifname, &link);
	if (r < 0 || link_up(inner, link, ifname, err) < 0 ||
	    addr_add_at(inner, ifname, rtnl_link_get_ifindex(link), address, prefix, err) < 0 ||
	    (gateway && default_route_add(inner, rtnl_link_get_ifindex(link), gateway, err) < 0)) {
		if (r < 0)
			nl_fail(err, r, ifname);
		net_link_delete(host_if, NULL);
		return -1;
	}
	return 0;
}

struct routes_acc {
	struct hutch_cidr *v;
	size_t n;
	struct nl_cache *links;
};

static void route_cb(struct nl_object *obj, void *arg)
{
	struct routes_acc *acc = arg;
	struct rtnl_route *r = (struct rtnl_route *)obj;
	if (rtnl_route_get_family(r) != AF_INET)
		return;
	struct nl_addr *dst = rtnl_route_get_dst(r);
	if (!dst)
		return;
	if (rtnl_route_get_nnexthops(r) > 0) {
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
		char name[IFNAMSIZ] = "";
		if (nh &&
		    rtnl_link_i2name(acc->links, rtnl_route_nh_get_ifindex(nh), name,
				     sizeof(name)) &&
		    !strncmp(name, "hbr-", 4))
			return;
	}
	uint32_t a = 0;
	if (nl_addr_get_len(dst) == 4)
		memcpy(&a, nl_addr_get_binary_addr(dst), 4);
	acc->v = xrealloc(acc->v, (acc->n + 1) * sizeof(*acc->v));
	acc->v[acc->n++] =
	    (struct hutch_cidr){.addr = ntohl(a), .prefix = (int)nl_addr_get_prefixlen(dst)};
}

int net_host_routes(struct hutch_cidr **out, size_t *n, struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *sk = NULL;
	if (sock_open(&sk, err) < 0)
		return -1;
	struct nl_cache *routes = NULL, *links = NULL;
	int r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (r < 0)
		return nl_fail(err, r, "list the host's links");
	r = rtnl_route_alloc_cache(sk, AF_INET, 0, &routes);
	if (r < 0) {
		nl_cache_free(links);
		return nl_fail(err, r, "list the host's routes");
	}
	struct routes_acc acc = {.links = links};
	nl_cache_foreach(routes, route_cb, &acc);
	nl_cache_free(routes);
	nl_cache_free(links);
	*out = acc.v;
	*n = acc.n;
	return 0;
}

/* ---- IPv6 (dual stack) ---------------------------------------------------------- */

struct routes6_acc {
	struct hutch_cidr6 *v;
	size_t n;
};

static void route6_cb(struct nl_object *obj, void *arg)
{
	struct routes6_acc *acc = arg;
	struct rtnl_route *r = (struct rtnl_route *)obj;
	struct nl_addr *dst = rtnl_route_get_dst(r);
	if (rtnl_route_get_family(r) != AF_INET6 || !dst || nl_addr_get_len(dst) != 16 ||
	    rtnl_route_get_table(r) != RT_TABLE_MAIN)
		return;
	/* fe80::/64 and multicast are on every link: they clash with no ULA */
	const uint8_t *a = nl_addr_get_binary_addr(dst);
	if (a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
		return;
	acc->v = xrealloc(acc->v, (acc->n + 1) * sizeof(*acc->v));
	acc->v[acc->n] = (struct hutch_cidr6){.prefix = (int)nl_addr_get_prefixlen(dst)};
	memcpy(acc->v[acc->n++].addr, a, 16);
}

int net_host_routes6(struct hutch_cidr6 **out, size_t *n, struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *sk = NULL;
	if (sock_open(&sk, err) < 0)
		return -1;
	struct nl_cache *routes = NULL;
	int r = rtnl_route_alloc_cache(sk, AF_INET6, 0, &routes);
	if (r < 0)
		return nl_fail(err, r, "list the host's IPv6 routes");
	struct routes6_acc acc = {0};
	nl_cache_foreach(routes, route6_cb, &acc);
	nl_cache_free(routes);
	*out = acc.v;
	*n = acc.n;
	return 0;
}

/* An IPv6 address on ifindex, without duplicate address detection: the
 * addresses are hutch's to hand out, and a tentative one would leave the
 * container without IPv6 for its first second. */
static int addr6_add_at(struct nl_sock *sk, const char *ifname, int ifindex, const char *cidr,
			struct hutch_err **err)
{
	return addr_add_cidr(sk, ifname, ifindex, AF_INET6, cidr, IFA_F_NODAD, err);
}

int net_bridge_add6(const char *bridge, const char *gateway_cidr, struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *sk = NULL;
	if (sock_open(&sk, err) < 0)
		return -1;
	int index = (int)if_nametoindex(bridge);
	if (!index)
		return hutch_fail(err, 0, "bridge %s is missing", bridge);
	return addr6_add_at(sk, bridge, index, gateway_cidr, err);
}

int net_veth_add6(const char *netns_path, const char *ifname, const char *cidr, const char *gateway,
		  struct hutch_err **err)
{
	_cleanup_sock_ struct nl_sock *inner = NULL;
	if (sock_open_in(netns_path, &inner, err) < 0)
		return -1;
	_cleanup_link_ struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(inner, 0, ifname, &link);
	if (r < 0)
		return nl_fail(err, r, ifname);
	int index = rtnl_link_get_ifindex(link);
	if (addr6_add_at(inner, ifname, index, cidr, err) < 0)
		return -1;
	if (!gateway)
		return 0;
	_cleanup_nladdr_ struct nl_addr *dst = NULL, *via = NULL;
	if (nl_addr_parse("::/0", AF_INET6, &dst) < 0 || nl_addr_parse(gateway, AF_INET6, &via) < 0)
		return hutch_fail(err, 0, "bad IPv6 gateway %s", gateway);
	struct rtnl_route *route = rtnl_route_alloc();
	rtnl_route_set_family(route, AF_INET6);
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_ifindex(nh, index);
	rtnl_route_nh_set_gateway(nh, via);
	rtnl_route_add_nexthop(route, nh);
	r = rtnl_route_add(inner, route, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_route_put(route);
	if (r < 0)
		return hutch_fail(err, 0, "add the IPv6 default route via %s: %s", gateway,
				  nl_geterror(r));
	return 0;
}

/* ---- OCI linux.netDevices ---------------------------------------------------------- */

struct addr_acc {
	int ifindex;
	struct rtnl_addr **v;
	size_t n;
};

/* An address of the device to add back after the move: what it was given
 * (address, prefix, peer, broadcast, scope), none of what the kernel makes
 * itself (IPv6 link-local) or its label (the old name's) */
static void addr_keep_cb(struct nl_object *obj, void *arg)
{
	struct addr_acc *acc = arg;
	struct rtnl_addr *a = (struct rtnl_addr *)obj;
	if (rtnl_addr_get_ifindex(a) != acc->ifindex)
		return;
	int family = rtnl_addr_get_family(a);
	if (family != AF_INET && (family != AF_INET6 || rtnl_addr_get_scope(a) == RT_SCOPE_LINK))
		return;
	struct rtnl_addr *k = rtnl_addr_alloc();
	if (!k)
		return;
	rtnl_addr_set_family(k, family);
	rtnl_addr_set_local(k, rtnl_addr_get_local(a));
	rtnl_addr_set_prefixlen(k, rtnl_addr_get_prefixlen(a));
	rtnl_addr_set_scope(k, rtnl_addr_get_scope(a));
	if (rtnl_addr_get_peer(a))
		rtnl_addr_set_peer(k, rtnl_addr_get_peer(a));
	if (family == AF_INET && rtnl_addr_get_broadcast(a))
		rtnl_addr_set_broadcast(k, rtnl_addr_get_broadcast(a));
	rtnl_addr_set_flags(k, rtnl_addr_get_flags(a) & (IFA_F_NOPREFIXROUTE | IFA_F_NODAD));
	acc->v = xrealloc(acc->v, (acc->n + 1) * sizeof(*acc->v));
	acc->v[acc->n++] = k;
}

int hutch_net_link_move(const char *ifname, const char *newname, const char *netns_path,
			struct hutch_err **err)
{
	const char *name = newname ? newname : ifname;
	_cleanup_sock_ struct nl_sock *sk = NULL, *inner = NULL;
	if (sock_open(&sk, err) < 0 || sock_open_in(netns_path, &inner, err) < 0)
		return -1;
	_cleanup_close_ int nsfd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return hutch_fail_sys(err, "open %s", netns_path);
	_cleanup_link_ struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sk, 0, ifname, &link);
	if (r < 0)
		return hutch_fail(err, 0, "no network interface %s here: %s", ifname,
				  nl_geterror(r));
	bool up = rtnl_link_get_flags(link) & IFF_UP;
	struct addr_acc acc = {.ifindex = rtnl_link_get_ifindex(link)};
	struct nl_cache *cache = NULL;
	r = rtnl_addr_alloc_cache(sk, &cache);
	if (r < 0)
		return nl_fail(err, r, "read the addresses");
	nl_cache_foreach(cache, addr_keep_cb, &acc);
	nl_cache_free(cache);

	int ret = -1;
	_cleanup_link_ struct rtnl_link *moved = NULL;
	/* renamed in the move itself (the kernel takes IFLA_IFNAME with the
	 * namespace): the new name never meets one of this namespace's */
	_cleanup_link_ struct rtnl_link *change = rtnl_link_alloc();
	rtnl_link_set_ns_fd(change, nsfd);
	if (strcmp(name, ifname))
		rtnl_link_set_name(change, name);
	r = rtnl_link_change(sk, link, change, 0);
	if (r < 0) {
		_cleanup_free_ char *from = printable(ifname, strlen(ifname)),
				    *to = printable(name, strlen(name));
		hutch_fail(err, 0, "move %s into the container's network namespace as %s: %s", from,
			   to, nl_geterror(r));
		goto out;
	}
	r = rtnl_link_get_kernel(inner, 0, name, &moved);
	if (r < 0) {
		nl_fail(err, r, name);
		goto out;
	}
	/* up first: an IPv6 address is kept only on a device that is up */
	if (up && link_up(inner, moved, name, err) < 0)
		goto out;
	for (size_t i = 0; i < acc.n; i++) {
		rtnl_addr_set_ifindex(acc.v[i], rtnl_link_get_ifindex(moved));
		r = rtnl_addr_add(inner, acc.v[i], 0);
		if (r < 0 && r != -NLE_EXIST) {
			char text[INET6_ADDRSTRLEN + 8];
			nl_addr2str(rtnl_addr_get_local(acc.v[i]), text, sizeof(text));
			hutch_fail(err, 0, "add address %s back to %s: %s", text, name,
				   nl_geterror(r));
			goto out;
		}
	}
	ret = 0;
out:
	for (size_t i = 0; i < acc.n; i++)
		rtnl_addr_put(acc.v[i]);
	free(acc.v);
	return ret;
}
