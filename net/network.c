/* Networks on disk and containers on them: DATA/networks/NAME/network.json (what
 * the network is) and members.json (who is on it, and the address pool with its
 * key reservations), all under one lock (DATA/networks/.lock) because a subnet
 * is chosen against every other network and the nft table is one for all. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "net/link_internal.h"
#include "net/net.h"

struct member {
	char *container, *name, *key;
	char **aliases;
	size_t n_aliases;
	uint32_t addr;
	char ifname[16], veth[16];
	struct hutch_port_map *ports;
	size_t n_ports;
	int attacher_pid;
	uint64_t attacher_start;
	/* rootless: the container's own namespace, once wired (net/rootless.c) */
	uint64_t netns_ino;
	bool default_route;
};

struct netdef {
	char *name, *id, *created;
	char bridge[16];
	struct hutch_cidr subnet;
	bool internal;
	/* dual stack: an IPv6 subnet too, each member's address in it at the same
	 * offset as its IPv4 one (hutch_ipam_addr6) */
	bool ipv6;
	struct hutch_cidr6 subnet6;
	char *owner; /* "stack shop": another part of hutch's (NULL: the user's) */
	int owner_pid;
	uint64_t owner_start;
	char **dns_servers; /* upstreams of its DNS server (none: the host's) */
	size_t n_dns_servers;
	struct hutch_ipam_pool pool;
	struct member *members;
	size_t n_members;
};

static void member_clear(struct member *m)
{
	free(m->container);
	free(m->name);
	free(m->key);
	for (size_t i = 0; i < m->n_aliases; i++)
		free(m->aliases[i]);
	free(m->aliases);
	free(m->ports);
	*m = (struct member){0};
}

static void netdef_clear(struct netdef *d)
{
	free(d->name);
	free(d->id);
	free(d->created);
	free(d->owner);
	for (size_t i = 0; i < d->n_dns_servers; i++)
		free(d->dns_servers[i]);
	free(d->dns_servers);
	hutch_ipam_pool_clear(&d->pool);
	for (size_t i = 0; i < d->n_members; i++)
		member_clear(&d->members[i]);
	free(d->members);
	*d = (struct netdef){0};
}

static void netdefs_free(struct netdef *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		netdef_clear(&v[i]);
	free(v);
}

static char *nets_dir(const struct hutch_net_ctx *ctx)
{
	return xasprintf("%s/networks", ctx->data_root);
}

/* The record as the last attach or detach left it: RUN/networks/NAME/network.json.
 * Members and addresses change with every container, and RUN is a tmpfs (/run/hutch):
 * replacing a file there costs no disk write, where ext4 starts writing a file renamed
 * over another (auto_da_alloc, 0.1-0.5 ms of every `run --network`). DATA's copy is
 * written when the network is made, durably: what a reboot (which takes RUN, and the
 * containers' namespaces with it) leaves is the network as made, no member. */
static char *state_dir(const struct hutch_net_ctx *ctx, const char *name)
{
	return xasprintf("%s/networks/%s", ctx->run_root, name);
}

char *hutch_network_record_dir(const struct hutch_net_ctx *ctx, const char *name)
{
	return state_dir(ctx, name);
}

static char *netns_path(const struct hutch_net_ctx *ctx, const char *container)
{
	return xasprintf("%s/netns/%s", ctx->run_root, container);
}

static bool net_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

/* ---- the lock ------------------------------------------------------------------ */

static int lock_networks(const struct hutch_net_ctx *ctx, int *out, struct hutch_err **err)
{
	_cleanup_free_ char *dir = nets_dir(ctx);
	if (mkdir_p_at(AT_FDCWD, dir, 0700, err) < 0)
		return -1;
	_cleanup_free_ char *p = xasprintf("%s/.lock", dir);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", p);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return hutch_fail_sys(err, "lock %s", p);
		}
	}
	*out = fd;
	return 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		   ? json_object_get_string(v)
		   : NULL;
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static uint32_t jaddr(struct json_object *o, const char *key)
{
	const char *s = jstr(o, key);
	struct in_addr a;
	return s && inet_pton(AF_INET, s, &a) == 1 ? ntohl(a.s_addr) : 0;
}

static struct json_object *jaddr_new(uint32_t addr)
{
	char b[16];
	hutch_ipv4_format(addr, b);
	return json_object_new_string(b);
}

static struct json_object *ports_to_json(const struct hutch_port_map *p, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "host_ip", jaddr_new(p[i].host_ip));
		if (p[i].ipv6) {
			char a6[INET6_ADDRSTRLEN];
			inet_ntop(AF_INET6, p[i].host_ip6, a6, sizeof(a6));
			json_object_object_add(o, "host_ip6", json_object_new_string(a6));
		}
		json_object_object_add(o, "host_port", json_object_new_int(p[i].host_port));
		json_object_object_add(o, "container_port",
				       json_object_new_int(p[i].container_port));
		json_object_object_add(o, "count", json_object_new_int(p[i].count));
		json_object_object_add(o, "protocol",
				       json_object_new_string(hutch_port_proto_name(p[i].proto)));
		json_object_array_add(a, o);
	}
	return a;
}

static void ports_from_json(struct json_object *a, struct hutch_port_map **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!a || !json_object_is_type(a, json_type_array))
		return;
	size_t len = json_object_array_length(a);
	*out = xcalloc(len + 1, sizeof(**out));
	for (size_t i = 0; i < len; i++) {
		struct json_object *o = json_object_array_get_idx(a, i);
		const char *proto = jstr(o, "protocol");
		(*out)[i] = (struct hutch_port_map){
		    .host_ip = jaddr(o, "host_ip"),
		    .host_port = (uint16_t)jint(o, "host_port"),
		    .container_port = (uint16_t)jint(o, "container_port"),
		    .count = (uint16_t)jint(o, "count"),
		    .proto = proto && !strcmp(proto, "udp") ? HUTCH_PORT_UDP : HUTCH_PORT_TCP};
		const char *a6 = jstr(o, "host_ip6");
		if (a6 && inet_pton(AF_INET6, a6, (*out)[i].host_ip6) == 1)
			(*out)[i].ipv6 = true;
	}
	*n = len;
}

/* durable: fsync'ed (a new network); else only never torn: members and
 * addresses lost to a crash are what gc repairs anyway. */
static int save_net_as(const struct hutch_net_ctx *ctx, const struct netdef *d, bool durable,
		       struct hutch_err **err)
{
	char sub[19];
	hutch_cidr_format(&d->subnet, sub);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "id", json_object_new_string(d->id));
	json_object_object_add(o, "bridge", json_object_new_string(d->bridge));
	json_object_object_add(o, "subnet", json_object_new_string(sub));
	json_object_object_add(o, "internal", json_object_new_boolean(d->internal));
	if (d->ipv6) {
		char sub6[HUTCH_CIDR6_LEN];
		hutch_cidr6_format(&d->subnet6, sub6);
		json_object_object_add(o, "subnet6", json_object_new_string(sub6));
	}
	json_object_object_add(o, "created", json_object_new_string(d->created));
	if (d->owner) {
		json_object_object_add(o, "owner", json_object_new_string(d->owner));
		json_object_object_add(o, "owner_pid", json_object_new_int(d->owner_pid));
		json_object_object_add(o, "owner_start",
				       json_object_new_int64((int64_t)d->owner_start));
	}
	if (d->n_dns_servers) {
		struct json_object *up = json_object_new_array();
		for (size_t i = 0; i < d->n_dns_servers; i++)
			json_object_array_add(up, json_object_new_string(d->dns_servers[i]));
		json_object_object_add(o, "dns_servers", up);
	}
	struct json_object *pool = json_object_new_array();
	for (size_t i = 0; i < d->pool.n; i++) {
		const struct hutch_ipam_entry *e = &d->pool.entries[i];
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "address", jaddr_new(e->addr));
		if (e->key)
			json_object_object_add(x, "key", json_object_new_string(e->key));
		if (e->owner)
			json_object_object_add(x, "owner", json_object_new_string(e->owner));
		json_object_array_add(pool, x);
	}
	json_object_object_add(o, "addresses", pool);
	struct json_object *ms = json_object_new_array();
	for (size_t i = 0; i < d->n_members; i++) {
		const struct member *m = &d->members[i];
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "container", json_object_new_string(m->container));
		if (m->name)
			json_object_object_add(x, "name", json_object_new_string(m->name));
		if (m->key)
			json_object_object_add(x, "key", json_object_new_string(m->key));
		struct json_object *al = json_object_new_array();
		for (size_t k = 0; k < m->n_aliases; k++)
			json_object_array_add(al, json_object_new_string(m->aliases[k]));
		json_object_object_add(x, "aliases", al);
		json_object_object_add(x, "address", jaddr_new(m->addr));
		json_object_object_add(x, "ifname", json_object_new_string(m->ifname));
		json_object_object_add(x, "veth", json_object_new_string(m->veth));
		json_object_object_add(x, "ports", ports_to_json(m->ports, m->n_ports));
		json_object_object_add(x, "attacher_pid", json_object_new_int(m->attacher_pid));
		json_object_object_add(x, "attacher_start",
				       json_object_new_int64((int64_t)m->attacher_start));
		if (m->netns_ino)
			json_object_object_add(x, "netns_inode",
					       json_object_new_int64((int64_t)m->netns_ino));
		json_object_object_add(x, "default_route",
				       json_object_new_boolean(m->default_route));
		json_object_array_add(ms, x);
	}
	json_object_object_add(o, "members", ms);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	_cleanup_free_ char *dir = durable ? xasprintf("%s/networks/%s", ctx->data_root, d->name)
					   : state_dir(ctx, d->name);
	_cleanup_free_ char *path = xasprintf("%s/network.json", dir);
	int r = mkdir_p_at(AT_FDCWD, dir, 0700, err);
	if (r == 0)
		r = durable ? write_file_atomic(AT_FDCWD, path, text, strlen(text), err)
			    : write_file_replace(AT_FDCWD, path, text, strlen(text), err);
	json_object_put(o);
	if (r == 0 && durable) {
		/* DATA's copy is the record now: RUN's goes (one of a network of the
		 * same name that was removed, too) */
		_cleanup_free_ char *state = state_dir(ctx, d->name);
		_cleanup_free_ char *old = xasprintf("%s/network.json", state);
		if (unlink(old) < 0 && errno != ENOENT)
			r = hutch_fail_sys(err, "remove %s", old);
	}
	return r;
}

static int save_net(const struct hutch_net_ctx *ctx, const struct netdef *d, struct hutch_err **err)
{
	return save_net_as(ctx, d, false, err);
}

static int load_net(const struct hutch_net_ctx *ctx, const char *name, struct netdef *d,
		    struct hutch_err **err)
{
	*d = (struct netdef){0};
	if (!net_name_valid(name)) {
		/* never a path: "../x" names no network */
		_cleanup_free_ char *shown = printable(name, strlen(name));
		hutch_fail(
		    err, 0,
		    "invalid network name '%s': use letters, digits and _.- (starting with a "
		    "letter or digit, at most 64)",
		    shown);
		return HUTCH_NET_NOT_FOUND;
	}
	_cleanup_free_ char *path = xasprintf("%s/networks/%s/network.json", ctx->data_root, name);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		_cleanup_free_ char *shown = printable(name, strlen(name));
		hutch_fail(err, 0,
			   "network '%s' not found (see 'hutch network ls'; create it with "
			   "'hutch network create %s')",
			   shown, shown);
		return HUTCH_NET_NOT_FOUND;
	}
	/* the record as the last change left it (RUN), else as it was made (DATA) */
	_cleanup_free_ char *state_d = state_dir(ctx, name);
	_cleanup_free_ char *state = xasprintf("%s/network.json", state_d);
	bool from_state = read_file_at(AT_FDCWD, state, &text, &len, NULL) == 0;
