/* A stack's networks and its DNS server (docs/network.md, "Stacks").
 *
 * Every network of the stack is a net/ bridge network owned by the stack
 * ("stack NAME"): STACK_default for services that name none, STACK_NAME for
 * each declared one. A replica is attached in its starter (the forked process
 * that starts its container), before the container starts, with the key
 * "STACK-SERVICE-N" so that its address is the same on every start; its keeper
 * detaches it when it exits (`hutch internal finish`). The supervisor hosts one
 * DNS server (net/dns.c) for all the stack's networks in its event loop, behind
 * one epoll fd of its own, and rebuilds its names from the networks' members
 * whenever a replica starts or stops, so the server answers the live state.
 *
 * Rootless, the networks' bridges are in the user's rootless network namespace
 * (net/rootless.c): a replica's container gets a network namespace of its own
 * under the namespace's user namespace, which its starter enters for the clone
 * (the supervisor stays outside it: pasta is started from there), wired from
 * the rootless namespace once its process exists. The DNS server's sockets are
 * bound in the rootless namespace by a helper of net/'s and served here; a
 * live supervisor's networks keep that namespace, and when it was replaced
 * anyway (its holder killed) the sockets are bound again in the new one. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/sha256.h"
#include "common/util.h"
#include "net/net.h"
#include "supervisor/sup_internal.h"

#define HUTCH_NET_NAME_MAX 64

struct sup_net_net {
	char *key;  /* "default", "front": the file's name */
	char *name; /* "shop_default", "shop_front": net/'s */
	bool internal;
	struct hutch_net_info info;
};

struct sup_net {
	const struct hutch_stack *stack;
	char *data_root, *run_root;
	struct hutch_net_ctx ctx;
	char *owner;
	struct sup_net_net *nets;
	size_t n;
	struct hutch_dns *dns;
	int ep, timer_fd;
	int pid;	/* the supervisor's */
	uint64_t ns_id; /* rootless: the namespace the DNS server's sockets are in */
};

/* Rootless, in a starter: the user namespace its container is made under (the
 * rootless network's), set by sup_net_attach. */
static char starter_userns[64];

static void netlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void netlog(const char *fmt, ...)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s ", ts);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stderr);
}

static char *owner_of(const char *stack)
{
	return xasprintf("stack %s", stack);
}

/* Is the service on the stack's networks (not none or the host's)? */
static bool networked(const struct stack_service *ss)
{
	const struct stack_option *o = stack_service_option(ss, "network");
	return !o || !o->text || (strcmp(o->text, "none") && strcmp(o->text, "host"));
}

/* The service's networks: its `networks` words (NAME or NAME:ALIAS,ALIAS), or
 * the default network. *n gets the count; the words are the option's. */
static const char *const *service_networks(const struct stack_service *ss, size_t *n)
{
	static const char *const dflt[] = {"default"};
	const struct stack_option *o = stack_service_option(ss, "networks");
	if (!o || !o->n_words) {
		*n = 1;
		return dflt;
	}
	*n = o->n_words;
	return (const char *const *)o->words;
}

static const struct sup_net_net *find_net(const struct sup_net *net, const char *key, size_t len)
{
	for (size_t i = 0; i < net->n; i++)
		if (strlen(net->nets[i].key) == len && !strncmp(net->nets[i].key, key, len))
			return &net->nets[i];
	return NULL;
}

static void add_net(struct sup_net *net, const char *key, bool internal)
{
	for (size_t i = 0; i < net->n; i++)
		if (!strcmp(net->nets[i].key, key))
			return;
	char *name = xasprintf("%s_%s", net->stack->name, key);
	if (strlen(name) > HUTCH_NET_NAME_MAX) {
		/* a network's name is at most 64 characters, a stack's and a
		 * network's 63 each: the long ones cut, with a hash of the whole
		 * name to keep them apart */
		char digest[72]; /* "sha256:HEX" */
		sha256_digest(name, strlen(name), digest);
		char *cut = xasprintf("%.*s-%.8s", HUTCH_NET_NAME_MAX - 9, name, digest + 7);
		free(name);
		name = cut;
	}
	net->nets = xrealloc(net->nets, (net->n + 1) * sizeof(*net->nets));
	net->nets[net->n++] = (struct sup_net_net){
	    .key = xstrdup(key),
	    .name = name,
	    .internal = internal,
	};
}