again:
	if (!from_state && read_file_at(AT_FDCWD, path, &text, &len, err) < 0)
		return -1;
	struct json_object *o = json_tokener_parse(text);
	const char *sub = o ? jstr(o, "subnet") : NULL;
	if (!o || !jstr(o, "name") || strcmp(jstr(o, "name"), name) || !jstr(o, "id") ||
	    !jstr(o, "bridge") || strncmp(jstr(o, "bridge"), "hbr-", 4) || !sub ||
	    hutch_cidr_parse(sub, &d->subnet, NULL) < 0) {
		json_object_put(o);
		free(steal_ptr(text));
		if (from_state) { /* torn by a crash of the machine where RUN is no tmpfs */
			from_state = false;
			goto again;
		}
		return hutch_fail(err, 0, "%s is damaged: remove the network's directory", path);
	}
	d->name = xstrdup(jstr(o, "name"));
	d->id = xstrdup(jstr(o, "id"));
	snprintf(d->bridge, sizeof(d->bridge), "%s", jstr(o, "bridge"));
	d->created = xstrdup(jstr(o, "created") ? jstr(o, "created") : "");
	struct json_object *v;
	d->internal = json_object_object_get_ex(o, "internal", &v) && json_object_get_boolean(v);
	d->ipv6 =
	    jstr(o, "subnet6") && hutch_cidr6_parse(jstr(o, "subnet6"), &d->subnet6, NULL) == 0;
	if (jstr(o, "owner")) {
		d->owner = xstrdup(jstr(o, "owner"));
		d->owner_pid = (int)jint(o, "owner_pid");
		d->owner_start = (uint64_t)jint(o, "owner_start");
	}
	if (json_object_object_get_ex(o, "dns_servers", &v) &&
	    json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		d->dns_servers = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			const char *up = json_object_get_string(json_object_array_get_idx(v, i));
			if (up)
				d->dns_servers[d->n_dns_servers++] = xstrdup(up);
		}
	}
	d->pool.subnet = d->subnet;
	if (json_object_object_get_ex(o, "addresses", &v) &&
	    json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		d->pool.entries = xcalloc(n + 1, sizeof(*d->pool.entries));
		for (size_t i = 0; i < n; i++) {
			struct json_object *x = json_object_array_get_idx(v, i);
			const char *key = jstr(x, "key"), *owner = jstr(x, "owner");
			d->pool.entries[d->pool.n++] =
			    (struct hutch_ipam_entry){.addr = jaddr(x, "address"),
						      .key = key ? xstrdup(key) : NULL,
						      .owner = owner ? xstrdup(owner) : NULL};
		}
	}
	if (json_object_object_get_ex(o, "members", &v) &&
	    json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		d->members = xcalloc(n + 1, sizeof(*d->members));
		for (size_t i = 0; i < n; i++) {
			struct json_object *x = json_object_array_get_idx(v, i), *al, *ports = NULL;
			if (!jstr(x, "container"))
				continue;
			struct member *m = &d->members[d->n_members++];
			m->container = xstrdup(jstr(x, "container"));
			m->name = jstr(x, "name") ? xstrdup(jstr(x, "name")) : NULL;
			m->key = jstr(x, "key") ? xstrdup(jstr(x, "key")) : NULL;
			if (json_object_object_get_ex(x, "aliases", &al) &&
			    json_object_is_type(al, json_type_array)) {
				size_t na = json_object_array_length(al);
				m->aliases = xcalloc(na + 1, sizeof(char *));
				for (size_t k = 0; k < na; k++) {
					const char *s = json_object_get_string(
					    json_object_array_get_idx(al, k));
					if (s)
						m->aliases[m->n_aliases++] = xstrdup(s);
				}
			}
			m->addr = jaddr(x, "address");
			snprintf(m->ifname, sizeof(m->ifname), "%s",
				 jstr(x, "ifname") ? jstr(x, "ifname") : "eth0");
			snprintf(m->veth, sizeof(m->veth), "%s",
				 jstr(x, "veth") ? jstr(x, "veth") : "");
			json_object_object_get_ex(x, "ports", &ports);
			ports_from_json(ports, &m->ports, &m->n_ports);
			m->attacher_pid = (int)jint(x, "attacher_pid");
			m->attacher_start = (uint64_t)jint(x, "attacher_start");
			m->netns_ino = (uint64_t)jint(x, "netns_inode");
			struct json_object *dr;
			m->default_route = json_object_object_get_ex(x, "default_route", &dr) &&
					   json_object_get_boolean(dr);
		}
	}
	json_object_put(o);
	return 0;
}

/* Every network, sorted by name (a damaged one is skipped). */
static int load_all(const struct hutch_net_ctx *ctx, struct netdef **out, size_t *n,
		    struct hutch_err **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_free_ char *dir = nets_dir(ctx);
	struct dirent **names = NULL;
	int k = scandir(dir, &names, NULL, alphasort);
	if (k < 0)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "list %s", dir);
	struct netdef *v = xcalloc((size_t)k + 1, sizeof(*v));
	size_t got = 0;
	for (int i = 0; i < k; i++) {
		if (names[i]->d_name[0] != '.' &&
		    load_net(ctx, names[i]->d_name, &v[got], NULL) == 0)
			got++;
		free(names[i]);
	}
	free(names);
	*out = v;
	*n = got;
	return 0;
}

/* ---- processes ----------------------------------------------------------------- */

int net_host_pid;

uint64_t net_proc_start_time(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0)
		return 0;
	/* after "(comm)", which may hold spaces: field 22 is starttime */
	char *p = strrchr(text, ')');
	if (!p)
		return 0;
	p++; /* the space before field 3 */
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static bool zombie(int pid);

static bool attacher_alive(const struct member *m)
{
	return m->attacher_pid > 0 && m->attacher_start &&
	       net_proc_start_time(m->attacher_pid) == m->attacher_start &&
	       !zombie(m->attacher_pid);
}

/* A zombie is no owner: a supervisor killed whose parent does not reap it
 * (a machine whose pid 1 does not) still has its start time in /proc. */
static bool zombie(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0)
		return true;
	const char *p = strrchr(text, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

static bool owner_alive(const struct netdef *d)
{
	return d->owner && d->owner_pid > 0 && d->owner_start &&
	       net_proc_start_time(d->owner_pid) == d->owner_start && !zombie(d->owner_pid);
}

/* The network namespaces some process is in (their nsfs inodes). */
struct inode_set {
	uint64_t *v;
	size_t n;
};

static void netns_in_use(struct inode_set *s)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/proc/%.200s/ns/net", e->d_name);
		struct stat st;
		if (stat(path, &st) < 0)
			continue;
		s->v = xrealloc(s->v, (s->n + 1) * sizeof(uint64_t));
		s->v[s->n++] = st.st_ino;
	}
	closedir(d);
}

static bool inode_in(const struct inode_set *s, uint64_t ino)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == ino)
			return true;
	return false;
}

/* ---- ports in use -------------------------------------------------------------- */

/* The pid and command of the process holding socket inode ino ("" if unseen). */
static void socket_holder(unsigned long ino, char *buf, size_t len)
{
	buf[0] = '\0';
	char want[64];
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while (!buf[0] && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char fdpath[300];
		snprintf(fdpath, sizeof(fdpath), "/proc/%.200s/fd", e->d_name);
		DIR *fds = opendir(fdpath);
		if (!fds)
			continue;
		struct dirent *f;
		while ((f = readdir(fds))) {
			char lp[600], target[64];
			snprintf(lp, sizeof(lp), "%s/%.200s", fdpath, f->d_name);
			ssize_t n = readlink(lp, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strcmp(target, want))
				continue;
			char cp[300], comm[64] = "?";
			snprintf(cp, sizeof(cp), "/proc/%.200s/comm", e->d_name);
			FILE *cf = fopen(cp, "re");
			if (cf) {
				if (fgets(comm, sizeof(comm), cf))
					comm[strcspn(comm, "\n")] = '\0';
				fclose(cf);
			}
			_cleanup_free_ char *shown = printable(comm, strlen(comm));
			snprintf(buf, len, "pid %.20s (%.100s)", e->d_name, shown);
			break;
		}
		closedir(fds);
	}
	closedir(d);
}

/* A socket of the host's bound to port (listening, for TCP) on an address
 * that covers ip (0: any). Returns its inode, 0 if none. */
/* The socket of the host's that has port (its inode; 0: none): for an IPv4
 * port (p's host_ip, 0: any) one of either family (a dual stack IPv6 socket
 * on [::] takes IPv4's port too), for an IPv6 one an IPv6 socket. */
static unsigned long port_bound(const struct hutch_port_map *p, uint16_t port)
{
	const char *names[2] = {p->proto == HUTCH_PORT_UDP ? "udp" : "tcp",
				p->proto == HUTCH_PORT_UDP ? "udp6" : "tcp6"};
	static const uint8_t any6[16];
	bool any_ip6 = p->ipv6 && !memcmp(p->host_ip6, any6, 16);
	for (int f = p->ipv6 ? 1 : 0; f < 2; f++) {
		char file[64];
		snprintf(file, sizeof(file), "/proc/%d/net/%s",
			 net_host_pid ? net_host_pid : getpid(), names[f]);
		FILE *fp = fopen(file, "re");
		if (!fp)
			continue;
		char line[512];
		(void)!fgets(line, sizeof(line), fp);
		while (fgets(line, sizeof(line), fp)) {
			char local[64];
			unsigned state;
			unsigned long ino;
			if (sscanf(line, " %*d: %63s %*s %x %*s %*s %*s %*s %*s %lu", local, &state,
				   &ino) != 3)
				continue;
			char *colon = strrchr(local, ':');
			if (!colon || strtoul(colon + 1, NULL, 16) != port)
				continue;
			if (p->proto == HUTCH_PORT_TCP && state != 0x0A) /* LISTEN */
				continue;
			*colon = '\0';
			bool any = strspn(local, "0") == strlen(local);
			if (f == 0 && !any && p->host_ip) {
				uint32_t a = (uint32_t)strtoul(local, NULL, 16); /* little-endian */
				if (ntohl(a) != p->host_ip)
					continue;
			}
			if (f == 1 && !any && !any_ip6 && p->ipv6 && strlen(local) == 32) {
				/* four 32-bit words, each in the host's byte order */
				uint8_t a6[16];
				for (int w = 0; w < 4; w++) {
					char word[9];
					memcpy(word, local + 8 * w, 8);
					word[8] = '\0';
					uint32_t v = (uint32_t)strtoul(word, NULL, 16);
					memcpy(a6 + 4 * w, &v, 4);
				}
				if (memcmp(a6, p->host_ip6, 16))
					continue;
			}
			fclose(fp);
			return ino ? ino : 1;
		}
		fclose(fp);
	}
	return 0;
}

/* Whether two published ports could take the same packets: the same
 * protocol and ports, on addresses that meet (IPv4's every address is IPv6's
 * too on a dual stack network). */
static bool ranges_meet(const struct hutch_port_map *a, const struct hutch_port_map *b)
{
	static const uint8_t any6[16];
	if (a->proto != b->proto || a->host_port >= b->host_port + b->count ||
	    b->host_port >= a->host_port + a->count)
		return false;
	if (a->ipv6 && b->ipv6)
		return !memcmp(a->host_ip6, any6, 16) || !memcmp(b->host_ip6, any6, 16) ||
		       !memcmp(a->host_ip6, b->host_ip6, 16);
	if (a->ipv6 || b->ipv6)
		return !(a->ipv6 ? b : a)->host_ip;
	return !a->host_ip || !b->host_ip || a->host_ip == b->host_ip;
}