/* ---- the DNS server's fds: one epoll of our own inside the loop's ------------ */

static void dns_watch(void *ctx, int fd, uint32_t events)
{
	struct sup_net *net = ctx;
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (!events) {
		epoll_ctl(net->ep, EPOLL_CTL_DEL, fd, NULL);
		return;
	}
	if (epoll_ctl(net->ep, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
		epoll_ctl(net->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void arm_timer(struct sup_net *net)
{
	int64_t at = net->dns ? hutch_dns_next_timeout_ns(net->dns) : -1;
	struct itimerspec its = {0};
	if (at >= 0) {
		if (at == 0)
			at = 1;
		its.it_value.tv_sec = at / 1000000000LL;
		its.it_value.tv_nsec = at % 1000000000LL;
	}
	timerfd_settime(net->timer_fd, at >= 0 ? TFD_TIMER_ABSTIME : 0, &its, NULL);
}

int sup_net_fd(const struct sup_net *net)
{
	return net ? net->ep : -1;
}

void sup_net_on_ready(struct sup_net *net)
{
	struct epoll_event evs[32];
	int n = epoll_wait(net->ep, evs, 32, 0);
	for (int i = 0; i < n && net->dns; i++) {
		if (evs[i].data.fd == net->timer_fd) {
			uint64_t x;
			(void)!read(net->timer_fd, &x, sizeof(x));
			hutch_dns_on_timeout(net->dns, hutch_dns_now_ns());
		} else {
			hutch_dns_on_event(net->dns, evs[i].data.fd, evs[i].events);
		}
	}
	arm_timer(net);
}

/* ---- the names ---------------------------------------------------------------- */

/* The service of a member attached with our key "STACK-SERVICE-N", or NULL. */
static char *service_of_key(const struct sup_net *net, const char *key)
{
	size_t sl = strlen(net->stack->name);
	if (!key || strncmp(key, net->stack->name, sl) || key[sl] != '-')
		return NULL;
	const char *svc = key + sl + 1, *dash = strrchr(svc, '-');
	if (!dash || dash == svc || !dash[1] || strspn(dash + 1, "0123456789") != strlen(dash + 1))
		return NULL;
	return xasprintf("%.*s", (int)(dash - svc), svc);
}

struct name_list {
	const char **v;
	size_t n;
	char **owned;
	size_t n_owned;
};

static void names_add(struct name_list *l, const char *s, bool own)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s)) {
			if (own)
				free((char *)s);
			return;
		}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = s;
	if (own) {
		l->owned = xrealloc(l->owned, (l->n_owned + 1) * sizeof(*l->owned));
		l->owned[l->n_owned++] = (char *)s;
	}
}

static void names_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n_owned; i++)
		free(l->owned[i]);
	free(l->owned);
	free(l->v);
}