/* Refuse a port someone has, naming it and who. Ports published by another
 * container are in the members; sockets of the host's in /proc/net. */
static int check_ports(const struct netdef *all, size_t n_all, struct hutch_port_map *ports,
		       size_t n_ports, struct hutch_err **err)
{
	for (size_t i = 0; i < n_ports; i++) {
		struct hutch_port_map *p = &ports[i];
		if (p->host_port == 0) {
			/* any free one: what the kernel would give a socket */
			int type = p->proto == HUTCH_PORT_UDP ? SOCK_DGRAM : SOCK_STREAM;
			for (int tries = 0; tries < 20 && !p->host_port; tries++) {
				int family = p->ipv6 ? AF_INET6 : AF_INET;
				_cleanup_close_ int s = socket(family, type | SOCK_CLOEXEC, 0);
				union {
					struct sockaddr sa;
					struct sockaddr_in in;
					struct sockaddr_in6 in6;
				} sa = {.in = {.sin_family = AF_INET,
					       .sin_addr.s_addr = htonl(p->host_ip)}};
				if (p->ipv6) {
					sa.in6 = (struct sockaddr_in6){.sin6_family = AF_INET6};
					memcpy(&sa.in6.sin6_addr, p->host_ip6, 16);
				}
				socklen_t sl = p->ipv6 ? sizeof(sa.in6) : sizeof(sa.in);
				if (s < 0 || bind(s, &sa.sa, sl) < 0 ||
				    getsockname(s, &sa.sa, &sl) < 0)
					return hutch_fail_sys(err, "find a free port");
				p->host_port = ntohs(p->ipv6 ? sa.in6.sin6_port : sa.in.sin_port);
				for (size_t k = 0; k < n_all && p->host_port; k++)
					for (size_t m = 0; m < all[k].n_members && p->host_port;
					     m++)
						for (size_t q = 0; q < all[k].members[m].n_ports;
						     q++)
							if (ranges_meet(
								p, &all[k].members[m].ports[q]))
								p->host_port = 0;
			}
		}
		for (size_t j = 0; j < i; j++)
			if (ranges_meet(p, &ports[j]))
				return hutch_fail(err, 0, "port %u/%s is published twice",
						  p->host_port, hutch_port_proto_name(p->proto));
		for (size_t k = 0; k < n_all; k++)
			for (size_t m = 0; m < all[k].n_members; m++) {
				const struct member *mb = &all[k].members[m];
				for (size_t q = 0; q < mb->n_ports; q++) {
					if (!ranges_meet(p, &mb->ports[q]))
						continue;
					uint16_t port = p->host_port > mb->ports[q].host_port
							    ? p->host_port
							    : mb->ports[q].host_port;
					_cleanup_free_ char *nm =
					    mb->name ? printable(mb->name, strlen(mb->name)) : NULL;
					return hutch_fail(err, 0,
							  "port %u/%s is already published by "
							  "container %s%s%.12s%s: "
							  "choose another host port",
							  port, hutch_port_proto_name(p->proto),
							  nm ? nm : "", nm ? " (" : "",
							  mb->container, nm ? ")" : "");
				}
			}
		for (uint32_t k = 0; k < p->count; k++) {
			uint16_t port = (uint16_t)(p->host_port + k);
			unsigned long ino = port_bound(p, port);
			if (!ino)
				continue;
			char who[160];
			socket_holder(ino, who, sizeof(who));
			return hutch_fail(
			    err, 0,
			    "port %u/%s is already in use on the host%s%s: choose another "
			    "host port or stop what holds it",
			    port, hutch_port_proto_name(p->proto), who[0] ? " by " : "", who);
		}
	}
	return 0;
}

/* ---- rules --------------------------------------------------------------------- */

/* The whole table from what is on disk: ports of every member, masquerading
 * for every network with members that is not internal, isolation. NULL when
 * no network has members (the table goes). hutch_routes: ip_forward was off
 * and hutch switched it on. */

/* A bridge's lines in the forward chain (IPv4's and IPv6's alike). closed:
 * nothing in or out; its containers' own traffic, which a host with
 * br_netfilter (bridge-nf-call-iptables) passes through here too, from the
 * bridge to itself, stays allowed. Else: nothing from one hutch bridge to
 * another (networks apart), its own traffic out, replies and DNATed
 * connections in, and the rest into the bridge dropped: another host (one
 * with a route to the subnet via this one) reaching ports never published. */
static void forward_rules(FILE *f, const char *b, bool closed)
{
	if (closed) {
		fprintf(f,
			"    iifname \"%s\" oifname != \"%s\" drop\n"
			"    oifname \"%s\" iifname != \"%s\" drop\n",
			b, b, b, b);
		return;
	}
	fprintf(f, "    iifname \"%s\" oifname \"hbr-*\" oifname != \"%s\" drop\n", b, b);
	fprintf(f, "    iifname \"%s\" accept\n", b);
	fprintf(f, "    oifname \"%s\" ct state established,related accept\n", b);
	fprintf(f, "    oifname \"%s\" ct status dnat accept\n", b);
	fprintf(f, "    oifname \"%s\" drop\n", b);
}

static void rules6_text(FILE *f, const struct netdef *all, size_t n, bool hutch_routes6,
			bool rootless);

/* rootless: a port's host address is pasta's to bind on the host; in the
 * rootless namespace its packets come to pasta's tap address, so the rule
 * matches the port alone. */
static char *rules_text(const struct netdef *all, size_t n, bool hutch_routes, bool hutch_routes6,
			bool rootless)
{
	size_t active = 0;
	for (size_t i = 0; i < n; i++)
		active += all[i].n_members > 0;
	if (!active)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fputs("table ip hutch {\n", f);
	/* A container must not reach the host's loopback through route_localnet
	 * (CVE-2020-8558): its packets to 127/8 are dropped before routing. */
	fputs("  chain localnet_guard {\n    type filter hook prerouting priority -300; policy "
	      "accept;\n",
	      f);
	for (size_t i = 0; i < n; i++)
		if (all[i].n_members)
			fprintf(f, "    iifname \"%s\" ip daddr 127.0.0.0/8 drop\n", all[i].bridge);
	fputs("  }\n", f);
	fputs("  chain ports {\n", f);
	for (size_t i = 0; i < n; i++)
		for (size_t m = 0; m < all[i].n_members; m++) {
			const struct member *mb = &all[i].members[m];
			char addr[16];
			hutch_ipv4_format(mb->addr, addr);
			for (size_t q = 0; q < mb->n_ports; q++) {
				const struct hutch_port_map *p = &mb->ports[q];
				if (p->ipv6)
					continue; /* table ip6's */
				char hip[16];
				uint32_t host_ip = rootless ? 0 : p->host_ip;
				hutch_ipv4_format(host_ip, hip);
				for (uint32_t k = 0; k < p->count; k++)
					fprintf(f,
						"    %s%s%s %s dport %u dnat to %s:%u comment "
						"\"%.12s\"\n",
						host_ip ? "ip daddr " : "", host_ip ? hip : "",
						host_ip ? "" : "", hutch_port_proto_name(p->proto),
						p->host_port + k, addr, p->container_port + k,
						mb->container);
			}
		}
	fputs("  }\n", f);
	fputs("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
	      "    fib daddr type local jump ports\n  }\n",
	      f);
	fputs("  chain output {\n    type nat hook output priority -100; policy accept;\n"
	      "    fib daddr type local jump ports\n  }\n",
	      f);
	fputs("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy "
	      "accept;\n",
	      f);
	for (size_t i = 0; i < n; i++) {
		if (!all[i].n_members)
			continue;
		char sub[19];
		hutch_cidr_format(&all[i].subnet, sub);
		/* the host's own 127.0.0.1 cannot be answered from the container:
		 * it sees the gateway instead; other hosts' addresses are kept */
		fprintf(f, "    ip saddr 127.0.0.0/8 oifname \"%s\" masquerade\n", all[i].bridge);
		/* nor what leaves by lo: the host's own address talking to itself
		 * (a query of the host's to the network's DNS server) keeps its
		 * source, or the server would not know it as one of the network's */
		if (!all[i].internal)
			fprintf(f,
				"    ip saddr %s oifname != \"%s\" oifname != \"lo\" masquerade\n",
				sub, all[i].bridge);
		/* hairpin: a container reaching its own network's published port by
		 * the host's address is DNATed back into the bridge; the server's
		 * reply to a neighbour (or itself) would go straight over the
		 * bridge, unseen by conntrack, from an address the client never
		 * asked: the client sees the gateway instead, so the reply comes
		 * back through the host */
		fprintf(f, "    ip saddr %s oifname \"%s\" ct status dnat masquerade\n", sub,
			all[i].bridge);
	}
	fputs("  }\n", f);
	fputs("  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
	      f);
	for (size_t i = 0; i < n; i++) {
		if (!all[i].n_members)
			continue;
		forward_rules(f, all[i].bridge, all[i].internal);
	}
	/* hutch switched routing on for its bridges, not to make the host a
	 * router between its other interfaces: what involves no hutch bridge is
	 * not forwarded (left alone when routing was on before hutch) */
	if (hutch_routes)
		fputs("    iifname != \"hbr-*\" oifname != \"hbr-*\" drop\n", f);
	fputs("  }\n}\n", f);
	rules6_text(f, all, n, hutch_routes6, rootless);
	fclose(f);
	return buf;
}

static bool any_ipv6(const struct netdef *all, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (all[i].ipv6 && all[i].n_members)
			return true;
	return false;
}

/* Dual stack: `table ip6 hutch`, in the same transaction as the ip table, for
 * networks with IPv6: the same isolation and masquerading, and published ports
 * on every address (-p HOST:CONTAINER) DNATed to the container's IPv6 address
 * too, and those on [::] or one IPv6 address (-p [ADDR]:HOST:CONTAINER). Not
 * for ::1: IPv6 has no route_localnet; the DNAT and masquerading would get a
 * connection of the host's ::1 out by the bridge, but the kernel drops the
 * container's replies, turned back to ::1, as they come in by it (tried:
 * hutch_port_parse refuses [::1]). */
static void rules6_text(FILE *f, const struct netdef *all, size_t n, bool hutch_routes6,
			bool rootless)
{
	if (!any_ipv6(all, n))
		return;
	fputs("table ip6 hutch {\n  chain ports {\n", f);
	for (size_t i = 0; i < n; i++)
		for (size_t m = 0; all[i].ipv6 && m < all[i].n_members; m++) {
			const struct member *mb = &all[i].members[m];
			char a6[46];
			hutch_ipam_addr6(&all[i].subnet6, &all[i].subnet, mb->addr, a6);
			for (size_t q = 0; q < mb->n_ports; q++) {
				const struct hutch_port_map *p = &mb->ports[q];
				static const uint8_t any6[16];
				/* on every address (IPv4's included), on [::], or on
				 * one IPv6 address of the host's */
				char hip[INET6_ADDRSTRLEN + 16] = "";
				if (p->ipv6 && memcmp(p->host_ip6, any6, 16) && !rootless) {
					char a[INET6_ADDRSTRLEN];
					inet_ntop(AF_INET6, p->host_ip6, a, sizeof(a));
					snprintf(hip, sizeof(hip), "ip6 daddr %s ", a);
				}
				for (uint32_t k = 0; (p->ipv6 || !p->host_ip) && k < p->count; k++)
					fprintf(f,
						"    %s%s dport %u dnat to [%s]:%u comment "
						"\"%.12s\"\n",
						hip, hutch_port_proto_name(p->proto),
						p->host_port + k, a6, p->container_port + k,
						mb->container);
			}
		}
	fputs("  }\n", f);
	fputs("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
	      "    fib daddr type local jump ports\n  }\n",
	      f);
	fputs("  chain output {\n    type nat hook output priority -100; policy accept;\n"
	      "    ip6 daddr != ::1 fib daddr type local jump ports\n  }\n",
	      f);
	fputs("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy "
	      "accept;\n",
	      f);
	for (size_t i = 0; i < n; i++) {
		if (!all[i].ipv6 || !all[i].n_members)
			continue;
		char sub[HUTCH_CIDR6_LEN];
		hutch_cidr6_format(&all[i].subnet6, sub);
		if (!all[i].internal)
			fprintf(f,
				"    ip6 saddr %s oifname != \"%s\" oifname != \"lo\" masquerade\n",
				sub, all[i].bridge);
		fprintf(f, "    ip6 saddr %s oifname \"%s\" ct status dnat masquerade\n", sub,
			all[i].bridge);
	}
	fputs("  }\n", f);
	fputs("  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
	      f);
	for (size_t i = 0; i < n; i++) {
		if (!all[i].n_members)
			continue;
		/* every hutch bridge, IPv6 or not: nothing of another network's
		 * (link-local included) crosses into it */
		forward_rules(f, all[i].bridge, all[i].internal || !all[i].ipv6);
	}
	if (hutch_routes6)
		fputs("    iifname != \"hbr-*\" oifname != \"hbr-*\" drop\n", f);
	fputs("  }\n}\n", f);
}

/* A network whose bridge carries the host's own loopback to a container: a
 * port published on every address (0.0.0.0) or on a 127/8 one. Only these
 * bridges get route_localnet, the others never need the guard. */
static bool publishes_on_loopback(const struct netdef *d)
{
	for (size_t m = 0; m < d->n_members; m++)
		for (size_t q = 0; q < d->members[m].n_ports; q++) {
			uint32_t ip = d->members[m].ports[q].host_ip;
			if (d->members[m].ports[q].ipv6)
				continue;
			if (!ip || (ip >> 24) == 127)
				return true;
		}
	return false;
}

/* ip_forward is per network namespace and the run dir may serve more than
 * one: the record of who switched it on names the namespace it is about. */