/* The names table from the networks' members now. */
static struct hutch_dns_records *build_records(struct sup_net *net)
{
	struct hutch_dns_records *rec = hutch_dns_records_new();
	for (size_t i = 0; i < net->n; i++) {
		hutch_net_info_free(&net->nets[i].info);
		_cleanup_err_ struct hutch_err *err = NULL;
		if (hutch_network_inspect(&net->ctx, net->nets[i].name, &net->nets[i].info, &err) <
		    0)
			netlog("network %s: %s", net->nets[i].name, err ? err->msg : "?");
	}
	for (size_t i = 0; i < net->n; i++) {
		const struct hutch_net_info *in = &net->nets[i].info;
		_cleanup_err_ struct hutch_err *err = NULL;
		int idx = hutch_dns_records_add_network(rec, net->nets[i].name, &err);
		if (idx < 0 || !in->name ||
		    hutch_dns_records_add_subnet(rec, idx, in->subnet, &err) < 0 ||
		    hutch_dns_records_add_domain(rec, idx, net->stack->name, &err) < 0 ||
		    (in->ipv6 && hutch_dns_records_add_subnet(rec, idx, in->subnet6, &err) < 0)) {
			if (err)
				netlog("dns: network %s: %s", net->nets[i].name, err->msg);
			continue;
		}
		for (size_t m = 0; m < in->n_members; m++) {
			const struct hutch_net_member *mb = &in->members[m];
			/* a container on several of the stack's networks asks from its
			 * first one's address: it sees the names of all of them */
			for (size_t j = 0; j < net->n; j++) {
				const struct hutch_net_info *other = &net->nets[j].info;
				for (size_t k = 0; j != i && k < other->n_members; k++) {
					if (strcmp(other->members[k].container, mb->container))
						continue;
					_cleanup_free_ char *c =
					    xasprintf("%s/32", other->members[k].address);
					hutch_dns_records_add_subnet(rec, idx, c, NULL);
				}
			}
			struct name_list names = {0};
			const char *cname = mb->name ? mb->name : mb->key;
			if (cname)
				names_add(&names, cname, false);
			char *svc = service_of_key(net, mb->key);
			if (svc) {
				names_add(&names, xasprintf("%s.%s", svc, net->stack->name), true);
				names_add(&names, svc, true);
			}
			for (size_t a = 0; a < mb->n_aliases; a++) {
				names_add(&names, mb->aliases[a], false);
				names_add(&names,
					  xasprintf("%s.%s", mb->aliases[a], net->stack->name),
					  true);
			}
			const char *addrs[] = {mb->address, mb->address6}; /* AAAA: dual stack */
			_cleanup_err_ struct hutch_err *herr = NULL;
			if (names.n && hutch_dns_records_add_host(rec, idx, names.v, names.n, addrs,
								  in->ipv6 ? 2 : 1, &herr) < 0)
				netlog("dns: %s: %s", cname ? cname : mb->container, herr->msg);
			names_free(&names);
		}
	}
	return rec;
}

static int start_dns(struct sup_net *net, struct hutch_err **err);

void sup_net_refresh(struct sup_net *net)
{
	if (!net || !net->dns)
		return;
	uint64_t now = net->ctx.rootless ? hutch_net_rootless_id(&net->ctx) : 0;
	if (now && now != net->ns_id) {
		/* the rootless namespace was made anew: the server's sockets in it */
		_cleanup_err_ struct hutch_err *err = NULL;
		hutch_dns_free(net->dns);
		net->dns = NULL;
		if (start_dns(net, &err) < 0) {
			netlog("dns: %s", err ? err->msg : "?");
			return;
		}
		netlog("dns: listening again in the new rootless network namespace");
	}
	hutch_dns_set_records(net->dns, build_records(net));
}

/* ---- up and down -------------------------------------------------------------- */

static void net_free(struct sup_net *net)
{
	for (size_t i = 0; i < net->n; i++) {
		free(net->nets[i].key);
		free(net->nets[i].name);
		hutch_net_info_free(&net->nets[i].info);
	}
	free(net->nets);
	free(net->owner);
	free(net->data_root);
	free(net->run_root);
	free(net);
}

/* Networks of this stack's that the file no longer has (or a crashed
 * supervisor's, of an earlier file): removed. */
static void remove_stale(struct sup_net *net)
{
	struct hutch_net_info *all = NULL;
	size_t n = 0;
	if (hutch_network_list(&net->ctx, &all, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!all[i].owner || strcmp(all[i].owner, net->owner))
			continue;
		bool ours = false;
		for (size_t k = 0; k < net->n && !ours; k++)
			ours = !strcmp(net->nets[k].name, all[i].name);
		_cleanup_err_ struct hutch_err *err = NULL;
		if (!ours &&
		    hutch_network_remove_owned(&net->ctx, all[i].name, net->owner, &err) < 0)
			netlog("network %s: %s", all[i].name, err ? err->msg : "?");
	}
	hutch_net_info_list_free(all, n);
}