static uint64_t own_netns_inode(void)
{
	struct stat st;
	return stat("/proc/self/ns/net", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static bool sysctl_is_on(const char *path)
{
	_cleanup_free_ char *v = NULL;
	size_t len;
	return read_file_at(AT_FDCWD, path, &v, &len, NULL) == 0 && len && v[0] != '0';
}

/* Routing for one family (sysctl: ip_forward or IPv6's all/forwarding), as
 * apply_rules_as says: *hutch_routes when hutch switched it on (the record
 * RUN/MARK names this namespace), *switch_on when it must be switched on once
 * the rules are in; switched off at once when no network needs it. */
static int forward_plan(const struct hutch_net_ctx *ctx, const char *sysctl, const char *mark,
			bool forward, bool *hutch_routes, bool *switch_on, struct hutch_err **err)
{
	_cleanup_free_ char *mark_path = xasprintf("%s/%s", ctx->run_root, mark);
	_cleanup_free_ char *text = NULL;
	size_t len;
	char own[32];
	snprintf(own, sizeof(own), "%" PRIu64 "\n", own_netns_inode());
	*hutch_routes =
	    read_file_at(AT_FDCWD, mark_path, &text, &len, NULL) == 0 && !strcmp(text, own);
	*switch_on = forward && !sysctl_is_on(sysctl);
	if (*switch_on) {
		if (mkdir_p_at(AT_FDCWD, ctx->run_root, 0700, err) < 0 ||
		    write_file_replace(AT_FDCWD, mark_path, own, strlen(own), err) < 0)
			return -1;
		*hutch_routes = true;
	}
	if (!forward && *hutch_routes) {
		if (net_sysctl_set(sysctl, "0", err) < 0)
			return -1;
		unlink(mark_path);
		*hutch_routes = false;
	}
	return 0;
}

static int apply_rules_as(const struct hutch_net_ctx *ctx, bool force, struct hutch_err **err)
{
	struct netdef *all;
	size_t n;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	bool forward = false, forward6 = false;
	for (size_t i = 0; i < n; i++) {
		forward |= all[i].n_members && !all[i].internal;
		forward6 |= all[i].n_members && !all[i].internal && all[i].ipv6;
	}
	/* Other hosts reach published ports and containers reach out through
	 * the host's routing: what Docker and podman switch on too. When it was
	 * off, hutch records that it switched it on (RUN/ip-forward-by-hutch,
	 * with the namespace's inode), keeps the host from routing anything
	 * else while it is on, and switches it off again when no network needs
	 * it. When it was on before hutch, the host's own routing is left as it
	 * was: the admin made it a router. */
	static const char fwd4[] = "/proc/sys/net/ipv4/ip_forward",
			  fwd6[] = "/proc/sys/net/ipv6/conf/all/forwarding";
	bool hutch_routes, switch_on, hutch_routes6 = false, switch_on6 = false;
	/* (IPv6 routing is only looked at once a network has IPv6: a host without
	 * IPv6 has no such sysctl) */
	if (forward_plan(ctx, fwd4, "ip-forward-by-hutch", forward, &hutch_routes, &switch_on,
			 err) < 0 ||
	    ((forward6 || access(fwd6, F_OK) == 0) &&
	     forward_plan(ctx, fwd6, "ip6-forward-by-hutch", forward6, &hutch_routes6, &switch_on6,
			  err) < 0)) {
		netdefs_free(all, n);
		return -1;
	}
	_cleanup_free_ char *text = rules_text(all, n, hutch_routes, hutch_routes6, ctx->rootless);
	/* The table as last applied is kept in the run dir (gone with a reboot, as
	 * the table): a container that changes nothing in it (no ports, on a
	 * network that has members already) costs no nftables transaction. The
	 * kernel is asked whether the table is still there, though: a firewall
	 * reload (`nft flush ruleset`) takes it, and with it the localnet guard,
	 * while route_localnet stays on the bridges. */
	_cleanup_free_ char *applied_path = xasprintf("%s/nft-hutch.rules", ctx->run_root);
	_cleanup_free_ char *applied = NULL;
	size_t len;
	bool known = read_file_at(AT_FDCWD, applied_path, &applied, &len, NULL) == 0;
	bool same = !force && known && !strcmp(applied, text ? text : "");
	if (same && text && net_nft_table_exists(NULL) != 1)
		same = false;
	int r = 0;
	/* no table to make, and none hutch made (or it went with a reboot, as the
	 * run dir): the host's nftables are not touched at all */
	if (!same && (text || known)) {
		unlink(applied_path);
		r = net_nft_apply(text, err);
		if (r == 0 && text && mkdir_p_at(AT_FDCWD, ctx->run_root, 0700, NULL) == 0)
			write_file_replace(AT_FDCWD, applied_path, text, strlen(text), NULL);
	}
	/* routing and route_localnet only once the rules that guard them are in */
	if (r == 0 && switch_on && net_sysctl_set(fwd4, "1", err) < 0)
		r = -1;
	if (r == 0 && switch_on6 && net_sysctl_set(fwd6, "1", err) < 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (!all[i].n_members || !net_link_exists(all[i].bridge))
			continue;
		_cleanup_free_ char *p =
		    xasprintf("/proc/sys/net/ipv4/conf/%s/route_localnet", all[i].bridge);
		if (net_sysctl_set(p, publishes_on_loopback(&all[i]) ? "1" : "0", err) < 0)
			r = -1;
	}
	netdefs_free(all, n);
	return r;
}

static int apply_rules(const struct hutch_net_ctx *ctx, struct hutch_err **err)
{
	return apply_rules_as(ctx, false, err);
}

/* ---- create / inspect / list / remove ------------------------------------------- */

static void now_rfc3339(char buf[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void info_fill(const struct netdef *d, struct hutch_net_info *out)
{
	*out = (struct hutch_net_info){0};
	out->name = xstrdup(d->name);
	out->id = xstrdup(d->id);
	out->created = xstrdup(d->created ? d->created : "");
	snprintf(out->bridge, sizeof(out->bridge), "%s", d->bridge);
	hutch_cidr_format(&d->subnet, out->subnet);
	hutch_ipv4_format(hutch_ipam_gateway(&d->subnet), out->gateway);
	/* the DNS server of the network listens on the gateway's address */
	memcpy(out->dns, out->gateway, sizeof(out->dns));
	out->internal = d->internal;
	out->ipv6 = d->ipv6;
	if (d->ipv6) {
		hutch_cidr6_format(&d->subnet6, out->subnet6);
		hutch_ipam_addr6(&d->subnet6, &d->subnet, hutch_ipam_gateway(&d->subnet),
				 out->gateway6);
	}
	out->owner = d->owner ? xstrdup(d->owner) : NULL;
	out->owner_running = owner_alive(d);
	out->members = xcalloc(d->n_members + 1, sizeof(*out->members));
	for (size_t i = 0; i < d->n_members; i++) {
		const struct member *m = &d->members[i];
		struct hutch_net_member *o = &out->members[out->n_members++];
		o->container = xstrdup(m->container);
		o->name = m->name ? xstrdup(m->name) : NULL;
		o->key = m->key ? xstrdup(m->key) : NULL;
		hutch_ipv4_format(m->addr, o->address);
		if (d->ipv6)
			hutch_ipam_addr6(&d->subnet6, &d->subnet, m->addr, o->address6);
		o->aliases = xcalloc(m->n_aliases + 1, sizeof(char *));
		for (size_t k = 0; k < m->n_aliases; k++)
			o->aliases[o->n_aliases++] = xstrdup(m->aliases[k]);
		o->ports = xcalloc(m->n_ports + 1, sizeof(*o->ports));
		memcpy(o->ports, m->ports, m->n_ports * sizeof(*o->ports));
		o->n_ports = m->n_ports;
	}
	out->dns_servers = xcalloc(d->n_dns_servers + 1, sizeof(char *));
	for (size_t i = 0; i < d->n_dns_servers; i++)
		out->dns_servers[out->n_dns_servers++] = xstrdup(d->dns_servers[i]);
}

void hutch_net_info_free(struct hutch_net_info *info)
{
	if (!info)
		return;
	free(info->name);
	free(info->id);
	free(info->created);
	free(info->owner);
	for (size_t i = 0; i < info->n_dns_servers; i++)
		free(info->dns_servers[i]);
	free(info->dns_servers);
	for (size_t i = 0; i < info->n_members; i++) {
		struct hutch_net_member *m = &info->members[i];
		free(m->container);
		free(m->name);
		free(m->key);
		for (size_t k = 0; k < m->n_aliases; k++)
			free(m->aliases[k]);
		free(m->aliases);
		free(m->ports);
	}
	free(info->members);
	*info = (struct hutch_net_info){0};
}

void hutch_net_info_list_free(struct hutch_net_info *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hutch_net_info_free(&list[i]);
	free(list);
}

char *hutch_net_info_to_json(const struct hutch_net_info *info, bool pretty)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(info->name));
	json_object_object_add(o, "id", json_object_new_string(info->id));
	json_object_object_add(o, "driver", json_object_new_string("bridge"));
	json_object_object_add(o, "bridge", json_object_new_string(info->bridge));
	json_object_object_add(o, "subnet", json_object_new_string(info->subnet));
	json_object_object_add(o, "gateway", json_object_new_string(info->gateway));
	json_object_object_add(o, "dns", json_object_new_string(info->dns));
	json_object_object_add(o, "internal", json_object_new_boolean(info->internal));
	json_object_object_add(o, "ipv6", json_object_new_boolean(info->ipv6));
	if (info->ipv6) {
		json_object_object_add(o, "subnet6", json_object_new_string(info->subnet6));
		json_object_object_add(o, "gateway6", json_object_new_string(info->gateway6));
	}
	json_object_object_add(o, "created", json_object_new_string(info->created));
	/* always there (null: the user's own), so `ls --format json` can be filtered
	 * on it */
	json_object_object_add(o, "owner",
			       info->owner ? json_object_new_string(info->owner) : NULL);
	struct json_object *up = json_object_new_array();
	for (size_t i = 0; i < info->n_dns_servers; i++)
		json_object_array_add(up, json_object_new_string(info->dns_servers[i]));
	json_object_object_add(o, "dns_servers", up);
	struct json_object *ms = json_object_new_array();
	for (size_t i = 0; i < info->n_members; i++) {
		const struct hutch_net_member *m = &info->members[i];
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "id", json_object_new_string(m->container));
		json_object_object_add(x, "name", m->name ? json_object_new_string(m->name) : NULL);
		json_object_object_add(x, "address", json_object_new_string(m->address));
		if (info->ipv6)
			json_object_object_add(x, "address6", json_object_new_string(m->address6));
		struct json_object *al = json_object_new_array();
		for (size_t k = 0; k < m->n_aliases; k++)
			json_object_array_add(al, json_object_new_string(m->aliases[k]));
		json_object_object_add(x, "aliases", al);
		struct json_object *ps = json_object_new_array();
		for (size_t k = 0; k < m->n_ports; k++) {
			char b[HUTCH_PORT_FORMAT_LEN];
			hutch_port_format(&m->ports[k], b);
			json_object_array_add(ps, json_object_new_string(b));
		}
		json_object_object_add(x, "ports", ps);
		json_object_array_add(ms, x);
	}
	json_object_object_add(o, "members", ms);
	char *text = xstrdup(json_object_to_json_string_ext(
	    o, (pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN) |
		   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

/* The network's IPv6 subnet: the one given, checked against the host's IPv6
 * routes and the other networks', or a ULA /64 from the network's id that
 * clashes with none of them. */
static int choose_subnet6(const struct hutch_net_ctx *ctx, const char *id, const char *subnet6,
			  int prefix4, const struct netdef *all, size_t n_all,
			  struct hutch_cidr6 *out, struct hutch_err **err)
{
	struct hutch_cidr6 *taken = NULL;
	size_t n = 0;
	if (net_host_routes6(&taken, &n, err) < 0)
		return -1;
	taken = xrealloc(taken, (n + n_all + 2) * sizeof(*taken));
	/* rootless: pasta's tap's /64 is in the namespace, and no other */
	if (ctx->rootless && hutch_cidr6_parse(NET_ROOTLESS_TAP6_NET, &taken[n], NULL) == 0)
		n++;
	size_t n_routes = n;
	for (size_t i = 0; i < n_all; i++)
		if (all[i].ipv6)
			taken[n++] = all[i].subnet6;
	int r = 0;
	if (!subnet6) {
		r = hutch_ipam_choose_subnet6(id, taken, n, out, err);
		free(taken);
		return r;
	}
	r = hutch_cidr6_parse(subnet6, out, err);
	_cleanup_free_ char *shown = printable(subnet6, strlen(subnet6));
	/* each container's IPv6 address is its IPv4 one's offset */
	if (r == 0 && 128 - out->prefix < 32 - prefix4)
		r = hutch_fail(err, 0,
			       "IPv6 subnet %s is too small for the IPv4 subnet's /%d: at most /%d",
			       shown, prefix4, 96 + prefix4);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (taken[i].prefix == 0 || !hutch_cidr6_overlap(out, &taken[i]))
			continue;
		char other[HUTCH_CIDR6_LEN];
		hutch_cidr6_format(&taken[i], other);
		r = hutch_fail(
		    err, 0, "IPv6 subnet %s %s %s: choose another", shown,
		    i < n_routes ? "clashes with the host's route to" : "overlaps network", other);
	}
	free(taken);
	return r;
}

/* Under the lock: the network made (no links yet: the bridge comes with its
 * first member). */
static int create_locked(const struct hutch_net_ctx *ctx, const char *name, const char *subnet,
			 bool internal, bool ipv6, const char *subnet6, struct netdef *out,
			 struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(name, strlen(name));
	if (!net_name_valid(name))
		return hutch_fail(
		    err, 0,
		    "invalid network name '%s': use letters, digits and _.- (starting "
		    "with a letter or digit, at most 64)",
		    shown);
	struct netdef probe;
	if (load_net(ctx, name, &probe, NULL) == 0) {
		netdef_clear(&probe);
		return hutch_fail(err, 0, "network '%s' already exists", shown);
	}
	struct netdef *all;
	size_t n_all;
	if (load_all(ctx, &all, &n_all, err) < 0)
		return -1;
	struct hutch_cidr *routes = NULL;
	size_t n_routes = 0;
	int r = net_host_routes(&routes, &n_routes, err);
	struct hutch_cidr chosen = {0};
	if (r == 0 && subnet) {
		r = hutch_cidr_parse(subnet, &chosen, err);
		if (r == 0 && chosen.prefix > 30)
			r = hutch_fail(err, 0, "subnet %s is too small: at most /30", subnet);
		for (size_t i = 0; r == 0 && i < n_all; i++)
			if (hutch_cidr_overlap(&chosen, &all[i].subnet)) {
				char other[19];
				hutch_cidr_format(&all[i].subnet, other);
				r = hutch_fail(err, 0, "subnet %s overlaps network '%s' (%s)",
					       subnet, all[i].name, other);
			}
		for (size_t i = 0; r == 0 && i < n_routes; i++)
			if (routes[i].prefix > 0 && hutch_cidr_overlap(&chosen, &routes[i])) {
				char other[19];
				hutch_cidr_format(&routes[i], other);
				r = hutch_fail(
				    err, 0,
				    "subnet %s clashes with the host's route to %s: choose "
				    "another",
				    subnet, other);
			}
	} else if (r == 0) {
		routes = xrealloc(routes, (n_routes + n_all + 1) * sizeof(*routes));
		for (size_t i = 0; i < n_all; i++)
			routes[n_routes++] = all[i].subnet;
		r = hutch_ipam_choose_subnet(routes, n_routes, &chosen, err);
	}
	free(routes);
	char id[65], created[32];
	if (r == 0)
		r = random_hex_id(id, err);
	struct hutch_cidr6 chosen6 = {0};
	if (r == 0 && ipv6)
		r = choose_subnet6(ctx, id, subnet6, chosen.prefix, all, n_all, &chosen6, err);
	netdefs_free(all, n_all);
	if (r < 0)
		return -1;
	now_rfc3339(created);
	*out = (struct netdef){.name = xstrdup(name),
			       .id = xstrdup(id),
			       .created = xstrdup(created),
			       .subnet = chosen,
			       .internal = internal,
			       .ipv6 = ipv6,
			       .subnet6 = chosen6,
			       .pool = {.subnet = chosen}};
	snprintf(out->bridge, sizeof(out->bridge), "hbr-%.11s", id);
	if (save_net_as(ctx, out, true, err) < 0) {
		netdef_clear(out);
		return -1;
	}
	return 0;
}

int hutch_network_create(const struct hutch_net_ctx *ctx, const char *name, const char *subnet,
			 bool internal, bool ipv6, const char *subnet6,
			 const char *const *dns_servers, size_t n_dns_servers,
			 struct hutch_net_info *out, struct hutch_err **err)
{
	if (n_dns_servers > 3)
		return hutch_fail(err, 0,
				  "%zu DNS servers given: a network's DNS server forwards to at "
				  "most 3",
				  n_dns_servers);
	for (size_t i = 0; i < n_dns_servers; i++) {
		/* IP or IP:PORT (a resolver on another port: the host's loopback,
		 * from a rootless network's server, which runs in the host's
		 * network namespace) */
		char ip[INET_ADDRSTRLEN + 1] = "";
		const char *colon = strchr(dns_servers[i], ':');
		size_t iplen = colon ? (size_t)(colon - dns_servers[i]) : strlen(dns_servers[i]);
		struct in_addr a;
		char *end = NULL;
		long port = colon ? strtol(colon + 1, &end, 10) : 53;
		if (iplen < sizeof(ip))
			memcpy(ip, dns_servers[i], iplen);
		if (iplen >= sizeof(ip) || inet_pton(AF_INET, ip, &a) != 1 ||
		    (colon &&
		     (!isdigit((unsigned char)colon[1]) || *end || port < 1 || port > 65535))) {
			_cleanup_free_ char *shown =
			    printable(dns_servers[i], strlen(dns_servers[i]));
			return hutch_fail(
			    err, 0, "--dns '%s' is not an IPv4 address (or IPv4:PORT)", shown);
		}
	}
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	struct netdef d;
	if (create_locked(ctx, name, subnet, internal, ipv6 || subnet6, subnet6, &d, err) < 0)
		return -1;
	if (n_dns_servers) {
		d.dns_servers = xcalloc(n_dns_servers + 1, sizeof(char *));
		for (size_t i = 0; i < n_dns_servers; i++)
			d.dns_servers[d.n_dns_servers++] = xstrdup(dns_servers[i]);
		if (save_net_as(ctx, &d, true, err) < 0) {
			netdef_clear(&d);
			return -1;
		}
	}
	if (out)
		info_fill(&d, out);
	netdef_clear(&d);
	return 0;
}

static int gc_locked(const struct hutch_net_ctx *ctx, bool *changed, struct hutch_err **err);
/* Rootless: gc (and the rules written again, force) in the rootless namespace,
 * and what follows from it there (net/rootless.c; rootful: gc_locked). */
static int gc_any(const struct hutch_net_ctx *ctx, bool force, struct hutch_err **err);
static int rootless_after(const struct hutch_net_ctx *ctx, bool ports_now, bool keep,
			  struct hutch_err **err);
static int remove_locked(const struct hutch_net_ctx *ctx, const char *name, struct hutch_err **err);
static int rootless_remove(const struct hutch_net_ctx *ctx, const char *name,
			   struct hutch_err **err);

int hutch_network_inspect(const struct hutch_net_ctx *ctx, const char *name,
			  struct hutch_net_info *out, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0 || gc_any(ctx, false, err) < 0)
		return -1;
	struct netdef d;
	int r = load_net(ctx, name, &d, err);
	if (r < 0)
		return r;
	info_fill(&d, out);
	netdef_clear(&d);
	return 0;
}

int hutch_network_peek(const struct hutch_net_ctx *ctx, const char *name,
		       struct hutch_net_info *out, struct hutch_err **err)
{
	struct netdef d;
	int r = load_net(ctx, name, &d, err);
	if (r < 0)
		return r;
	info_fill(&d, out);
	netdef_clear(&d);
	return 0;
}

int hutch_net_lock(const struct hutch_net_ctx *ctx, int *fd, struct hutch_err **err)
{
	return lock_networks(ctx, fd, err);
}

int hutch_network_list(const struct hutch_net_ctx *ctx, struct hutch_net_info **out, size_t *n,
		       struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	/* the table again, whatever hutch last wrote: a firewall reload that
	 * flushed every table (nftables.service, firewalld) is repaired here */
	if (lock_networks(ctx, &lock, err) < 0 || gc_any(ctx, true, err) < 0)
		return -1;
	struct netdef *all;
	size_t n_all;
	if (load_all(ctx, &all, &n_all, err) < 0)
		return -1;
	*out = xcalloc(n_all + 1, sizeof(**out));
	for (size_t i = 0; i < n_all; i++)
		info_fill(&all[i], &(*out)[i]);
	*n = n_all;
	netdefs_free(all, n_all);
	return 0;
}

int hutch_network_remove(const struct hutch_net_ctx *ctx, const char *name, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	if (!ctx->rootless) {
		bool changed = false;
		return gc_locked(ctx, &changed, err) < 0 ? -1 : remove_locked(ctx, name, err);
	}
	return rootless_remove(ctx, name, err);
}

static int remove_locked(const struct hutch_net_ctx *ctx, const char *name, struct hutch_err **err)
{
	struct netdef d;
	int r = load_net(ctx, name, &d, err);
	if (r < 0)
		return r;
	if (owner_alive(&d)) {
		_cleanup_free_ char *shown = printable(name, strlen(name));
		_cleanup_free_ char *whose = printable(d.owner, strlen(d.owner));
		hutch_fail(err, 0,
			   "network '%s' belongs to %s, which is running (pid %d): take it down "
			   "('hutch down' for a stack) and its network goes with it",
			   shown, whose, d.owner_pid);
		netdef_clear(&d);
		return -1;
	}
	if (d.n_members) {
		char *list = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&list, &len);
		for (size_t i = 0; i < d.n_members; i++) {
			const struct member *m = &d.members[i];
			_cleanup_free_ char *nm =
			    m->name ? printable(m->name, strlen(m->name)) : NULL;
			fprintf(f, "%s%s%s%.12s%s", i ? ", " : "", nm ? nm : "", nm ? " (" : "",
				m->container, nm ? ")" : "");
		}
		fclose(f);
		_cleanup_free_ char *shown = printable(name, strlen(name));
		hutch_fail(err, 0,
			   "network '%s' has containers attached: %s; stop or remove them first "
			   "(hutch rm -f)",
			   shown, list);
		free(list);
		netdef_clear(&d);
		return -1;
	}
	/* rootless without its namespace (not in it): no bridge to take */
	r = ctx->rootless && !net_host_pid ? 0 : net_link_delete(d.bridge, err);
	_cleanup_free_ char *dir = nets_dir(ctx);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r == 0 && (dfd < 0 || remove_tree_at(dfd, d.name, err) < 0))
		r = dfd < 0 ? hutch_fail_sys(err, "open %s", dir) : -1;
	_cleanup_free_ char *run_dir = xasprintf("%s/networks", ctx->run_root);
	_cleanup_close_ int rfd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r == 0 && rfd >= 0 && remove_tree_at(rfd, d.name, err) < 0)
		r = -1;
	netdef_clear(&d);
	if (r == 0)
		r = apply_rules(ctx, err);
	return r;
}

/* ---- attach / detach / gc --------------------------------------------------------- */

/* Take container off network d (links, address, bridge if it was the last);
 * saves d. Its netns is the caller's: when the caller removes it (netns_goes),
 * the veth is left to the kernel, which deletes the pair with the namespace
 * in its own time: deleting it here waits for an RCU grace period, 15-20 ms
 * of every `run --rm`. */
static int detach_from(const struct hutch_net_ctx *ctx, struct netdef *d, const char *container,
		       bool netns_goes, struct hutch_err **err)
{
	bool found = false;
	for (size_t i = 0; i < d->n_members;) {
		struct member *m = &d->members[i];
		if (strcmp(m->container, container)) {
			i++;
			continue;
		}
		found = true;
		if (m->veth[0] && !netns_goes)
			net_link_delete(m->veth, NULL);
		member_clear(m);
		memmove(m, m + 1, (d->n_members - i - 1) * sizeof(*m));
		d->n_members--;
	}
	found |= hutch_ipam_release(&d->pool, container) > 0;
	if (!found)
		return 0;
	if (d->n_members == 0)
		net_link_delete(d->bridge, NULL);
	return save_net(ctx, d, err) < 0 ? -1 : 1;
}

static int detach_locked(const struct hutch_net_ctx *ctx, const char *container,
			 struct hutch_err **err)
{
	struct netdef *all;
	size_t n;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	int r = 0, found = 0;
	for (size_t i = 0; i < n; i++) {
		int k = detach_from(ctx, &all[i], container, true, r < 0 ? NULL : err);
		if (k < 0)
			r = -1;
		found += k > 0;
	}
	netdefs_free(all, n);
	_cleanup_free_ char *ns = netns_path(ctx, container);
	if (net_netns_remove(ns, r < 0 ? NULL : err) < 0)
		r = -1;
	return r < 0 ? -1 : found;
}

static int gc_locked(const struct hutch_net_ctx *ctx, bool *changed, struct hutch_err **err)
{
	struct netdef *all;
	size_t n;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	struct inode_set used = {0};
	bool scanned = false;
	char **stale = NULL;
	size_t n_stale = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t m = 0; m < all[i].n_members; m++) {
			const struct member *mb = &all[i].members[m];
			if (attacher_alive(mb))
				continue;
			_cleanup_free_ char *ns = netns_path(ctx, mb->container);
			uint64_t ino = ctx->rootless ? mb->netns_ino : net_netns_inode(ns);
			if (ino && !scanned) {
				netns_in_use(&used);
				scanned = true;
				hutch_trace("net: gc: /proc scanned");
			}
			if (ino && inode_in(&used, ino))
				continue;
			stale = xrealloc(stale, (n_stale + 1) * sizeof(char *));
			stale[n_stale++] = xstrdup(mb->container);
		}
	netdefs_free(all, n);
	free(used.v);
	int r = 0;
	for (size_t i = 0; i < n_stale; i++) {
		if (r == 0 && detach_locked(ctx, stale[i], err) < 0)
			r = -1;
		free(stale[i]);
	}
	free(stale);
	*changed = n_stale > 0;
	if (r == 0 && n_stale)
		r = apply_rules(ctx, err);
	return r;
}

int hutch_net_gc(const struct hutch_net_ctx *ctx, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	return gc_any(ctx, false, err);
}

static int rootless_detach(const struct hutch_net_ctx *ctx, const char *container,
			   struct hutch_err **err);
static int rootless_attach(const struct hutch_net_ctx *ctx, const struct hutch_net_attach_req *req,
			   struct hutch_net_attachment *out, struct hutch_err **err);

int hutch_net_set_attacher(const struct hutch_net_ctx *ctx, const char *container, int pid,
			   uint64_t start, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	struct netdef *all;
	size_t n;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		bool found = false;
		for (size_t m = 0; m < all[i].n_members; m++)
			if (!strcmp(all[i].members[m].container, container)) {
				all[i].members[m].attacher_pid = pid;
				all[i].members[m].attacher_start = start;
				found = true;
			}
		if (found)
			r = save_net(ctx, &all[i], err);
	}
	netdefs_free(all, n);
	return r;
}

int hutch_net_detach(const struct hutch_net_ctx *ctx, const char *container, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	if (ctx->rootless)
		return rootless_detach(ctx, container, err);
	hutch_trace("net: detach: locked");
	int found = detach_locked(ctx, container, err);
	hutch_trace("net: detach: saved, netns removed");
	if (found <= 0)
		return found;
	int r = apply_rules(ctx, err);
	hutch_trace("net: detach: rules");
	return r;
}

/* Rootless (ctx->rootless), in the rootless namespace: the address and the
 * record only; the veth comes with hutch_net_wire. */
static int attach_locked(const struct hutch_net_ctx *ctx, const struct hutch_net_attach_req *req,
			 struct hutch_net_attachment *out, struct hutch_err **err)
{
	*out = (struct hutch_net_attachment){0};
	bool changed = false;
	if (gc_locked(ctx, &changed, err) < 0)
		return -1;
	hutch_trace("net: gc");
	struct netdef d;
	int r = load_net(ctx, req->network, &d, err);
	if (r == HUTCH_NET_NOT_FOUND && !strcmp(req->network, HUTCH_NET_DEFAULT)) {
		hutch_err_free(err);
		r = create_locked(ctx, req->network, NULL, false, false, NULL, &d, err);
	}
	if (r < 0)
		return -1;
	if (!is_hex_string(req->container, 64)) {
		netdef_clear(&d);
		return hutch_fail(err, 0, "container id '%.70s' is not 64 hex digits",
				  req->container);
	}
	_cleanup_free_ char *shown_net = printable(d.name, strlen(d.name));
	struct hutch_port_map *ports = xcalloc(req->n_ports + 1, sizeof(*ports));
	memcpy(ports, req->ports, req->n_ports * sizeof(*ports));
	struct netdef *all = NULL;
	size_t n_all = 0;
	_cleanup_free_ char *ns = netns_path(ctx, req->container);
	bool ns_made = false, veth_made = false, allocated = false;
	uint32_t addr = 0;
	char veth[16], ifname[16];
	unsigned index = 0, used = 0; /* eth0-eth9: bit N for ethN taken */
	bool has_default = false;
	r = -1;
	if (d.internal && req->n_ports) {
		hutch_fail(err, 0, "network '%s' is internal: ports cannot be published on it",
			   shown_net);
		goto fail;
	}
	for (size_t i = 0; i < req->n_ports; i++)
		if (ports[i].ipv6 && !d.ipv6) {
			char b[HUTCH_PORT_FORMAT_LEN];
			hutch_port_format(&ports[i], b);
			hutch_fail(err, 0,
				   "port %s is published on an IPv6 address, and network '%s' has "
				   "no IPv6: make it with --ipv6 (or publish on an IPv4 address)",
				   b, shown_net);
			goto fail;
		}
	if (load_all(ctx, &all, &n_all, err) < 0)
		goto fail;
	for (size_t i = 0; i < n_all; i++)
		for (size_t m = 0; m < all[i].n_members; m++)
			if (!strcmp(all[i].members[m].container, req->container)) {
				if (!strcmp(all[i].name, d.name)) {
					hutch_fail(err, 0,
						   "container %.12s is already on network '%s'",
						   req->container, shown_net);
					goto fail;
				}
				const char *ifn = all[i].members[m].ifname;
				if (!strncmp(ifn, "eth", 3) && ifn[3] >= '0' && ifn[3] <= '9')
					used |= 1u << (ifn[3] - '0');
				has_default |= !all[i].internal;
			}
	while (index < 10 && (used & (1u << index)))
		index++;
	if (index >= 10) {
		hutch_fail(err, 0,
			   "container %.12s is on 10 networks already: the most there can be",
			   req->container);
		goto fail;
	}
	if (check_ports(all, n_all, ports, req->n_ports, err) < 0 ||
	    hutch_ipam_allocate(&d.pool, req->key, req->container, &addr, err) < 0)
		goto fail;
	allocated = true;
	hutch_trace("net: ports checked, address");
	snprintf(veth, sizeof(veth), "hv%.11s-%u", req->container, index % 10u);
	snprintf(ifname, sizeof(ifname), "eth%u", index % 10u);
	if (!ctx->rootless) {
		ns_made = !net_netns_inode(ns);
		if (net_netns_create(ns, err) < 0) {
			ns_made = false;
			goto fail;
		}
		hutch_trace("net: netns");
		if (net_bridge_ensure(d.bridge, hutch_ipam_gateway(&d.subnet), d.subnet.prefix, 0,
				      err) < 0)
			goto fail;
		hutch_trace("net: bridge");
		if (net_veth_attach(d.bridge, veth, ns, ifname, addr, d.subnet.prefix,
				    /* one default route: the first network's that has a way out */
				    d.internal || has_default ? 0 : hutch_ipam_gateway(&d.subnet),
				    0, err) < 0)
			goto fail;
		veth_made = true;
		if (d.ipv6) {
			char gw6[46], a6[46], gw6_cidr[64], a6_cidr[64];
			hutch_ipam_addr6(&d.subnet6, &d.subnet, hutch_ipam_gateway(&d.subnet), gw6);
			hutch_ipam_addr6(&d.subnet6, &d.subnet, addr, a6);
			snprintf(gw6_cidr, sizeof(gw6_cidr), "%s/%d", gw6, d.subnet6.prefix);
			snprintf(a6_cidr, sizeof(a6_cidr), "%s/%d", a6, d.subnet6.prefix);
			if (net_bridge_add6(d.bridge, gw6_cidr, err) < 0 ||
			    net_veth_add6(ns, ifname, a6_cidr,
					  d.internal || has_default ? NULL : gw6, err) < 0)
				goto fail;
		}
		hutch_trace("net: veth");
	}
	/* who keeps the attachment alive: the caller's supervisor when it says so,
	 * else the hutch on the host (rootless: the one outside the namespace) */
	int attacher = req->attacher_pid ? req->attacher_pid
		       : net_host_pid	 ? net_host_pid
					 : getpid();
	d.members = xrealloc(d.members, (d.n_members + 1) * sizeof(*d.members));
	struct member *m = &d.members[d.n_members++];
	*m = (struct member){.container = xstrdup(req->container),
			     .name = req->name ? xstrdup(req->name) : NULL,
			     .key = req->key ? xstrdup(req->key) : NULL,
			     .addr = addr,
			     .attacher_pid = attacher,
			     .attacher_start = net_proc_start_time(attacher)};
	snprintf(m->ifname, sizeof(m->ifname), "%s", ifname);
	snprintf(m->veth, sizeof(m->veth), "%s", veth);
	m->default_route = !d.internal && !has_default;
	m->aliases = xcalloc(req->n_aliases + 1, sizeof(char *));
	for (size_t i = 0; i < req->n_aliases; i++)
		m->aliases[m->n_aliases++] = xstrdup(req->aliases[i]);
	m->ports = xcalloc(req->n_ports + 1, sizeof(*m->ports));
	memcpy(m->ports, ports, req->n_ports * sizeof(*ports));
	m->n_ports = req->n_ports;
	if (save_net(ctx, &d, err) < 0)
		goto fail;
	hutch_trace("net: saved");
	if (apply_rules(ctx, err) < 0)
		goto fail;
	hutch_trace("net: rules");
	if (!ctx->rootless)
		snprintf(out->netns, sizeof(out->netns), "%s", ns);
	hutch_ipv4_format(addr, out->address);
	hutch_ipv4_format(hutch_ipam_gateway(&d.subnet), out->gateway);
	memcpy(out->dns, out->gateway, sizeof(out->dns));
	out->prefix = d.subnet.prefix;
	out->ports = ports;
	out->n_ports = req->n_ports;
	ports = NULL;
	r = 0;
	goto done;
fail:
	if (veth_made || allocated)
		detach_from(ctx, &d, req->container, ns_made, NULL);
	if (d.n_members == 0)
		net_link_delete(d.bridge, NULL);
	if (ns_made)
		net_netns_remove(ns, NULL);
	if (veth_made)
		apply_rules(ctx, NULL);
done:
	free(ports);
	netdefs_free(all, n_all);
	netdef_clear(&d);
	return r;
}