/* The DNS server: one on every network's gateway, port 53. IP_FREEBIND: a
 * network's bridge (and so its gateway address) exists only while a container
 * is on it, and a stack whose replicas all restart would lose a server bound
 * the ordinary way with it. Rootless, its sockets are bound in the rootless
 * network namespace. */
static int start_dns(struct sup_net *net, struct hutch_err **err)
{
	const struct hutch_stack *stack = net->stack;
	/* each gateway, and a dual stack network's IPv6 gateway too */
	char **listen = xcalloc(2 * net->n + 1, sizeof(char *));
	size_t n_listen = 0;
	for (size_t i = 0; i < net->n; i++) {
		listen[n_listen++] = xasprintf("%s:53", net->nets[i].info.gateway);
		if (net->nets[i].info.ipv6)
			listen[n_listen++] = xasprintf("[%s]:53", net->nets[i].info.gateway6);
	}
	int *fds = xcalloc(2 * n_listen + 1, sizeof(int));
	int r = 0;
	if (net->ctx.rootless)
		r = hutch_net_rootless_dns_sockets(&net->ctx, (const char *const *)listen, n_listen,
						   fds, &net->ns_id, err);
	struct hutch_dns_config cfg = {
	    .listen = (const char *const *)listen,
	    .n_listen = n_listen,
	    .listen_fds = net->ctx.rootless ? fds : NULL,
	    .upstreams = (const char *const *)stack->dns_upstream,
	    .n_upstreams = stack->n_dns_upstream,
	    /* the supervisor forwards from the host's own network namespace
	     * (rootless too: it is outside the rootless one), where a resolver
	     * on the host's loopback (systemd-resolved's 127.0.0.53) answers */
	    .upstream_loopback_ok = true,
	    .freebind = true,
	    .watch = dns_watch,
	    .watch_ctx = net,
	};
	if (r == 0)
		net->dns = hutch_dns_new(&cfg, NULL, err);
	strv_free(listen, n_listen);
	free(fds);
	if (r < 0 || !net->dns)
		return -1;
	arm_timer(net);
	return 0;
}

int sup_net_open(struct sup_net **out, const struct hutch_stack *stack, const char *data_root,
		 const char *run_root, bool rootless, struct hutch_err **err)
{
	*out = NULL;
	struct sup_net *net = xcalloc(1, sizeof(*net));
	net->stack = stack;
	net->data_root = xstrdup(data_root);
	net->run_root = xstrdup(run_root);
	net->ctx = (struct hutch_net_ctx){
	    .data_root = net->data_root, .run_root = net->run_root, .rootless = rootless};
	net->owner = owner_of(stack->name);
	net->ep = net->timer_fd = -1;
	net->pid = getpid();
	for (size_t i = 0; i < stack->n_services; i++) {
		const struct stack_service *ss = &stack->services[i];
		if (!networked(ss))
			continue;
		size_t n;
		const char *const *words = service_networks(ss, &n);
		for (size_t w = 0; w < n; w++) {
			size_t len = strcspn(words[w], ":");
			_cleanup_free_ char *key = strndup(words[w], len);
			bool internal = false;
			for (size_t k = 0; k < stack->n_networks; k++)
				if (!strcmp(stack->networks[k].name, key))
					internal = stack->networks[k].internal;
			add_net(net, key, internal);
		}
	}
	for (size_t k = 0; k < stack->n_networks; k++)
		add_net(net, stack->networks[k].name, stack->networks[k].internal);
	if (!net->n) {
		/* every service is on none or the host's network: what an earlier
		 * file made goes */
		remove_stale(net);
		net_free(net);
		return 0;
	}
	for (size_t i = 0; i < net->n; i++) {
		struct sup_net_net *nn = &net->nets[i];
		const char *subnet = NULL;
		int line = 0;
		const struct stack_network *decl = NULL; /* its [network.NAME] */
		for (size_t k = 0; k < stack->n_networks; k++)
			if (!strcmp(stack->networks[k].name, nn->key)) {
				subnet = stack->networks[k].subnet;
				line = stack->networks[k].subnet_line;
				decl = &stack->networks[k];
			}
		if (!strcmp(nn->key, "default") && !subnet) {
			subnet = stack->subnet;
			line = stack->subnet_line;
		}
		if (hutch_network_ensure_owned6(&net->ctx, nn->name, subnet, nn->internal,
						decl && decl->ipv6, decl ? decl->subnet6 : NULL,
						net->owner, &nn->info, err) < 0) {
			if (subnet && line > 0)
				hutch_err_wrap(err, "%s:%d: subnet: network %s", stack->file, line,
					       nn->key);
			else
				hutch_err_wrap(err, "stack %s: network %s", stack->name, nn->key);
			goto fail;
		}
	}
	remove_stale(net);
	net->ep = epoll_create1(EPOLL_CLOEXEC);
	net->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (net->ep < 0 || net->timer_fd < 0) {
		hutch_fail_sys(err, "epoll");
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = net->timer_fd};
	epoll_ctl(net->ep, EPOLL_CTL_ADD, net->timer_fd, &ev);
	if (start_dns(net, err) < 0) {
		hutch_err_wrap(err, "stack %s: its DNS server", stack->name);
		goto fail;
	}
	for (size_t i = 0; i < hutch_dns_upstream_count(net->dns); i++)
		netlog("dns: forwarding to %s", hutch_dns_upstream(net->dns, i));
	hutch_dns_set_records(net->dns, build_records(net));
	arm_timer(net);
	*out = net;
	return 0;
fail:
	sup_net_close(net);
	return -1;
}