int hutch_net_attach(const struct hutch_net_ctx *ctx, const struct hutch_net_attach_req *req,
		     struct hutch_net_attachment *out, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	return ctx->rootless ? rootless_attach(ctx, req, out, err)
			     : attach_locked(ctx, req, out, err);
}

/* ---- rootless: the bridges in the rootless namespace (net/rootless.c) ----------
 * The locked parts run in a child in that namespace (when it is there; without
 * it nothing of it is left to touch and they run here), the results through
 * shared memory; pasta and the namespace's life are seen to here, after. */

enum rl_op { RL_GC, RL_ATTACH, RL_WIRE, RL_DETACH, RL_REMOVE, RL_REMOVE_OWNED };
static int remove_owned_locked(const struct hutch_net_ctx *ctx, const char *name, const char *owner,
			       struct hutch_err **err);

struct rl_call {
	const struct hutch_net_ctx *ctx;
	enum rl_op op;
	bool force;
	const struct hutch_net_attach_req *req;
	const char *container, *name, *owner;
	int pid;
	struct hutch_net_attachment out;
	size_t n_ports;
	struct hutch_port_map ports[]; /* out's, n_ports of them */
};

/* The container's memberships that have no veth yet, wired into the network
 * namespace of pid (its own, a child of the rootless one's user namespace). */
static int wire_locked(const struct hutch_net_ctx *ctx, const char *container, int pid,
		       struct hutch_err **err)
{
	char ns[64];
	snprintf(ns, sizeof(ns), "/proc/%d/ns/net", pid);
	struct stat st;
	if (stat(ns, &st) < 0)
		return hutch_fail_sys(err, "container %.12s: its network namespace %s", container,
				      ns);
	struct netdef *all;
	size_t n;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct netdef *d = &all[i];
		for (size_t k = 0; r == 0 && k < d->n_members; k++) {
			struct member *m = &d->members[k];
			if (strcmp(m->container, container) || m->netns_ino)
				continue;
			uint32_t gw = hutch_ipam_gateway(&d->subnet);
			if (net_bridge_ensure(d->bridge, gw, d->subnet.prefix, NET_ROOTLESS_MTU,
					      err) < 0 ||
			    net_veth_attach(d->bridge, m->veth, ns, m->ifname, m->addr,
					    d->subnet.prefix, m->default_route ? gw : 0,
					    NET_ROOTLESS_MTU, err) < 0) {
				r = -1;
				break;
			}
			if (d->ipv6) {
				char gw6[46], a6[46], gw6_cidr[64], a6_cidr[64];
				hutch_ipam_addr6(&d->subnet6, &d->subnet, gw, gw6);
				hutch_ipam_addr6(&d->subnet6, &d->subnet, m->addr, a6);
				snprintf(gw6_cidr, sizeof(gw6_cidr), "%s/%d", gw6,
					 d->subnet6.prefix);
				snprintf(a6_cidr, sizeof(a6_cidr), "%s/%d", a6, d->subnet6.prefix);
				if (net_bridge_add6(d->bridge, gw6_cidr, err) < 0 ||
				    net_veth_add6(ns, m->ifname, a6_cidr,
						  m->default_route ? gw6 : NULL, err) < 0) {
					r = -1;
					break;
				}
			}
			m->netns_ino = st.st_ino;
			r = save_net(ctx, d, err);
		}
	}
	netdefs_free(all, n);
	return r < 0 ? -1 : apply_rules(ctx, err);
}

static int rl_fn(void *arg, struct hutch_err **err)
{
	struct rl_call *c = arg;
	bool changed = false;
	int r;
	switch (c->op) {
	case RL_GC:
		r = gc_locked(c->ctx, &changed, err);
		return r < 0 || !c->force ? r : apply_rules_as(c->ctx, true, err);
	case RL_ATTACH:
		r = attach_locked(c->ctx, c->req, &c->out, err);
		if (r == 0) {
			memcpy(c->ports, c->out.ports, c->n_ports * sizeof(*c->ports));
			free(c->out.ports);
			c->out.ports = NULL;
		}
		return r;
	case RL_WIRE:
		return wire_locked(c->ctx, c->container, c->pid, err);
	case RL_DETACH:
		r = detach_locked(c->ctx, c->container, err);
		return r <= 0 ? r : apply_rules(c->ctx, err);
	case RL_REMOVE:
		r = gc_locked(c->ctx, &changed, err);
		return r < 0 ? r : remove_locked(c->ctx, c->name, err);
	case RL_REMOVE_OWNED:
		return remove_owned_locked(c->ctx, c->name, c->owner, err);
	}
	return -1;
}

static int rl_call(struct rl_call *c, struct hutch_err **err)
{
	struct net_rootless rl;
	if (net_rootless_find(c->ctx, &rl))
		return net_rootless_run(&rl, rl_fn, c, err);
	return rl_fn(c, err);
}

static struct rl_call *rl_new(const struct hutch_net_ctx *ctx, enum rl_op op, size_t n_ports)
{
	size_t size = sizeof(struct rl_call) + (n_ports + 1) * sizeof(struct hutch_port_map);
	struct rl_call *c =
	    mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED)
		return NULL;
	memset(c, 0, size);
	c->ctx = ctx;
	c->op = op;
	c->n_ports = n_ports;
	return c;
}

static void rl_free(struct rl_call *c)
{
	if (c)
		munmap(c,
		       sizeof(struct rl_call) + (c->n_ports + 1) * sizeof(struct hutch_port_map));
}

static int gc_any(const struct hutch_net_ctx *ctx, bool force, struct hutch_err **err)
{
	bool changed = false;
	if (!ctx->rootless) {
		int r = gc_locked(ctx, &changed, err);
		return r < 0 || !force ? r : apply_rules_as(ctx, true, err);
	}
	struct rl_call *c = rl_new(ctx, RL_GC, 0);
	if (!c)
		return hutch_fail_sys(err, "mmap");
	c->force = force;
	int r = rl_call(c, err);
	rl_free(c);
	return r < 0 ? r : rootless_after(ctx, true, false, err);
}

/* After a change: no network with members (and not keep), the namespace goes
 * (pasta, the holder); else pasta forwards what is published now, when this
 * process can start it (not from inside the rootless user namespace, where a
 * container's hutch is once it made it: a port given up stays forwarded, to
 * nothing, until the next change made from outside or the last container). */
static int rootless_after(const struct hutch_net_ctx *ctx, bool ports_now, bool keep,
			  struct hutch_err **err)
{
	struct netdef *all;
	size_t n;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	size_t members = 0, n_ports = 0;
	for (size_t i = 0; i < n; i++) {
		/* a live owner's network keeps the namespace (a stack's DNS
		 * server listens in it) */
		members += owner_alive(&all[i]);
		for (size_t m = 0; m < all[i].n_members; m++, members++)
			n_ports += all[i].members[m].n_ports;
	}
	struct hutch_port_map *ports = xcalloc(n_ports + 1, sizeof(*ports));
	n_ports = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t m = 0; m < all[i].n_members; m++)
			for (size_t q = 0; q < all[i].members[m].n_ports; q++)
				ports[n_ports++] = all[i].members[m].ports[q];
	netdefs_free(all, n);
	int r = 0;
	struct net_rootless rl;
	bool outside = geteuid() != 0, live = members || keep;
	if (!live)
		net_rootless_stop(ctx);
	else if (ports_now && outside && net_rootless_find(ctx, &rl))
		r = net_rootless_pasta(ctx, &rl, ports, n_ports, err);
	/* pasta does not fail on a port it cannot listen on: say which */
	for (size_t i = 0; r == 0 && live && ports_now && outside && i < n_ports; i++)
		for (uint32_t k = 0; r == 0 && k < ports[i].count; k++)
			if (!port_bound(&ports[i], (uint16_t)(ports[i].host_port + k)))
				r = hutch_fail(err, 0,
					       "pasta could not listen on port %u/%s on the host "
					       "(ports below net.ipv4.ip_unprivileged_port_start "
					       "need root): choose another host port",
					       ports[i].host_port + k,
					       hutch_port_proto_name(ports[i].proto));
	free(ports);
	return r;
}

static int rootless_attach(const struct hutch_net_ctx *ctx, const struct hutch_net_attach_req *req,
			   struct hutch_net_attachment *out, struct hutch_err **err)
{
	*out = (struct hutch_net_attachment){0};
	struct net_rootless rl;
	if (req->n_ports && geteuid() == 0)
		return hutch_fail(err, 0,
				  "container %.12s: ports are published from outside the rootless "
				  "network's user namespace (pasta cannot be started from inside "
				  "it), and this process is inside",
				  req->container);
	/* when this container publishes ports, pasta first with what is published
	 * now: ports given up are free again before its are checked against the
	 * host's; then pasta (started, or again with its ports) */
	if (net_rootless_ensure(ctx, &rl, err) < 0 ||
	    (rl.pasta && req->n_ports && rootless_after(ctx, true, true, err) < 0) ||
	    !net_rootless_find(ctx, &rl)) {
		if (err && !*err)
			hutch_fail(err, 0, "the rootless network's namespace is gone");
		rootless_after(ctx, false, false, NULL);
		return -1;
	}
	struct rl_call *c = rl_new(ctx, RL_ATTACH, req->n_ports);
	if (!c)
		return hutch_fail_sys(err, "mmap");
	c->req = req;
	int r = rl_call(c, err);
	if (r == 0 && (req->n_ports || !rl.pasta) && rootless_after(ctx, true, false, err) < 0) {
		c->op = RL_DETACH;
		c->container = req->container;
		rl_call(c, NULL);
		rootless_after(ctx, true, false, NULL);
		r = -1;
	} else if (r < 0) {
		rootless_after(ctx, false, false, NULL);
	}
	if (r == 0) {
		*out = c->out;
		out->ports = xcalloc(req->n_ports + 1, sizeof(*out->ports));
		memcpy(out->ports, c->ports, req->n_ports * sizeof(*out->ports));
		out->n_ports = req->n_ports;
		snprintf(out->userns, sizeof(out->userns), "%s", rl.userns);
	}
	rl_free(c);
	return r;
}

int hutch_net_wire(const struct hutch_net_ctx *ctx, const char *container, int pid,
		   struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	struct net_rootless rl;
	if (!ctx->rootless || !net_rootless_find(ctx, &rl))
		return hutch_fail(err, 0,
				  "container %.12s: no rootless network namespace to wire it from",
				  container);
	struct rl_call *c = rl_new(ctx, RL_WIRE, 0);
	if (!c)
		return hutch_fail_sys(err, "mmap");
	c->container = container;
	c->pid = pid;
	int r = net_rootless_run(&rl, rl_fn, c, err);
	rl_free(c);
	hutch_trace("net: wired");
	return r;
}

static int rootless_detach(const struct hutch_net_ctx *ctx, const char *container,
			   struct hutch_err **err)
{
	/* the last container: the namespace goes, its links and rules with it,
	 * and only the records are left to change (here) */
	struct netdef *all;
	size_t n, others = 0;
	if (load_all(ctx, &all, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		others += owner_alive(&all[i]);
		for (size_t m = 0; m < all[i].n_members; m++)
			others += strcmp(all[i].members[m].container, container) != 0;
	}
	netdefs_free(all, n);
	if (!others)
		net_rootless_stop(ctx);
	struct rl_call *c = rl_new(ctx, RL_DETACH, 0);
	if (!c)
		return hutch_fail_sys(err, "mmap");
	c->container = container;
	int r = rl_call(c, err);
	rl_free(c);
	hutch_trace("net: detached");
	return r < 0 ? r : rootless_after(ctx, true, false, err);
}

static int rootless_remove(const struct hutch_net_ctx *ctx, const char *name,
			   struct hutch_err **err)
{
	struct rl_call *c = rl_new(ctx, RL_REMOVE, 0);
	if (!c)
		return hutch_fail_sys(err, "mmap");
	c->name = name;
	int r = rl_call(c, err);
	rl_free(c);
	int after = rootless_after(ctx, true, false, r < 0 ? NULL : err);
	return r < 0 ? r : after;
}

/* ---- networks owned by another part of hutch (a stack's) --------------------------- */

static int refuse_other_owner(const struct netdef *d, const char *owner, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(d->name, strlen(d->name));
	_cleanup_free_ char *want = printable(owner, strlen(owner));
	if (!d->owner)
		return hutch_fail(err, 0,
				  "network '%s' exists and is not %s's (hutch network create made "
				  "it): remove it (hutch network rm %s) or give the stack another "
				  "name",
				  shown, want, shown);
	_cleanup_free_ char *whose = printable(d->owner, strlen(d->owner));
	return hutch_fail(err, 0, "network '%s' belongs to %s, not to %s: give one another name",
			  shown, whose, want);
}

/* Under the lock: d's bridge and directory (its members are gone). */
static int drop_network_locked(const struct hutch_net_ctx *ctx, const struct netdef *d,
			       struct hutch_err **err)
{
	/* rootless without its namespace (not in it): no bridge to take */
	if (!(ctx->rootless && !net_host_pid) && net_link_delete(d->bridge, err) < 0)
		return -1;
	_cleanup_free_ char *dir = nets_dir(ctx);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	if (remove_tree_at(dfd, d->name, err) < 0)
		return -1;
	/* and its record under RUN */
	_cleanup_free_ char *run_dir = xasprintf("%s/networks", ctx->run_root);
	_cleanup_close_ int rfd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return rfd < 0 ? 0 : remove_tree_at(rfd, d->name, err);
}

int hutch_network_ensure_owned6(const struct hutch_net_ctx *ctx, const char *name,
				const char *subnet, bool internal, bool ipv6, const char *subnet6,
				const char *owner, struct hutch_net_info *out,
				struct hutch_err **err)
{
	ipv6 |= subnet6 != NULL;
	_cleanup_close_ int lock = -1;
	bool changed = false;
	if (lock_networks(ctx, &lock, err) < 0 ||
	    (ctx->rootless ? gc_any(ctx, false, err) : gc_locked(ctx, &changed, err)) < 0)
		return -1;
	struct netdef d;
	int r = load_net(ctx, name, &d, err);
	if (r == 0 && (!d.owner || strcmp(d.owner, owner))) {
		refuse_other_owner(&d, owner, err);
		netdef_clear(&d);
		return -1;
	}
	if (r == 0) {
		bool differs = d.internal != internal;
		struct hutch_cidr want;
		if (subnet && hutch_cidr_parse(subnet, &want, err) < 0) {
			netdef_clear(&d);
			return -1;
		}
		differs |= subnet && (want.addr != d.subnet.addr || want.prefix != d.subnet.prefix);
		/* IPv6 switched on or off, or another IPv6 subnet given */
		struct hutch_cidr6 want6;
		differs |= d.ipv6 != ipv6;
		if (subnet6 && hutch_cidr6_parse(subnet6, &want6, err) < 0) {
			netdef_clear(&d);
			return -1;
		}
		differs |=
		    subnet6 && d.ipv6 &&
		    (memcmp(want6.addr, d.subnet6.addr, 16) || want6.prefix != d.subnet6.prefix);
		if (differs && d.n_members) {
			char have[19];
			hutch_cidr_format(&d.subnet, have);
			_cleanup_free_ char *shown = printable(name, strlen(name));
			hutch_fail(err, 0,
				   "network '%s' (subnet %s%s%s) has containers on it and the "
				   "file now says subnet %s%s%s: take the stack down (hutch down) "
				   "to change it",
				   shown, have, d.internal ? ", internal" : "",
				   d.ipv6 ? ", ipv6" : "", subnet ? subnet : have,
				   internal ? ", internal" : "", ipv6 ? ", ipv6" : "");
			netdef_clear(&d);
			return -1;
		}
		if (differs) {
			r = drop_network_locked(ctx, &d, err);
			netdef_clear(&d);
			if (r < 0)
				return -1;
			r = HUTCH_NET_NOT_FOUND;
		}
	}
	if (r == HUTCH_NET_NOT_FOUND) {
		hutch_err_free(err);
		r = create_locked(ctx, name, subnet, internal, ipv6, subnet6, &d, err);
	}
	if (r < 0)
		return -1;
	free(d.owner);
	d.owner = xstrdup(owner);
	d.owner_pid = getpid();
	d.owner_start = net_proc_start_time(getpid());
	if (save_net_as(ctx, &d, true, err) < 0) {
		netdef_clear(&d);
		return -1;
	}
	if (out)
		info_fill(&d, out);
	netdef_clear(&d);
	return 0;
}

static int remove_owned_locked(const struct hutch_net_ctx *ctx, const char *name, const char *owner,
			       struct hutch_err **err);

int hutch_network_remove_owned(const struct hutch_net_ctx *ctx, const char *name, const char *owner,
			       struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	if (lock_networks(ctx, &lock, err) < 0)
		return -1;
	if (!ctx->rootless)
		return remove_owned_locked(ctx, name, owner, err);
	/* in the rootless namespace; then the namespace goes when nothing
	 * needs it any more (or pasta forwards what is left) */
	struct rl_call *c = rl_new(ctx, RL_REMOVE_OWNED, 0);
	if (!c)
		return hutch_fail_sys(err, "mmap");
	c->name = name;
	c->owner = owner;
	int r = rl_call(c, err);
	rl_free(c);
	int after = rootless_after(ctx, true, false, r < 0 ? NULL : err);
	return r < 0 ? r : after;
}

static int remove_owned_locked(const struct hutch_net_ctx *ctx, const char *name, const char *owner,
			       struct hutch_err **err)
{
	struct netdef d;
	int r = load_net(ctx, name, &d, err);
	if (r == HUTCH_NET_NOT_FOUND) {
		hutch_err_free(err);
		return 0;
	}
	if (r < 0)
		return -1;
	if (!d.owner || strcmp(d.owner, owner)) {
		refuse_other_owner(&d, owner, err);
		netdef_clear(&d);
		return -1;
	}
	/* what a crashed owner's containers left: they are the owner's to end */
	size_t n = d.n_members;
	char **ids = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		ids[i] = xstrdup(d.members[i].container);
	netdef_clear(&d);
	for (size_t i = 0; i < n; i++) {
		if (r == 0 && detach_locked(ctx, ids[i], err) < 0)
			r = -1;
		free(ids[i]);
	}
	free(ids);
	if (r == 0)
		r = load_net(ctx, name, &d, err);
	if (r == 0) {
		r = drop_network_locked(ctx, &d, err);
		netdef_clear(&d);
	}
	if (r == 0)
		r = apply_rules(ctx, err);
	return r < 0 ? -1 : 0;
}

/* ---- a rootless stack's DNS server (its sockets in the rootless namespace) ------- */

uint64_t hutch_net_rootless_id(const struct hutch_net_ctx *ctx)
{
	struct net_rootless rl;
	struct stat st;
	if (!ctx->rootless || !net_rootless_find(ctx, &rl) || stat(rl.netns, &st) < 0)
		return 0;
	return (uint64_t)st.st_ino;
}

int hutch_net_rootless_dns_sockets(const struct hutch_net_ctx *ctx, const char *const *addrs,
				   size_t n, int *fds, uint64_t *ns_id, struct hutch_err **err)
{
	_cleanup_close_ int lock = -1;
	struct net_rootless rl;
	if (lock_networks(ctx, &lock, err) < 0 || net_rootless_ensure(ctx, &rl, err) < 0 ||
	    net_rootless_sockets(&rl, addrs, n, fds, err) < 0)
		return -1;
	*ns_id = hutch_net_rootless_id(ctx);
	return 0;
}