void sup_net_close(struct sup_net *net)
{
	if (!net)
		return;
	if (net->dns)
		hutch_dns_free(net->dns);
	net->dns = NULL;
	if (net->timer_fd >= 0)
		close(net->timer_fd);
	if (net->ep >= 0)
		close(net->ep);
	net_free(net);
}

void sup_net_down(struct sup_net *net)
{
	if (!net)
		return;
	if (net->dns)
		hutch_dns_free(net->dns);
	net->dns = NULL;
	for (size_t i = 0; i < net->n; i++) {
		_cleanup_err_ struct hutch_err *err = NULL;
		if (hutch_network_remove_owned(&net->ctx, net->nets[i].name, net->owner, &err) < 0)
			netlog("network %s: %s", net->nets[i].name, err ? err->msg : "?");
	}
}

int sup_net_cleanup_offline(const char *data_root, const char *run_root, const char *stack,
			    bool rootless, struct hutch_err **err)
{
	struct hutch_net_ctx ctx = {
	    .data_root = data_root, .run_root = run_root, .rootless = rootless};
	_cleanup_free_ char *owner = owner_of(stack);
	struct hutch_net_info *all = NULL;
	size_t n = 0;
	_cleanup_free_ char *dir = xasprintf("%s/networks", data_root);
	if (access(dir, F_OK) < 0)
		return 0; /* no network ever made here */
	if (hutch_network_list(&ctx, &all, &n, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		if (all[i].owner && !strcmp(all[i].owner, owner) &&
		    hutch_network_remove_owned(&ctx, all[i].name, owner, rc < 0 ? NULL : err) < 0)
			rc = -1;
	hutch_net_info_list_free(all, n);
	return rc;
}

/* ---- a replica on its networks ------------------------------------------------ */

int sup_net_attach(const struct sup_net *net, const struct stack_service *ss, const char *id,
		   const char *cname, struct hutch_spec *spec, struct hutch_err **err)
{
	if (!net || !networked(ss))
		return 0;
	size_t n;
	const char *const *words = service_networks(ss, &n);
	const struct stack_option *al = stack_service_option(ss, "aliases");
	const struct stack_option *po = stack_service_option(ss, "ports");
	struct hutch_port_map *ports = xcalloc(po ? po->n_words + 1 : 1, sizeof(*ports));
	size_t n_ports = 0;
	for (size_t i = 0; po && i < po->n_words; i++)
		if (hutch_port_parse(po->words[i], &ports[n_ports], err) < 0) {
			free(ports);
			return -1;
		} else
			n_ports++;
	/* ports on the first network that has a way out (net/ refuses them on an
	 * internal one) */
	size_t port_net = 0;
	for (size_t w = 0; w < n; w++) {
		const struct sup_net_net *nn = find_net(net, words[w], strcspn(words[w], ":"));
		if (nn && !nn->internal) {
			port_net = w;
			break;
		}
	}
	char first_addr[16] = "", first_dns[16] = "", netns[4096] = "";
	/* about to start: whatever it is still on is a leftover (its keeper
	 * killed before it could take it off) */
	int rc = hutch_net_detach(&net->ctx, id, err) < 0 ? -1 : 0;
	for (size_t w = 0; w < n && rc == 0; w++) {
		size_t len = strcspn(words[w], ":");
		const struct sup_net_net *nn = find_net(net, words[w], len);
		if (!nn) {
			rc = hutch_fail(err, 0, "network '%.*s' is not the stack's", (int)len,
					words[w]);
			break;
		}
		/* aliases: the service's own, then this network's (NAME:A,B) */
		struct name_list aliases = {0};
		for (size_t a = 0; al && a < al->n_words; a++)
			names_add(&aliases, al->words[a], false);
		if (words[w][len] == ':') {
			_cleanup_free_ char *list = xstrdup(words[w] + len + 1);
			for (char *save = NULL, *a = strtok_r(list, ",", &save); a;
			     a = strtok_r(NULL, ",", &save))
				names_add(&aliases, xstrdup(a), true);
		}
		struct hutch_net_attach_req req = {
		    .network = nn->name,
		    .container = id,
		    .name = cname,
		    .key = cname,
		    .aliases = aliases.v,
		    .n_aliases = aliases.n,
		    .ports = w == port_net ? ports : NULL,
		    .n_ports = w == port_net ? n_ports : 0,
		    /* the supervisor, not this short-lived starter: the members of
		     * a live supervisor's stack are no crash's to collect (and
		     * every gc would scan /proc for them) */
		    .attacher_pid = net->pid,
		};
		struct hutch_net_attachment at;
		rc = hutch_net_attach(&net->ctx, &req, &at, err);
		if (rc == 0) {
			free(at.ports);
			if (!*first_addr) {
				snprintf(netns, sizeof(netns), "%s", at.netns);
				snprintf(starter_userns, sizeof(starter_userns), "%s", at.userns);
				memcpy(first_addr, at.address, sizeof(first_addr));
				memcpy(first_dns, at.dns, sizeof(first_dns));
			}
			/* every alias in the container's own /etc/hosts too, as run does */
			for (size_t a = 0; spec && a < aliases.n && rc == 0; a++)
				rc = hutch_spec_add_host(spec, aliases.v[a], at.address, err);
		}
		names_free(&aliases);
	}
	free(ports);
	if (rc == 0 && spec) {
		/* rootless: a network namespace of its own (a new one), wired later */
		if (*netns)
			hutch_spec_set_namespace(spec, HUTCH_NS_NETWORK, netns);
		if (!spec->dns.n_servers)
			rc = hutch_spec_add_dns_server(spec, first_dns, err);
		if (rc == 0)
			rc = hutch_spec_add_host(spec, spec->hostname, first_addr, err);
	}
	if (rc < 0) {
		sup_net_release(net, id);
		return hutch_err_wrap(err, "service %s", ss->name);
	}
	return 0;
}

void sup_net_release(const struct sup_net *net, const char *id)
{
	if (net)
		hutch_net_detach(&net->ctx, id, NULL);
}

static int wire(void *data, const char *id, pid_t pid, struct hutch_err **err)
{
	return hutch_net_wire(data, id, pid, err);
}

void sup_net_runtime(const struct sup_net *net, struct hutch_runtime *rt)
{
	if (!net || !net->ctx.rootless || !starter_userns[0])
		return;
	rt->userns_parent = starter_userns;
	rt->on_created = wire;
	rt->on_created_data = (void *)&net->ctx;
}
